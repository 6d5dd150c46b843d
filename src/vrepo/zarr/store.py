"""A zarr-python 3 store over a vrepo session.

Every key maps to one of three things: a node's ``zarr.json`` (``a/b/zarr.json``), a chunk of
an array (``a/b/c/0/1``, per the array's chunk key encoding), or — for any other key — an
opaque object, so the store behaves as a faithful key-value store. Listings are synthesised
from the session's nodes, manifests and change set. Zarr format 2 keys are refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from vrepo._sync import run_sync
from vrepo.engine.content import Content
from vrepo.engine.node import V2_METADATA_NAMES, parse_node_metadata
from vrepo.errors import InvalidKeyError, ReadOnlyError, UnsupportedZarrFormatError
from vrepo.format import ChunkRef

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


def _byte_span(byte_range: ByteRequest | None, length: int) -> tuple[int, int]:
    if byte_range is None:
        return 0, length
    if isinstance(byte_range, RangeByteRequest):
        return min(byte_range.start, length), min(byte_range.end, length)
    if isinstance(byte_range, OffsetByteRequest):
        return min(byte_range.offset, length), length
    if isinstance(byte_range, SuffixByteRequest):
        return max(length - byte_range.suffix, 0), length
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}")


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
        value = await self._resolve(key)
        if value is None:
            return None
        if isinstance(value, bytes):
            start, end = _byte_span(byte_range, len(value))
            return prototype.buffer.from_bytes(value[start:end])
        start, end = _byte_span(byte_range, value.length)
        data = await (await self._content()).read(value, start, end)
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        import asyncio

        return list(
            await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges))
        )

    async def exists(self, key: str) -> bool:
        return await self._resolve(key) is not None

    async def getsize(self, key: str) -> int:
        value = await self._resolve(key)
        if value is None:
            raise FileNotFoundError(key)
        return len(value) if isinstance(value, bytes) else value.length

    async def getsize_prefix(self, prefix: str) -> int:
        return sum([await self.getsize(key) async for key in self.list_prefix(prefix)])

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
        prefix = prefix.rstrip("/")
        dir_prefix = prefix + "/" if prefix else ""
        for path in content.node_paths():
            if (path == "/" and not prefix) or _node_prefix(path).startswith(dir_prefix):
                content.delete_node(path)  # whole nodes go at once, chunks included
        async for key in self.list_prefix(dir_prefix):
            await self.delete(key)

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        return run_sync(self.get(key, prototype, byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        run_sync(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        run_sync(self.delete(key))

    # --- listing -------------------------------------------------------------------------------

    async def _keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``; arrays outside the prefix are not enumerated."""
        content = await self._content()
        keys: list[str] = []
        for path in content.node_paths():
            view = content.node(path)
            node_prefix = _node_prefix(path)
            meta_key = node_prefix + _META
            if meta_key.startswith(prefix):
                keys.append(meta_key)
            if view.kind == "array" and (
                node_prefix.startswith(prefix) or prefix.startswith(node_prefix)
            ):
                chunk_keys = self._chunk_keys(
                    node_prefix, view.layout, await content.chunk_coords(path)
                )
                if node_prefix.startswith(prefix):
                    keys.extend(chunk_keys)
                else:
                    keys.extend(k for k in chunk_keys if k.startswith(prefix))
        objects = [k for k in content.object_keys() if k.startswith(prefix)]
        if objects:
            seen = set(keys)
            keys.extend(k for k in objects if k not in seen)
        return keys

    @staticmethod
    def _chunk_keys(node_prefix: str, layout: Any, coords: Any) -> Iterator[str]:
        return (node_prefix + layout.chunk_key(tuple(map(int, row))) for row in coords)

    async def list(self) -> AsyncIterator[str]:
        for key in await self._keys(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._keys(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        content = await self._content()
        prefix = prefix.rstrip("/")
        dir_prefix = prefix + "/" if prefix else ""
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
            for key in self._chunk_keys(node_prefix, layout, coords):
                if key.startswith(dir_prefix):
                    names.add(key[len(dir_prefix) :].split("/", 1)[0])
        for key in content.object_keys():
            if key.startswith(dir_prefix):
                names.add(key[len(dir_prefix) :].split("/", 1)[0])
        for name in sorted(names):
            yield name
