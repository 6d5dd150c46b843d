"""What every part of the conformance suite shares: the base class and how tests run.

`StorageTestsBase` holds what a backend author provides (`make_storage` or the `storage`
fixture, `close_storage`, the `secrets` fixture, the capability attributes) and the helpers
the tests use. `in_new_loop` turns an async test body into the plain synchronous test pytest
runs; `Workers` starts the processes (or threads) that race each other.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import queue
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vrepo.errors import InvalidKeyError, ObjectNotFoundError, StorageError
from vrepo.storage import Storage
from vrepo.testing._workers import TIMEOUT

_AsyncTest = Callable[..., Coroutine[Any, Any, None]]


def in_new_loop(body: _AsyncTest) -> Callable[..., None]:
    """Make an async test body a sync test: run it in a new event loop, then `close_storage`."""

    @functools.wraps(body)
    def test(self: StorageTestsBase, *args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await body(self, *args, **kwargs)
            finally:
                await self.close_storage(kwargs["storage"])

        asyncio.run(main())

    return test


class Workers:
    """Worker processes (from ``start_method``), or threads where processes cannot share."""

    def __init__(self, processes: bool, start_method: str) -> None:
        context = multiprocessing.get_context(start_method)
        self.results: Any = context.Queue() if processes else queue.Queue()
        self._barrier: Any = context.Barrier if processes else threading.Barrier
        self._new: Any = context.Process if processes else threading.Thread
        self._running: list[Any] = []

    def barrier(self, parties: int) -> Any:
        """A barrier for ``parties`` of these workers."""
        return self._barrier(parties)

    def start(self, target: Callable[..., None], *args: Any) -> None:
        """Start one worker running ``target(*args)``."""
        worker = self._new(target=target, args=args, daemon=True)
        worker.start()
        self._running.append(worker)

    def collect(self, count: int) -> dict[int, Any]:
        """The reports of ``count`` workers, by worker number, once every worker has ended."""
        reports: dict[int, Any] = {}
        while len(reports) < count:
            try:
                worker, report = self.results.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"only {len(reports)} of {count} workers reported in {TIMEOUT} s")
            reports[worker] = report
        for worker in self._running:
            worker.join(TIMEOUT)
            assert getattr(worker, "exitcode", 0) == 0, f"{worker} ended with an error"
        self._running.clear()
        return reports


class StorageTestsBase:
    """What a backend provides to `vrepo.testing.StorageTests`, and the tests' helpers."""

    atomic_create: ClassVar[bool] = True
    """`put_if_absent` is atomic across processes (`supports_atomic_create` says the same).
    False: it refuses with `StorageError` and writes nothing, unless `single_writer`."""

    single_writer: ClassVar[bool] = False
    """Only with ``atomic_create = False``: `put_if_absent` creates anyway (a check, then a
    write) because the user promised one writer at a time; racing writers take turns."""

    shared_across_processes: ClassVar[bool] = True
    """A copy unpickled in another process sees the same objects. False (the storage lives in
    one process): the copy must fail there, and races run between threads instead."""

    make_durable_reports_missing: ClassVar[bool] = True
    """`make_durable` looks for its keys and raises `ObjectNotFoundError` for a missing one.
    False: writes are durable on return, so it looks nothing up and a missing key passes."""

    start_method: ClassVar[str] = "spawn"
    """How child processes start ('spawn' or 'forkserver': never a fork of a running loop)."""

    race_writers: ClassVar[int] = 8
    """How many writers race to create each key."""

    race_keys: ClassVar[int] = 4
    """How many keys they race for (each key is a separate race)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.atomic_create and cls.single_writer:
            raise TypeError(f"{cls.__name__}: single_writer applies only to atomic_create=False")

    # --- what a subclass provides ----------------------------------------------------------

    def make_storage(self, tmp_path: Path) -> Storage:
        """A new, empty storage for one test; override this or the `storage` fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must define make_storage(tmp_path) or a storage fixture"
        )

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        """The storage under test: `make_storage` below this test's ``tmp_path``."""
        return self.make_storage(tmp_path)

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        """Secrets the storage is configured with (keys, tokens, passwords); none by default."""
        return ()

    async def close_storage(self, storage: Storage) -> None:
        """Release the storage's clients; runs in each test's event loop. Default: nothing."""

    # --- helpers ---------------------------------------------------------------------------

    @property
    def _creates(self) -> bool:
        return self.atomic_create or self.single_writer

    async def _assert_refused(self, storage: Storage, key: str) -> None:
        with pytest.raises(StorageError) as info:
            await storage.put_if_absent(key, b"x")
        assert not isinstance(info.value, ObjectNotFoundError | InvalidKeyError), info.value
        assert not await storage.exists(key)

    def _workers(self) -> Workers:
        return Workers(self.shared_across_processes, self.start_method)
