"""What the conformance suite runs in the processes (or threads) it starts; no pytest here.

Each worker receives the storage as a pickle and unpickles it itself, so a storage that cannot
cross to a process is reported as such instead of crashing the worker. Workers report through
a queue; outcomes are plain values: True, False, or ``"ErrorType: message"`` (prefixed with
`REFUSED` for a `StorageError` that is neither a missing object nor an invalid key).
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

from vrepo.errors import InvalidKeyError, ObjectNotFoundError, StorageError
from vrepo.storage import Storage

TIMEOUT = 120.0  # seconds a worker or the suite waits for another; generous for slow CI
PARENT_KEY = "pickle/from-parent"
CHILD_KEY = "pickle/from-child"
REFUSED = "refused: "


def describe(exc: BaseException) -> str:
    """An exception as ``"ErrorType: message"``."""
    return f"{type(exc).__name__}: {exc}"


def record(worker: int, key: str) -> bytes:
    """What ``worker`` tries to create at ``key``: every copy names its writer."""
    return f"writer {worker} of {key}\n".encode() * 64


def create_keys(blob: bytes, worker: int, keys: list[str], barrier: Any, results: Any) -> None:
    """Unpickle a storage and `put_if_absent` each key, in step with the other workers.

    With a ``barrier`` all workers start each key together; with None they take turns.
    Reports ``(worker, outcomes)``: one outcome per key, or one string if the worker failed.
    """
    try:
        storage: Storage = pickle.loads(blob)
    except Exception as exc:
        if barrier is not None:
            barrier.abort()  # the others would otherwise wait for this worker until timeout
        results.put((worker, f"unpickling failed: {describe(exc)}"))
        return

    async def create_all() -> list[bool | str]:
        outcomes: list[bool | str] = []
        for key in keys:
            if barrier is not None:
                barrier.wait(TIMEOUT)  # blocks this loop, which has nothing else to do
            try:
                outcomes.append(await storage.put_if_absent(key, record(worker, key)))
            except (ObjectNotFoundError, InvalidKeyError) as exc:
                outcomes.append(describe(exc))
            except StorageError as exc:
                outcomes.append(REFUSED + describe(exc))
            except Exception as exc:
                outcomes.append(describe(exc))
        return outcomes

    try:
        results.put((worker, asyncio.run(create_all())))
    except Exception as exc:  # a broken barrier: another worker failed
        results.put((worker, describe(exc)))


def use_copy(blob: bytes, worker: int, results: Any) -> None:
    """Unpickle a storage, read `PARENT_KEY` and write it with b" and child" to `CHILD_KEY`.

    Reports ``(worker, (stage, error, is_storage_error))``: stage "done" and no error on
    success, else where it failed ("unpickling", "reading", "writing") and how.
    """
    stage = "unpickling"

    async def use(storage: Storage) -> None:
        nonlocal stage
        stage = "reading"
        data = await storage.get(PARENT_KEY)
        stage = "writing"
        await storage.put(CHILD_KEY, data + b" and child")

    try:
        asyncio.run(use(pickle.loads(blob)))
    except Exception as exc:
        results.put((worker, (stage, describe(exc), isinstance(exc, StorageError))))
        return
    results.put((worker, ("done", None, False)))
