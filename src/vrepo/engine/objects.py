"""Typed reads and writes of a repository's immutable objects over a `Storage`.

Snapshots, manifests, transaction logs and chunks live under fixed prefixes and are named by
random ids, so a cached copy never goes stale. `ObjectIO` pickles as storage + config; copies
unpickled in one process share that process's caches for the repository.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from vrepo.errors import FormatError, ObjectNotFoundError, SnapshotNotFoundError
from vrepo.format import (
    ChunkRef,
    Manifest,
    ManifestRef,
    RepoConfig,
    Snapshot,
    TransactionLog,
    decode_snapshot,
    decode_transaction_log,
    encode_snapshot,
    encode_transaction_log,
    is_valid_id,
    new_id,
)
from vrepo.storage import Storage, guarded, unguarded

T = TypeVar("T")


def snapshot_key(snapshot_id: str) -> str:
    return f"snapshots/{snapshot_id}"


def manifest_key(manifest_id: str) -> str:
    return f"manifests/{manifest_id}"


def transaction_key(snapshot_id: str) -> str:
    return f"transactions/{snapshot_id}"


def chunk_key(chunk_id: str) -> str:
    return f"chunks/{chunk_id}"


class _SingleFlightCache:
    """A small LRU cache whose loads run once even when many coroutines (on any loop) ask."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, concurrent.futures.Future] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if owner:
                future = self._entries[key] = concurrent.futures.Future()
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if owner:
            try:
                future.set_result(await load())
            except BaseException as exc:
                with self._lock:
                    if self._entries.get(key) is future:
                        del self._entries[key]
                future.set_exception(exc)
                raise
        if future.done():  # the hot path: no event-loop round trip for a cached value
            return future.result()
        return await asyncio.wrap_future(future)

    def put(self, key: str, value: Any) -> None:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(value)
        with self._lock:
            self._entries[key] = future
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


_CACHES: OrderedDict[str, tuple[_SingleFlightCache, _SingleFlightCache]] = OrderedDict()
_CACHES_LOCK = threading.Lock()
_CACHED_REPOSITORIES = 16


def _process_caches(url: str) -> tuple[_SingleFlightCache, _SingleFlightCache]:
    """This process's (snapshot, manifest) caches for the repository at ``url``.

    Shared by every `ObjectIO` of that repository unpickled in the process, so a worker that
    unpickles a fork per task decodes each snapshot and manifest once, not once per task
    (an `ObjectIO` made directly, by `Repository.open`, starts with caches of its own). Sharing is
    safe because these objects are immutable and their ids random: a cached copy never goes
    stale.
    """
    with _CACHES_LOCK:
        caches = _CACHES.get(url)
        if caches is None:
            caches = _CACHES[url] = (_SingleFlightCache(256), _SingleFlightCache(64))
            while len(_CACHES) > _CACHED_REPOSITORIES:
                _CACHES.popitem(last=False)
        else:
            _CACHES.move_to_end(url)
        return caches


class ObjectIO:
    """Reads and writes snapshots, manifests, transaction logs and chunks of one repository."""

    def __init__(self, storage: Storage, config: RepoConfig) -> None:
        self.storage = guarded(storage)  # whatever it raises reaches users as StorageError
        self.config = config
        self._snapshots = _SingleFlightCache(256)
        self._manifests = _SingleFlightCache(64)

    def __getstate__(self) -> dict[str, Any]:
        return {"storage": unguarded(self.storage), "config": self.config}  # guarded on load

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.storage = guarded(state["storage"])
        self.config = state["config"]
        self._snapshots, self._manifests = _process_caches(self.storage.url)

    # --- snapshots -----------------------------------------------------------------------

    async def get_snapshot(self, snapshot_id: str) -> Snapshot:
        if not is_valid_id(snapshot_id):
            raise SnapshotNotFoundError(
                f"{snapshot_id!r} is not a snapshot id (ids are 20 characters of Crockford "
                "base32); list them with Repository.ancestry()"
            )

        async def load() -> Snapshot:
            try:
                data = await self.storage.get(snapshot_key(snapshot_id))
            except ObjectNotFoundError:
                raise SnapshotNotFoundError(
                    f"snapshot {snapshot_id} does not exist in {self.storage.url}; "
                    "list snapshots with Repository.ancestry()"
                ) from None
            snapshot = decode_snapshot(data, what=f"snapshot {snapshot_id}")
            if snapshot.id != snapshot_id:
                raise FormatError(
                    f"file snapshots/{snapshot_id} holds snapshot {snapshot.id}; "
                    "the repository was tampered with or mis-copied"
                )
            return snapshot

        return await self._snapshots.get(snapshot_id, load)

    async def snapshot_exists(self, snapshot_id: str) -> bool:
        return is_valid_id(snapshot_id) and await self.storage.exists(snapshot_key(snapshot_id))

    async def put_snapshot(self, snapshot: Snapshot, log: TransactionLog) -> list[str]:
        """Write a snapshot and its transaction log; return the keys written.

        Written in place where the backend allows (`Storage.put_new`): the id is fresh and
        nothing reads the snapshot before a ref, or a fork, points to it.
        """
        keys = [snapshot_key(snapshot.id), transaction_key(snapshot.id)]
        await asyncio.gather(
            self.storage.put_new(keys[0], encode_snapshot(snapshot)),
            self.storage.put_new(keys[1], encode_transaction_log(log)),
        )
        self._snapshots.put(snapshot.id, snapshot)
        return keys

    async def get_transaction_log(self, snapshot_id: str) -> TransactionLog:
        data = await self.storage.get(transaction_key(snapshot_id))
        return decode_transaction_log(data, what=f"transaction log {snapshot_id}")

    # --- manifests -----------------------------------------------------------------------

    async def get_manifest(self, manifest_id: str) -> Manifest:
        async def load() -> Manifest:
            data = await self.storage.get(manifest_key(manifest_id))
            return Manifest.decode(data, what=f"manifest {manifest_id}")

        return await self._manifests.get(manifest_id, load)

    async def put_manifest(self, manifest: Manifest) -> ManifestRef:
        manifest_id = new_id()  # fresh, so written in place like a chunk (Storage.put_new)
        await self.storage.put_new(manifest_key(manifest_id), manifest.encode())
        self._manifests.put(manifest_id, manifest)
        return ManifestRef(id=manifest_id, count=len(manifest), stored_bytes=manifest.stored_bytes)

    # --- chunks --------------------------------------------------------------------------

    async def put_chunk(self, data: bytes | memoryview) -> ChunkRef:
        """Store chunk bytes: inline in the ref when small, else as a new chunk object."""
        if len(data) <= self.config.inline_threshold_bytes:
            return ChunkRef.inlined(bytes(data))
        chunk_id = new_id()
        await self.storage.put_new(chunk_key(chunk_id), data)
        return ChunkRef.external(chunk_id, len(data))

    async def read_chunk(self, ref: ChunkRef, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the chunk a ref points to (``end`` None: to its end)."""
        end = ref.length if end is None else min(end, ref.length)
        start = min(max(start, 0), end)
        if ref.inline is not None:
            return ref.inline[start:end]
        if start == 0 and end == ref.length and ref.offset == 0:
            return await self.storage.get(chunk_key(ref.chunk_id))
        return await self.storage.get(
            chunk_key(ref.chunk_id), (ref.offset + start, ref.offset + end)
        )

    async def make_durable(self, keys: Iterable[str]) -> None:
        await self.storage.make_durable(keys)
