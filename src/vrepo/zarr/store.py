"""A zarr-python 3 store over a vrepo session.

Every key maps to one of three things: a node's ``zarr.json`` (``a/b/zarr.json``), a chunk of
an array (``a/b/c/0/1``, per the array's chunk key encoding), or — for any other key — an
opaque object, so the store behaves as a faithful key-value store. Listings are synthesised
from the session's nodes, manifests and change set. Zarr format 2 keys are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from vrepo import _sync
from vrepo import config as _settings
from vrepo.engine.content import Content
from vrepo.engine.node import V2_METADATA_NAMES, parse_node_metadata
from vrepo.errors import ReadOnlyError, UnsupportedZarrFormatError
from vrepo.format import ChunkRef
from vrepo.zarr._keys import Described, as_dir_prefix, check_key, locate, node_key_prefix
from vrepo.zarr._listing import dir_names, walk_keys
from vrepo.zarr._ranges import (
    MAX_COALESCED_BYTES,
    MAX_CONCURRENCY,
    MAX_GAP_BYTES,
    byte_span,
    check_request,
    read_spans,
)

if TYPE_CHECKING:
    from vrepo.engine.session import Session


def _size(value: bytes | ChunkRef) -> int:
    return len(value) if isinstance(value, bytes) else value.length


class VRepoStore(Store):
    """A `zarr.abc.store.Store` reading and writing through a vrepo `Session`.

    Obtain it as ``session.store``. Writes need a writable session (or fork); they become
    visible to other sessions only when the session commits.

    Every stored chunk read is checked against its ref: its length always, and, when
    ``verify_checksums`` (default: the ``read.verify-checksums`` setting, read when the store
    is made), the CRC-32C of every whole chunk; a damaged chunk raises `vrepo.FormatError`.
    Virtual chunks are read from their source files (see `vrepo.VirtualRef`), checked
    against the repository's virtual chunk containers and the source's validator.
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(
        self,
        session: Session,
        *,
        read_only: bool | None = None,
        verify_checksums: bool | None = None,
    ) -> None:
        if read_only is None:
            read_only = session.read_only
        if session.read_only and not read_only:
            raise ReadOnlyError(
                "cannot open a writable store over a read-only session; "
                "use repo.writable_session(branch).store"
            )
        super().__init__(read_only=read_only)
        self._session = session
        if verify_checksums is None:
            verify_checksums = _settings.get("read.verify-checksums")
        self._verify_checksums = bool(verify_checksums)

    @property
    def session(self) -> Session:
        """The session this store reads and writes through."""
        return self._session

    @property
    def verify_checksums(self) -> bool:
        """Whether whole chunks read are checked against their CRC-32C (lengths always are)."""
        return self._verify_checksums

    def with_read_only(self, read_only: bool = False) -> VRepoStore:
        return type(self)(
            self._session, read_only=read_only, verify_checksums=self._verify_checksums
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VRepoStore)
            and other._session._id == self._session._id
            and other.read_only == self.read_only
        )

    def __hash__(self) -> int:
        return hash((self._session._id, self.read_only))

    def __repr__(self) -> str:
        return f"VRepoStore({self._session!r}, read_only={self.read_only})"

    async def _content(self) -> Content:
        return await self._session._ensure_content()

    # --- reading -----------------------------------------------------------------------------

    async def _resolve(self, key: str) -> bytes | ChunkRef | None:
        """The stored value for a key: metadata bytes, a chunk/object ref, or None."""
        check_key(key)
        content = await self._content()
        kind, where = locate(content, key)
        if kind == "node":
            view = content.node(where)
            if view is not None:
                return view.meta.zarr_json
        elif kind == "chunk":
            ref = await content.chunk_ref(*where)
            if ref is not None:
                return ref
        return content.object_ref(key)

    async def _read(self, key: str, ref: ChunkRef, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a resolved ref, checked; errors name the array and chunk."""
        content = await self._content()
        what = Described(content, key)
        return await content.objects.read_chunk(
            ref, start, end, verify_checksum=self._verify_checksums, what=what
        )

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        if prototype is None:
            prototype = default_buffer_prototype()
        check_request(byte_range)
        value = await self._resolve(key)
        if value is None:
            return None
        start, end = byte_span(byte_range, _size(value))
        if isinstance(value, bytes):
            return prototype.buffer.from_bytes(value[start:end])
        return prototype.buffer.from_bytes(await self._read(key, value, start, end))

    async def _range_batches(
        self,
        key: str,
        value: bytes | ChunkRef,
        byte_ranges: Sequence[ByteRequest | None],
        prototype: BufferPrototype,
        **limits: int,
    ) -> AsyncIterator[list[tuple[int, Buffer]]]:
        """``byte_ranges`` of one resolved value, a batch of ``(index, buffer)`` per read."""
        spans = [byte_span(r, _size(value)) for r in byte_ranges]
        if isinstance(value, bytes) or value.inline is not None:
            data = memoryview(value if isinstance(value, bytes) else value.inline)
            yield [(i, prototype.buffer.from_bytes(data[a:b])) for i, (a, b) in enumerate(spans)]
            return

        async def read(start: int, end: int) -> bytes:
            return await self._read(key, value, start, end)

        async for batch in read_spans(read, spans, **limits):
            yield [(i, prototype.buffer.from_bytes(data)) for i, data in batch]

    async def get_ranges(
        self,
        key: str,
        byte_ranges: Sequence[ByteRequest | None],
        *,
        prototype: BufferPrototype,
        max_concurrency: int = MAX_CONCURRENCY,
        max_gap_bytes: int = MAX_GAP_BYTES,
        max_coalesced_bytes: int = MAX_COALESCED_BYTES,
    ) -> AsyncIterator[Sequence[tuple[int, Buffer | None]]]:
        """Many byte ranges of one key (zarr >= 3.4 reads shards so): the key is resolved
        once and near ranges share one storage read. Batches come in completion order; a
        missing key raises a `BaseExceptionGroup` holding `FileNotFoundError`, as in zarr."""
        if not byte_ranges:
            return
        for byte_range in byte_ranges:
            check_request(byte_range)
        value = await self._resolve(key)
        if value is None:
            raise BaseExceptionGroup("byte-range read failed", [FileNotFoundError(key)])
        batches = self._range_batches(
            key,
            value,
            byte_ranges,
            prototype,
            max_concurrency=max_concurrency,
            max_gap_bytes=max_gap_bytes,
            max_coalesced_bytes=max_coalesced_bytes,
        )
        async for batch in batches:
            yield batch

    def get_ranges_sync(
        self, key: str, byte_ranges: Sequence[ByteRequest | None], **options: Any
    ) -> Sequence[tuple[int, Buffer | None]]:
        """`get_ranges` (same keyword arguments) for synchronous callers, such as zarr's fused
        codec pipeline: all the batches, gathered in one hop to vrepo's event loop."""

        async def collect() -> list[tuple[int, Buffer | None]]:
            return [
                pair
                async for batch in self.get_ranges(key, byte_ranges, **options)
                for pair in batch
            ]

        return _sync.run_sync(collect())

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Ranges of many keys, in order; each key is resolved once and its ranges coalesced."""
        wanted = list(key_ranges)  # may be a one-shot iterator
        for _, byte_range in wanted:
            check_request(byte_range)
        by_key: dict[str, list[int]] = {}
        for index, (key, _) in enumerate(wanted):
            by_key.setdefault(key, []).append(index)
        out: list[Buffer | None] = [None] * len(wanted)

        async def one_key(key: str, indices: list[int]) -> None:
            value = await self._resolve(key)
            if value is None:
                return
            ranges = [wanted[i][1] for i in indices]
            try:
                async for batch in self._range_batches(key, value, ranges, prototype):
                    for position, buffer in batch:
                        out[indices[position]] = buffer
            except BaseExceptionGroup as group:
                raise group.exceptions[0] from None  # this older API raises plain errors

        await asyncio.gather(*(one_key(key, indices) for key, indices in by_key.items()))
        return out

    async def exists(self, key: str) -> bool:
        return await self._resolve(key) is not None

    async def getsize(self, key: str) -> int:
        value = await self._resolve(key)
        if value is None:
            raise FileNotFoundError(key)
        return _size(value)

    async def getsize_prefix(self, prefix: str) -> int:
        """Bytes stored below ``prefix`` taken as a directory ('c' counts 'c/0', not 'cc/0'),
        summed from the stored references: no value is read."""
        walk = walk_keys(await self._content(), as_dir_prefix(prefix), with_values=True)
        return sum([_size(value) async for _, value in walk if value is not None])

    # --- synchronous access (newer zarr detects these; its fused codec pipeline uses them) -------

    @property
    def _supports_sync_io(self) -> bool:
        """zarr's opt-out from the sync methods: off on vrepo's own event loop, whose thread
        the blocking calls would wait on (zarr then takes its async path)."""
        return not _sync.on_background_loop()

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        return _sync.run_sync(self.get(key, prototype, byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        _sync.run_sync(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        _sync.run_sync(self.delete(key))

    # --- writing -------------------------------------------------------------------------------

    def _writable_content_check(self, key: str) -> None:
        self._check_writable()
        self._session._check_writable()
        check_key(key)
        if key.rsplit("/", 1)[-1] in V2_METADATA_NAMES:
            raise UnsupportedZarrFormatError(
                f"refusing Zarr format 2 key {key!r}: vrepo stores Zarr format 3 only; "
                "write with zarr_format=3 (the default of zarr-python 3 and xarray's to_zarr "
                "with zarr_format=3)"
            )

    async def set(self, key: str, value: Buffer) -> None:
        self._writable_content_check(key)
        if not isinstance(value, Buffer):
            raise TypeError(f"VRepoStore.set() takes a zarr Buffer, got {type(value).__name__}")
        data = memoryview(value.as_buffer_like()).cast("B")  # no copy of chunk bytes
        content = await self._content()
        kind, where = locate(content, key)
        if kind == "node":
            meta = parse_node_metadata(bytes(data))
            if meta is not None:
                content.set_node(where, meta)
                content.delete_object(key)
                return
            content.delete_node(where)  # not zarr metadata: the key now holds plain bytes
        elif kind == "chunk":
            await content.write_chunk(*where, data)
            content.delete_object(key)
            return
        await content.write_object(key, data)

    async def delete(self, key: str) -> None:
        self._writable_content_check(key)
        content = await self._content()
        kind, where = locate(content, key)
        if kind == "node":
            content.delete_node(where)
        elif kind == "chunk" and await content.chunk_ref(*where) is not None:
            content.delete_chunk(*where)
        content.delete_object(key)

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        self._session._check_writable()
        content = await self._content()
        dir_prefix = as_dir_prefix(prefix.rstrip("/"))
        for path in content.node_paths():
            if (path == "/" and not dir_prefix) or node_key_prefix(path).startswith(dir_prefix):
                content.delete_node(path)  # whole nodes go at once, chunks included
        async for key in self.list_prefix(dir_prefix):
            await self.delete(key)

    # --- listing -------------------------------------------------------------------------------

    async def _keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, gathered before the caller changes any."""
        return [key async for key, _ in walk_keys(await self._content(), prefix)]

    async def list(self) -> AsyncIterator[str]:
        for key in await self._keys(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._keys(prefix):
            yield key

    async def is_empty(self, prefix: str) -> bool:
        """Whether nothing is stored below ``prefix`` (a directory): stops at the first key."""
        async with contextlib.aclosing(
            walk_keys(await self._content(), as_dir_prefix(prefix))
        ) as keys:
            async for _ in keys:
                return False
        return True

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for name in await dir_names(await self._content(), prefix):
            yield name
