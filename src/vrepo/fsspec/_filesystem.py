"""`VRepoFileSystem`: any version of a repository as a read-only fsspec file system.

Registered as protocol ``vrepo`` (the ``fsspec.specs`` entry point), so every fsspec-aware
tool reads a version by URL: ``xr.open_zarr("vrepo::data/ocean.vrepo@v1")``,
``zarr.open_group("vrepo::s3://bucket/ocean@main~2", mode="r")``,
``fsspec.open("vrepo::data/ocean.vrepo@v1/zarr.json")``. Reads go through a read-only
session's `VRepoStore`, so they are what ``engine="vrepo"`` reads, checks included.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from fsspec.asyn import AsyncFileSystem
from zarr.abc.store import ByteRequest
from zarr.core.buffer import default_buffer_prototype

from vrepo.errors import InvalidArgumentError, ReadOnlyError, RepositoryNotFoundError
from vrepo.fsspec._file import VRepoFile
from vrepo.fsspec._paths import PROTOCOL, check_key, join, strip_protocol
from vrepo.fsspec._requests import byte_request
from vrepo.fsspec._roots import Opener, Root, pinned_root

try:  # fsspec >= 2025.10 hands the whole chained path to subclasses of ChainedFileSystem
    from fsspec.implementations.chained import ChainedFileSystem as _Chained

    _PATH_PASSED = True
except ImportError:  # older fsspec: the path comes as `fo`, and the file system's paths are ''
    _Chained = object  # type: ignore[assignment,misc]
    _PATH_PASSED = False

_READ_ONLY = (
    "the vrepo fsspec file system is read-only; write through a writable session: "
    "s = vrepo.Repository.open(LOCATION).writable_session('main'), then "
    "ds.to_zarr(s.store, zarr_format=3, consolidated=False) (or zarr on s.store) "
    "and s.commit('message')"
)

# AbstractFileSystem's and AsyncFileSystem's own keywords; any other is a storage option.
_FSSPEC_OPTIONS = (
    "asynchronous",
    "loop",
    "batch_size",
    "use_listings_cache",
    "listings_expiry_time",
    "max_paths",
)


class VRepoFileSystem(AsyncFileSystem, _Chained):
    """A read-only fsspec file system over the versions of vrepo repositories.

    Two ways to make one:

    - from a URL, ``vrepo::LOCATION[@REVISION][/ZARR_KEY]`` (or ``vrepo://LOCATION...``),
      where LOCATION is a path or a URL vrepo opens and REVISION the reference syntax used
      everywhere (``v1``, ``main~2``, ``tag:v1``, a snapshot id). Paths name the
      repository too: the root is the shortest prefix of the path that holds a repository,
      the rest is a zarr key. The storage options of vrepo (``endpoint_url``, ``region``,
      ``credentials``, ... of `vrepo.storage.s3_storage` or `swift_storage`) come chained
      (``storage_options={"s3": {...}}`` to fsspec or zarr), as ``storage_options=``, or
      as keywords;
    - pinned to one version: ``VRepoFileSystem(location="data/r.vrepo", ref="v1")``
      (``location`` may carry ``@REVISION`` instead); paths are then zarr keys.

    Each repository and revision is opened once per file system instance (fsspec caches
    instances), so a branch reads the head it had when first read; `invalidate_cache` reopens.
    """

    protocol = (PROTOCOL,)
    root_marker = ""
    async_impl = True
    # fsspec passes the chained path as `fo`: where paths carry it, it names no instance;
    # where they are relative to it (older fsspec), it must.
    _strip_tokenize_options = ("fo",) if _PATH_PASSED else ()

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        ref: str | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fo: str | None = None,
        **kwargs: Any,
    ) -> None:
        fsspec_options = {k: kwargs.pop(k) for k in _FSSPEC_OPTIONS if k in kwargs}
        super().__init__(**fsspec_options)
        if storage_options is not None and not isinstance(storage_options, dict):
            raise InvalidArgumentError(
                "storage_options must be a dict of s3_storage or swift_storage keyword "
                f"arguments, got {type(storage_options).__name__}"
            )
        if location is None and ref is not None:
            raise InvalidArgumentError(
                f"ref={ref!r} needs location= (the repository's path or URL); or write the "
                "revision into the path: 'vrepo::LOCATION@REVISION'"
            )
        if location is not None and target_protocol is not None:
            raise InvalidArgumentError(
                "give either location= or a chained URL ('vrepo::LOCATION@REVISION'), not both"
            )
        self._location = None if location is None else os.fspath(location)
        # With fsspec < 2025.10, chained URLs give paths relative to `fo` (see _full).
        self._base = strip_protocol(fo) if fo and not _PATH_PASSED else None
        self._ref = ref
        # Other keywords are vrepo storage options too: fsspec passes a URL's options so.
        options = {**kwargs, **(storage_options or {})}
        self._opener = Opener(target_protocol, dict(target_options or {}), options)
        self._roots: dict[str, Root] = {}
        self._lock = threading.Lock()

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return strip_protocol(os.fspath(path))

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget the opened versions, so branches are read again at their current heads."""
        with self._lock:
            self._roots.clear()
        super().invalidate_cache(path)

    # --- finding a path's repository ------------------------------------------------------

    def _open_root(self, path: str) -> tuple[Root, str]:
        """Blocking: the root and key of a stripped path, opening the root once."""
        with self._lock:
            if self._location is not None:
                root = self._roots.get("")
                if root is None:
                    session = pinned_root(self._location, self._ref, self._opener.storage_options)
                    root = self._roots[""] = Root("", session)
                return root, check_key(path.lstrip("/"), path)
            known = self._known_root(path)  # opened while this call waited for the lock
            return known or self._opener.find_root(path, self._roots)

    def _known_root(self, path: str) -> tuple[Root, str] | None:
        """The root and key of ``path`` if its root is open (shortest first), without I/O."""
        if self._location is not None:
            root = self._roots.get("")
            return None if root is None else (root, check_key(path.lstrip("/"), path))
        found = [
            root
            for text, root in list(self._roots.items())
            if path == text or path.startswith(text + "/")
        ]
        if not found:
            return None
        root = min(found, key=lambda r: len(r.text))
        return root, check_key(path[len(root.text) :].lstrip("/"), path)

    def _full(self, path: str) -> str:
        """A path as the repository's path plus key: paths are relative to ``fo`` on fsspec
        before 2025.10, which passes a chained URL's path so and names it '' to zarr."""
        path = self._strip_protocol(path)
        if self._base is None:
            return path
        return join(self._base, path.strip("/"))

    def _name(self, root: Root, key: str) -> str:
        """The path callers see for ``key`` of ``root`` (relative to ``fo``, see `_full`)."""
        name = join(root.text, key)
        base = self._base
        if base is None:
            return name
        if name == base:
            return ""
        return name[len(base) + 1 :] if name.startswith(base + "/") else name

    async def _resolve(self, path: str) -> tuple[Root, str]:
        path = self._full(path)
        known = self._known_root(path)
        if known is not None:
            return known
        return await asyncio.to_thread(self._open_root, path)

    # --- reading ---------------------------------------------------------------------------

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        root, key = await self._resolve(path)
        return await self._entry(root, key, missing_ok=False)

    async def _entry(self, root: Root, key: str, missing_ok: bool = True) -> dict[str, Any]:
        """fsspec's details of a key: a file (a stored value) or a directory (keys below)."""
        name = self._name(root, key)
        if key:
            try:
                return {"name": name, "size": await root.store.getsize(key), "type": "file"}
            except FileNotFoundError:
                if not missing_ok and await root.store.is_empty(key):
                    raise FileNotFoundError(name) from None
        return {"name": name, "size": 0, "type": "directory"}

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        root, key = await self._resolve(path)
        names = [name async for name in root.store.list_dir(key)]
        if not names:
            entry = await self._entry(root, key, missing_ok=not key)
            if entry["type"] == "file":
                return [entry] if detail else [entry["name"]]
            return []
        keys = [join(key, name) for name in names]
        if not detail:
            return [self._name(root, k) for k in keys]
        return list(await asyncio.gather(*(self._entry(root, k) for k in keys)))

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        """Whether a key is stored (or has keys below it); False where no repository is."""
        try:
            await self._info(path)
        except (FileNotFoundError, RepositoryNotFoundError):
            return False
        return True

    async def _read(self, root: Root, key: str, requests: Sequence[ByteRequest | None]) -> list:
        """The bytes of ``requests`` of one key, near ranges read together."""
        name = self._name(root, key)
        if not key:
            raise IsADirectoryError(name)
        buffers = await root.store.get_partial_values(
            default_buffer_prototype(), [(key, r) for r in requests]
        )
        if any(b is None for b in buffers):
            raise FileNotFoundError(name)
        return [b.to_bytes() for b in buffers]  # type: ignore[union-attr]

    async def _request(self, root: Root, key: str, start: Any, end: Any) -> ByteRequest | None:
        async def size() -> int:
            return await root.store.getsize(key)

        return await byte_request(start, end, size)

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        root, key = await self._resolve(path)
        request = await self._request(root, key, start, end) if key else None
        (data,) = await self._read(root, key, [request])
        return data

    async def _cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int | None] | None,
        ends: int | list[int | None] | None,
        max_gap: int | None = None,
        batch_size: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """Many ranges: each path is resolved once and its near ranges read together."""
        count = len(paths)
        starts = starts if isinstance(starts, list) else [starts] * count
        ends = ends if isinstance(ends, list) else [ends] * count
        if len(starts) != count or len(ends) != count:
            raise InvalidArgumentError("paths, starts and ends must have the same length")
        by_path: dict[str, list[int]] = {}
        for index, path in enumerate(paths):
            by_path.setdefault(path, []).append(index)
        out: list[bytes | Exception] = [b""] * count

        async def one(path: str, indices: list[int]) -> None:
            try:
                root, key = await self._resolve(path)
                requests = [await self._request(root, key, starts[i], ends[i]) for i in indices]
                for i, data in zip(indices, await self._read(root, key, requests), strict=True):
                    out[i] = data
            except Exception as error:
                if on_error != "return":
                    raise
                for i in indices:
                    out[i] = error

        await asyncio.gather(*(one(path, indices) for path, indices in by_path.items()))
        return out

    async def _find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every key below ``path``, from the store's listing (no walk of directories)."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        root, key = await self._resolve(path)
        prefix = f"{key}/" if key else ""
        keys = sorted([k async for k in root.store.list_prefix(prefix)])
        files = [k for k in keys if maxdepth is None or k[len(prefix) :].count("/") < maxdepth]
        found = {k: "file" for k in files}
        if not keys and key and await root.store.exists(key):
            found = {key: "file"}
        elif withdirs:
            if keys and (key or root.text):
                found.setdefault(key, "directory")  # fsspec lists the directory itself
            for k in keys:
                parts = k[len(prefix) :].split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    if maxdepth is None or depth <= maxdepth:
                        found.setdefault(prefix + "/".join(parts[:depth]), "directory")
        names = sorted(found)
        if not detail:
            return [self._name(root, k) for k in names]
        entries = await asyncio.gather(*(self._entry(root, k) for k in names))
        return {entry["name"]: entry for entry in entries}

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        """Copy one stored value to a local file."""
        data = await self._cat_file(rpath)
        await asyncio.to_thread(_write_local, lpath, data)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | str | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> VRepoFile:
        if mode != "rb":
            _refuse_write()
        details = self.info(path)
        if details["type"] != "file":
            raise IsADirectoryError(details["name"])
        return VRepoFile(
            self,
            details["name"],
            mode="rb",
            block_size=block_size or "default",
            cache_options=cache_options,
            size=details["size"],
            **kwargs,
        )

    # --- writing: refused ---------------------------------------------------------------------

    async def _pipe_file(self, path: str, value: Any, **kwargs: Any) -> NoReturn:
        _refuse_write()

    async def _put_file(self, lpath: str, rpath: str, **kwargs: Any) -> NoReturn:
        _refuse_write()

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> NoReturn:
        _refuse_write()

    async def _rm_file(self, path: str, **kwargs: Any) -> NoReturn:
        _refuse_write()

    async def _rm(self, path: Any, recursive: bool = False, **kwargs: Any) -> NoReturn:
        _refuse_write()

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> NoReturn:
        _refuse_write()

    async def _makedirs(self, path: str, exist_ok: bool = False) -> NoReturn:
        _refuse_write()

    def rmdir(self, path: str) -> NoReturn:
        _refuse_write()

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> NoReturn:
        _refuse_write()


def _refuse_write() -> NoReturn:
    raise ReadOnlyError(_READ_ONLY)


def _write_local(lpath: str, data: bytes) -> None:
    with open(lpath, "wb") as file:
        file.write(data)


__all__ = ["VRepoFileSystem"]
