"""Write-once creates that survive ambiguous failures: retried, and one's own write recognised.

A storage call can fail after it took effect (a timeout or reset after the write, a 5xx after
success). For a create-if-absent that matters: tried again, it would find its own object and
report a lost race. So a failed create reads the key back and lets the caller say whether the
stored bytes are its own; only when nothing is stored is the create tried again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from vrepo.errors import InvalidKeyError, ObjectNotFoundError
from vrepo.storage import Storage

ATTEMPTS = 3  # storage calls per create, when one fails without an answer
_PAUSE_S = 0.05  # before the second attempt, doubled before each further one


async def create_once(
    storage: Storage, key: str, data: bytes, *, ours: Callable[[bytes], bool]
) -> bool:
    """`put_if_absent` of ``data`` at ``key``, settled even when the call fails.

    True: this caller's object is there (created now, or it landed before the failure, as
    ``ours`` tells from the stored bytes). False: another writer's object has the key.
    Raises the storage's error when neither the create nor the read-back gets an answer.
    """
    for attempt in range(ATTEMPTS):
        try:
            return await storage.put_if_absent(key, data)
        except InvalidKeyError:
            raise
        except Exception as failure:
            try:
                stored = await storage.get(key)
            except ObjectNotFoundError:
                stored = None
            except Exception as exc:
                raise failure from exc
            if stored is not None:
                return ours(bytes(stored))
            if attempt + 1 == ATTEMPTS:
                raise
            await asyncio.sleep(_PAUSE_S * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
