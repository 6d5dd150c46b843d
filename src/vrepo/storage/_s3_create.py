"""Atomic create on S3: conditional PutObjects, retried, with unknown outcomes read back.

``If-None-Match: *`` makes a PutObject fail with 412 when the key exists, and with 409 while
a concurrent conditional write is in progress (tried again after a jittered backoff). A
request that fails without a definite answer may have been applied, so the object is read
back to decide whether this call created it.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Protocol

from vrepo.errors import ObjectNotFoundError, StorageError
from vrepo.storage._s3_errors import (
    Described,
    error_code,
    request_errors,
    retry_attempts,
    status,
    transport_errors,
)

if TYPE_CHECKING:
    from s3fs import S3FileSystem

_CREATE_ATTEMPTS = 6  # conditional PUTs per put_if_absent before giving up
_CONFLICT_BACKOFF = 0.05  # seconds; doubled per attempt, jittered


class Creating(Described, Protocol):
    """The requests atomic create is made of (`S3Storage` has them)."""

    async def _filesystem(self) -> S3FileSystem: ...

    async def _conditional_put(self, fs: S3FileSystem, path: str, body: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    def _error(self, exc: BaseException, doing: str, key: str) -> StorageError: ...


class _Outcome:
    """Result of one conditional PUT attempt (see `create_if_absent`)."""

    CREATED = "created"
    EXISTS = "exists"
    CONFLICT = "conflict"  # 409: a concurrent conditional write is in progress; try again
    UNKNOWN = "unknown"  # the request may or may not have been applied: read back


async def create_if_absent(storage: Creating, key: str, path: str, body: bytes) -> bool:
    """Create ``key`` (at bucket path ``path``) with ``body``: True if this call created it.

    412 means another writer has it: False. 409 is retried with jittered backoff. When a
    request fails in a way that leaves unknown whether it was applied (timeout, broken
    connection, 5xx, or a 412 answering a retried request), the object is read back: our
    bytes mean we created it, other bytes mean someone else did, no object means we try again.
    """
    for attempt in range(_CREATE_ATTEMPTS):
        outcome = await _try_create(storage, path, body, key)
        if outcome == _Outcome.CREATED:
            return True
        if outcome == _Outcome.EXISTS:
            return False
        if outcome == _Outcome.CONFLICT:
            await asyncio.sleep(_CONFLICT_BACKOFF * 2**attempt * random.uniform(0.5, 1.5))
            continue
        won = await _created_by_us(storage, body, key)
        if won is not None:
            return won
    won = await _created_by_us(storage, body, key)
    if won is not None:
        return won
    raise StorageError(
        f"creating {key!r} in {storage.url} failed: {_CREATE_ATTEMPTS} conditional PUTs "
        f"to {storage._endpoint} were neither applied nor refused; check that the endpoint "
        "is healthy and try again"
    )


async def _try_create(storage: Creating, path: str, body: bytes, key: str) -> str:
    """One conditional PUT, classified; raises only for definite failures (403, ...)."""
    fs = await storage._filesystem()
    try:
        await storage._conditional_put(fs, path, body)
    except request_errors() as exc:
        answer, code = status(exc), error_code(exc)
        retried = retry_attempts(exc) > 0  # botocore repeated the request itself
        if answer == 412 or code == "PreconditionFailed":
            return _Outcome.UNKNOWN if retried else _Outcome.EXISTS
        if answer == 409 or code == "ConditionalRequestConflict":
            return _Outcome.UNKNOWN if retried else _Outcome.CONFLICT
        if answer == 501 or code == "NotImplemented":  # no conditional writes here
            raise storage._error(exc, "creating", key) from exc
        if (answer is not None and answer >= 500) or isinstance(exc, transport_errors()):
            return _Outcome.UNKNOWN
        raise storage._error(exc, "creating", key) from exc
    return _Outcome.CREATED


async def _created_by_us(storage: Creating, body: bytes, key: str) -> bool | None:
    """Resolve an unknown outcome: True/False if the object exists, None if it does not."""
    try:
        return await storage.get(key) == body
    except ObjectNotFoundError:
        return None
    except StorageError as exc:
        raise StorageError(
            f"creating {key!r} in {storage.url}: the outcome of the request is unknown and "
            f"reading the object back failed: {exc}"
        ) from exc
