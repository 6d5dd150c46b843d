"""Storage on any other fsspec filesystem (GCS, Azure, HTTP, SFTP, fsspec's memory://, ...).

fsspec has no portable atomic create, so `put_if_absent` refuses to run unless the caller
promises a single writer; see `FsspecStorage`. Calls use the filesystem's synchronous API in
a worker thread, so any (synchronous-mode) fsspec filesystem works from any event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from vrepo.errors import InvalidArgumentError, ObjectNotFoundError, StorageError
from vrepo.storage._keys import (
    first_keys,
    is_valid_key,
    validate_byte_range,
    validate_key,
    validate_prefix,
)
from vrepo.storage.base import Storage

_T = TypeVar("_T")
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
# A ranged read of at most this many bytes, ending below _DIRECT_READ_END, is one cat_file;
# longer or farther ones look the size up first (one more call, for a large read).
_DIRECT_READ_BYTES = 1 << 20
_DIRECT_READ_END = 1 << 40


class FsspecStorage(Storage):
    """Objects as files below ``root`` of an fsspec filesystem.

    Guarantees only what the filesystem gives: whether a reader can see a partly written
    object, and whether a written object is durable, depend on it. Without
    ``single_writer=True``, `put_if_absent` (and so every commit) raises `StorageError`;
    with it, `put_if_absent` is an existence check followed by a write, which is correct only
    while one process at a time writes to the repository.
    """

    def __init__(self, fs: Any, root: str, *, single_writer: bool = False) -> None:
        if getattr(fs, "asynchronous", False):
            raise InvalidArgumentError(
                "FsspecStorage needs a filesystem in synchronous mode; create it with "
                "asynchronous=False (the default)"
            )
        if not isinstance(root, str):
            raise InvalidArgumentError(f"root must be a str, got {type(root).__name__}")
        self._fs = fs
        self._root = fs._strip_protocol(root).rstrip("/")
        self._single_writer = bool(single_writer)

    # --- identity and pickling ---------------------------------------------------------

    @property
    def fs(self) -> Any:
        """The fsspec filesystem."""
        return self._fs

    @property
    def root(self) -> str:
        """The root path inside the filesystem (without protocol)."""
        return self._root

    @property
    def single_writer(self) -> bool:
        """Whether the caller promised that only one process writes at a time."""
        return self._single_writer

    @property
    def supports_atomic_create(self) -> bool:
        """Always False: fsspec has no portable atomic create."""
        return False

    @property
    def url(self) -> str:
        """The root as a URL with the filesystem's protocol."""
        return self._fs.unstrip_protocol(self._root or self._fs.root_marker)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other._fs == self._fs  # type: ignore[attr-defined]
            and other._root == self._root  # type: ignore[attr-defined]
            and other._single_writer == self._single_writer  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self), self._fs, self._root, self._single_writer))

    # --- helpers -----------------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        return f"{self._root}/{key}" if self._root else key

    async def _run(self, doing: str, key: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run a blocking filesystem call in a thread; OSError → StorageError."""
        try:
            return await asyncio.to_thread(func, *args)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"{doing} {key!r} in {self.url} failed: {exc}") from exc

    # --- blocking implementations ------------------------------------------------------

    def _get_sync(self, key: str, path: str, byte_range: tuple[int, int] | None) -> bytes:
        try:
            if byte_range is None:
                return bytes(self._fs.cat_file(path))
            start, end = byte_range
            if end - start > _DIRECT_READ_BYTES or end > _DIRECT_READ_END:
                # Some filesystems (local, and those wrapping it) allocate what a read asks
                # for, and cannot seek to any offset: clip to the size first.
                size = self._fs.size(path)
                if size is None:
                    raise FileNotFoundError(path)
                start, end = min(start, size), min(end, size)
            if start == end:  # still opened, so a missing object is reported
                start = end = 0
            return bytes(self._fs.cat_file(path, start=start, end=end))
        except _MISSING:
            raise ObjectNotFoundError(key) from None

    def _put_sync(self, path: str, data: bytes) -> None:
        parent = self._fs._parent(path)
        if parent and parent != self._fs.root_marker:
            self._fs.makedirs(parent, exist_ok=True)
        self._fs.pipe_file(path, data)

    def _put_if_absent_sync(self, path: str, data: bytes) -> bool:
        if self._fs.isfile(path):
            return False
        self._put_sync(path, data)
        return True

    def _delete_sync(self, path: str) -> None:
        if self._fs.isfile(path):  # never remove a directory
            with contextlib.suppress(*_MISSING):
                self._fs.rm_file(path)

    def _list_sync(self, prefix: str) -> list[str]:
        directory = prefix.rpartition("/")[0]
        base = self._path(directory) if directory else self._root or self._fs.root_marker
        start = len(self._root) + 1 if self._root else len(self._fs.root_marker)
        keys = []
        try:
            found = self._fs.find(base, withdirs=False)
        except _MISSING:
            return []
        for path in found:
            key = self._fs._strip_protocol(path)[start:]
            if key.startswith(prefix) and is_valid_key(key):
                keys.append(key)
        return keys

    # --- async interface ---------------------------------------------------------------

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The file's bytes, or bytes ``[start, end)`` of it, clipped at the end."""
        path = self._path(key)
        byte_range = validate_byte_range(byte_range)
        return await self._run("reading", key, self._get_sync, key, path, byte_range)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        """Write the file (atomic only if the filesystem makes single writes atomic)."""
        await self._run("writing", key, self._put_sync, self._path(key), bytes(data))

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Refused unless ``single_writer``: then an existence check and a write."""
        path = self._path(key)
        if not self._single_writer:
            raise StorageError(
                f"cannot create {key!r} atomically in {self.url}: this fsspec filesystem has "
                "no atomic create, so concurrent commits could overwrite each other and lose "
                "data. Use local storage (vrepo.local_storage) or S3 storage "
                "(vrepo.s3_storage), or pass single_writer=True if you guarantee that only "
                "one process writes to this repository at a time"
            )
        return await self._run("creating", key, self._put_if_absent_sync, path, bytes(data))

    async def delete(self, key: str) -> None:
        """Remove the file if present; directories are left alone."""
        await self._run("deleting", key, self._delete_sync, self._path(key))

    async def exists(self, key: str) -> bool:
        """Whether a file exists at this key."""
        return await self._run("checking", key, self._fs.isfile, self._path(key))

    async def size(self, key: str) -> int:
        """The file's size as the filesystem reports it."""
        return await self._run("sizing", key, self._size_sync, key, self._path(key))

    def _size_sync(self, key: str, path: str) -> int:
        try:
            return int(self._fs.size(path))
        except _MISSING:
            raise ObjectNotFoundError(key) from None

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """Files below the directory the prefix names that start with it, sorted."""
        validate_prefix(prefix)
        keys = await self._run("listing", prefix, self._list_sync, prefix)
        return first_keys(keys, limit)

    async def make_durable(self, keys: Iterable[str]) -> None:
        """Nothing fsspec can do portably (no fsync); only validates the keys."""
        for key in keys:
            validate_key(key)
