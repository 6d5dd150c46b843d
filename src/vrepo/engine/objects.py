"""Typed reads and writes of a repository's immutable objects over a `Storage`.

Snapshots, manifests, transaction logs and chunks live under fixed prefixes and are named by
random ids, so a cached copy never goes stale. `ObjectIO` pickles as storage + config; copies
unpickled in one process share that process's caches for the repository.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from vrepo.engine.chunk_check import check_chunk_bytes
from vrepo.engine.virtual_refs import read_virtual
from vrepo.errors import FormatError, ObjectNotFoundError, SnapshotNotFoundError
from vrepo.format import (
    ChunkRef,
    HistoryPage,
    HistoryPageRef,
    Manifest,
    ManifestRef,
    RepoConfig,
    Snapshot,
    TransactionLog,
    VirtualRef,
    crc32c,
    decode_history_page,
    decode_snapshot,
    decode_transaction_log,
    encode_history_page,
    encode_snapshot,
    encode_transaction_log,
    is_valid_id,
    new_timed_id,
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


def history_key(page_id: str) -> str:
    return f"history/{page_id}"


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

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def put(self, key: str, value: Any) -> None:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(value)
        with self._lock:
            self._entries[key] = future
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


_Caches = tuple[_SingleFlightCache, _SingleFlightCache, _SingleFlightCache, _SingleFlightCache]
_CACHES: OrderedDict[str, _Caches] = OrderedDict()
_CACHES_LOCK = threading.Lock()
_CACHED_REPOSITORIES = 16
_CACHED_LOG_COORDS = 4096  # transaction logs naming more chunks than this are not cached


def _is_small(log: TransactionLog) -> bool:
    return sum(changes.count for changes in log.chunks) <= _CACHED_LOG_COORDS


def _new_caches() -> _Caches:
    """Empty (snapshot, manifest, transaction log, history page) caches."""
    caches = _SingleFlightCache(256), _SingleFlightCache(64), _SingleFlightCache(256)
    return (*caches, _SingleFlightCache(64))


def _process_caches(url: str) -> _Caches:
    """This process's caches (as `_new_caches` makes them) for the repository at ``url``.

    Shared by every `ObjectIO` of that repository unpickled in the process, so a worker that
    unpickles a fork per task decodes each snapshot and manifest once, not once per task
    (an `ObjectIO` made directly, by `Repository.open`, starts with caches of its own). Sharing is
    safe because these objects are immutable and their ids random: a cached copy never goes
    stale. Transaction logs are kept only when small (`_CACHED_LOG_COORDS`): rebases on a busy
    branch read the same few logs over and over, while one big commit's log can be megabytes.
    """
    with _CACHES_LOCK:
        caches = _CACHES.get(url)
        if caches is None:
            caches = _CACHES[url] = _new_caches()
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
        self._snapshots, self._manifests, self._logs, self._pages = _new_caches()

    def forget(self, keys: Iterable[str]) -> None:
        """Drop deleted objects (storage keys: ``snapshots/...``, ``manifests/...``,
        ``transactions/...``, ``history/...``) from the caches, so reads see them gone."""
        caches = {
            "snapshots": self._snapshots,
            "manifests": self._manifests,
            "transactions": self._logs,
            "history": self._pages,
        }
        for key in keys:
            kind, _, object_id = key.partition("/")
            if kind in caches:
                caches[kind].discard(object_id)

    def __getstate__(self) -> dict[str, Any]:
        return {"storage": unguarded(self.storage), "config": self.config}  # guarded on load

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.storage = guarded(state["storage"])
        self.config = state["config"]
        self._snapshots, self._manifests, self._logs, self._pages = _process_caches(
            self.storage.url
        )

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
        if _is_small(log):
            self._logs.put(snapshot.id, log)
        return keys

    async def get_transaction_log(self, snapshot_id: str) -> TransactionLog:
        async def load() -> TransactionLog:
            data = await self.storage.get(transaction_key(snapshot_id))
            return decode_transaction_log(data, what=f"transaction log {snapshot_id}")

        log = await self._logs.get(snapshot_id, load)
        if not _is_small(log):
            self._logs.discard(snapshot_id)
        return log

    # --- history pages -------------------------------------------------------------------

    async def get_history_page(self, ref: HistoryPageRef) -> HistoryPage:
        """The page ``ref`` names, checked against it (`FormatError` if they disagree)."""

        async def load() -> HistoryPage:
            what = f"history page {ref.id}"
            page = decode_history_page(await self.storage.get(history_key(ref.id)), what=what)
            if page.ref(ref.id) != ref:
                raise FormatError(
                    f"{what} does not hold what the snapshots naming it say "
                    f"({len(page.entries)} entries, expected {ref.count}); the repository was "
                    "tampered with or mis-copied"
                )
            return page

        return await self._pages.get(ref.id, load)

    async def put_history_page(self, page: HistoryPage) -> tuple[HistoryPageRef, str]:
        """Store a page under a fresh id (in place, like a chunk); its ref and storage key."""
        ref = page.ref(new_timed_id())
        await self.storage.put_new(history_key(ref.id), encode_history_page(page))
        self._pages.put(ref.id, page)
        return ref, history_key(ref.id)

    # --- manifests -----------------------------------------------------------------------

    async def get_manifest(self, manifest_id: str) -> Manifest:
        async def load() -> Manifest:
            data = await self.storage.get(manifest_key(manifest_id))
            return Manifest.decode(data, what=f"manifest {manifest_id}")

        return await self._manifests.get(manifest_id, load)

    async def put_manifest(self, manifest: Manifest) -> ManifestRef:
        """Store a manifest under a fresh id (written in place like a chunk: Storage.put_new)."""
        ref = self.manifest_ref(manifest)
        await self.put_manifest_as(ref, manifest)
        return ref

    @staticmethod
    def manifest_ref(manifest: Manifest) -> ManifestRef:
        """A fresh ref for ``manifest``, to store with `put_manifest_as` (a snapshot naming it
        may then be written at the same time)."""
        return ManifestRef(
            id=new_timed_id(), count=len(manifest), stored_bytes=manifest.stored_bytes
        )

    async def put_manifest_as(self, ref: ManifestRef, manifest: Manifest) -> None:
        await self.storage.put_new(manifest_key(ref.id), manifest.encode())
        self._manifests.put(ref.id, manifest)

    # --- chunks --------------------------------------------------------------------------

    async def put_chunk(self, data: bytes | memoryview) -> ChunkRef:
        """Store chunk bytes: inline in the ref when small, else as a new chunk object whose
        ref records the bytes' length and CRC-32C."""
        if len(data) <= self.config.inline_threshold_bytes:
            return ChunkRef.inlined(bytes(data))
        chunk_id = new_timed_id()
        checksum = crc32c(data)
        await self.storage.put_new(chunk_key(chunk_id), data)
        return ChunkRef.external(chunk_id, len(data), checksum=checksum)

    async def read_chunk(
        self,
        ref: ChunkRef | VirtualRef,
        start: int = 0,
        end: int | None = None,
        *,
        verify_checksum: bool = True,
        what: object = "a chunk",
    ) -> bytes:
        """Bytes ``[start, end)`` of the chunk a ref points to (``end`` None: to its end).

        Stored chunks are checked (`check_chunk_bytes`): the length always, the checksum of a
        whole chunk unless ``verify_checksum`` is False; `FormatError` names ``what``. Virtual
        ones are read from their source (`read_virtual`: container, validator and length).
        """
        end = ref.length if end is None else min(end, ref.length)
        start = min(max(start, 0), end)
        if type(ref) is VirtualRef:
            containers = self.config.virtual_chunk_containers
            return await read_virtual(ref, start, end, containers, what=what)
        if ref.inline is not None:
            return ref.inline[start:end]
        key = chunk_key(ref.chunk_id)
        whole_object = start == 0 and end == ref.length and ref.offset == 0
        byte_range = None if whole_object else (ref.offset + start, ref.offset + end)
        check = functools.partial(
            check_chunk_bytes,
            ref=ref,
            start=start,
            end=end,
            verify_checksum=verify_checksum,
            what=what,
        )
        return await self.storage.get_checked(key, byte_range, check)

    async def make_durable(self, keys: Iterable[str]) -> None:
        await self.storage.make_durable(keys)
