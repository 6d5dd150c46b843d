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
from vrepo.engine.content import Content
from vrepo.engine.node import V2_METADATA_NAMES, parse_node_metadata
from vrepo.errors import InvalidKeyError, ReadOnlyError, UnsupportedZarrFormatError
from vrepo.format import ChunkRef
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

_META = "zarr.json"


def _check_key(key: str) -> None:
    if not isinstance(key, str):
        raise InvalidKeyError(f"store keys are str, not {type(key).__name__}")
    if key == "" or key.startswith("/") or key.endswith("/") or "//" in key or "\\" in key:
        raise InvalidKeyError(
            f"invalid store key {key!r}: keys are relative '/'-separated paths such as "
            "'group/array/c/0/1'"
        )
    if any(part in (".", "..") for part in key.split("/")) or not key.isprintable():
        raise InvalidKeyError(f"invalid store key {key!r}: no '.', '..' or control characters")


def _node_prefix(path: str) -> str:
    """The key prefix under which a node's keys live: '' for the root, 'a/b/' for /a/b."""
    return "" if path == "/" else path[1:] + "/"


def _locate(content: Content, key: str) -> tuple[str, Any]:
    """Classify a key: ("node", path) | ("chunk", (path, coords)) | ("object", key)."""
    if key == _META:
        return "node", "/"
    if key.endswith("/" + _META):
        return "node", "/" + key[: -len(_META) - 1]
    parts = key.split("/")
    for i in range(len(parts) - 1, -1, -1):
        view = content.node("/" + "/".join(parts[:i]))
        if view is not None:
            if view.kind == "array":
                coords = view.layout.parse_chunk_key("/".join(parts[i:]))
                if coords is not None:
                    return "chunk", (view.path, coords)
            break
    return "object", key


def _dir_prefix(prefix: str) -> str:
    """``prefix`` as a directory: 'a' -> 'a/', so 'a' never matches 'ab/...'; '' stays ''."""
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def _size(value: bytes | ChunkRef) -> int:
    return len(value) if isinstance(value, bytes) else value.length


class VRepoStore(Store):
    """A `zarr.abc.store.Store` reading and writing through a vrepo `Session`.

    Obtain it as ``session.store``. Writes need a writable session (or fork); they become
    visible to other sessions only when the session commits.
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(self, session: Session, *, read_only: bool | None = None) -> None:
        if read_only is None:
            read_only = session.read_only
        if session.read_only and not read_only:
            raise ReadOnlyError(
                "cannot open a writable store over a read-only session; "
                "use repo.writable_session(branch).store"
            )
        super().__init__(read_only=read_only)
        self._session = session

    @property
    def session(self) -> Session:
        """The session this store reads and writes through."""
        return self._session

    def with_read_only(self, read_only: bool = False) -> VRepoStore:
        return type(self)(self._session, read_only=read_only)

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
        _check_key(key)
        content = await self._content()
        kind, where = _locate(content, key)
        if kind == "node":
            view = content.node(where)
            if view is not None:
                return view.meta.zarr_json
        elif kind == "chunk":
            ref = await content.chunk_ref(*where)
            if ref is not None:
                return ref
        return content.object_ref(key)

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
        data = await (await self._content()).read(value, start, end)
        return prototype.buffer.from_bytes(data)

    async def _range_batches(
        self,
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
        content = await self._content()

        async def read(start: int, end: int) -> bytes:
            return await content.read(value, start, end)

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
                async for batch in self._range_batches(value, ranges, prototype):
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
        walk = self._walk(_dir_prefix(prefix), with_values=True)
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
        _check_key(key)
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
        kind, where = _locate(content, key)
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
        kind, where = _locate(content, key)
        if kind == "node":
            content.delete_node(where)
        elif kind == "chunk" and await content.chunk_ref(*where) is not None:
            content.delete_chunk(*where)
        content.delete_object(key)

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        self._session._check_writable()
        content = await self._content()
        dir_prefix = _dir_prefix(prefix.rstrip("/"))
        for path in content.node_paths():
            if (path == "/" and not dir_prefix) or _node_prefix(path).startswith(dir_prefix):
                content.delete_node(path)  # whole nodes go at once, chunks included
        async for key in self.list_prefix(dir_prefix):
            await self.delete(key)

    # --- listing -------------------------------------------------------------------------------

    async def _walk(
        self, prefix: str, with_values: bool = False
    ) -> AsyncIterator[tuple[str, bytes | ChunkRef | None]]:
        """Each key starting with ``prefix`` and, if asked, its value or reference; lazily.

        Arrays outside the prefix are not enumerated. A key that is both a node's metadata or
        a chunk and an opaque object is listed once, as `get` reads it.
        """
        content = await self._content()
        objects = [k for k in content.object_keys() if k.startswith(prefix)]
        listed: set[str] = set()
        for path in content.node_paths():
            view = content.node(path)
            if view is None:  # deleted while this walk was paused
                continue
            node_prefix = _node_prefix(path)
            meta_key = node_prefix + _META
            if meta_key.startswith(prefix):
                if objects:
                    listed.add(meta_key)
                yield meta_key, view.meta.zarr_json
            if view.kind != "array" or not (
                node_prefix.startswith(prefix) or prefix.startswith(node_prefix)
            ):
                continue
            for row in await content.chunk_coords(path):
                coords = tuple(map(int, row))
                key = node_prefix + view.layout.chunk_key(coords)
                if not key.startswith(prefix):
                    continue
                if objects:
                    listed.add(key)
                yield key, await content.chunk_ref(path, coords) if with_values else None
        for key in objects:
            ref = content.object_ref(key)
            if key not in listed and ref is not None:
                yield key, ref

    async def _keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, gathered before the caller changes any."""
        return [key async for key, _ in self._walk(prefix)]

    async def list(self) -> AsyncIterator[str]:
        for key in await self._keys(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._keys(prefix):
            yield key

    async def is_empty(self, prefix: str) -> bool:
        """Whether nothing is stored below ``prefix`` (a directory): stops at the first key."""
        async with contextlib.aclosing(self._walk(_dir_prefix(prefix))) as keys:
            async for _ in keys:
                return False
        return True

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        content = await self._content()
        dir_prefix = _dir_prefix(prefix.rstrip("/"))
        names: set[str] = set()
        for path in content.node_paths():
            node_prefix = _node_prefix(path)
            meta_key = node_prefix + _META
            if meta_key.startswith(dir_prefix):
                names.add(meta_key[len(dir_prefix) :].split("/", 1)[0])
            view = content.node(path)
            if view.kind != "array" or not dir_prefix.startswith(node_prefix):
                continue  # arrays below this directory are already named by their zarr.json
            layout = view.layout
            coords = await content.chunk_coords(path)
            if (
                node_prefix == dir_prefix
                and layout.encoding == "default"
                and layout.separator == "/"
            ):
                if len(coords):
                    names.add("c")
                continue
            for row in coords:
                key = node_prefix + layout.chunk_key(tuple(map(int, row)))
                if key.startswith(dir_prefix):
                    names.add(key[len(dir_prefix) :].split("/", 1)[0])
        for key in content.object_keys():
            if key.startswith(dir_prefix):
                names.add(key[len(dir_prefix) :].split("/", 1)[0])
        for name in sorted(names):
            yield name
