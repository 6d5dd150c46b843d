"""Storage on a local (or network-mounted) filesystem: the default backend.

Each key is a file below the root. Writes go to a temporary file (named with a leading '.',
so it can never be mistaken for a key) in the target's directory and are then renamed or
hard-linked into place, so readers never see partial objects. Durability is explicit: `put`
only starts writeback, `make_durable` and `put_if_absent` fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import vrepo.storage._files as _files
import vrepo.storage._syncfs as _syncfs
from vrepo import config as _settings
from vrepo.errors import InvalidArgumentError, ObjectNotFoundError, StorageError
from vrepo.storage._keys import first_keys, validate_byte_range, validate_key, validate_prefix
from vrepo.storage.base import Storage

_T = TypeVar("_T")
_write_all = _files.write_all  # importable from here, as before (benchmarks use it)

_TEMP_NAME_CHARS = 64  # keeps '.<name>.<hex>.tmp' well below NAME_MAX (255)
# os.link errors meaning "this filesystem cannot hard-link", not "the target exists".
_NO_LINK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "ENOSYS")
    if hasattr(errno, name)
)


# From this many objects one syncfs per filesystem beats one fsync (one journal commit) each
# even when other programs have dirty data to flush: committing 10,000 chunk files took 1.7 s
# with fsyncs, 65 ms with syncfs. Fewer objects use syncfs only on a quiet machine (_syncfs).
_SYNCFS_FROM = 1024


class LocalStorage(Storage):
    """Objects as files below a root directory; safe for many threads and processes.

    The root is made absolute at construction and created on the first write.
    ``fsync_threads`` (default: the ``storage.local.fsync-threads`` setting, 8) is how many
    files a commit makes durable in parallel.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync_threads: int | None = None) -> None:
        self._root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        if fsync_threads is None:
            fsync_threads = _settings.get("storage.local.fsync-threads")
        elif isinstance(fsync_threads, bool) or not isinstance(fsync_threads, int):
            raise InvalidArgumentError(f"fsync_threads must be an int, got {fsync_threads!r}")
        elif fsync_threads < 1:
            raise InvalidArgumentError(f"fsync_threads must be at least 1, got {fsync_threads}")
        self._fsync_threads = fsync_threads
        self._init_caches()

    def _init_caches(self) -> None:
        self._dirs: set[str] = set()  # directories known to exist
        self._unsynced_dirs: set[str] = set()  # dirs with a new subdirectory not yet fsynced
        self._links_supported = True
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # --- identity and pickling ---------------------------------------------------------

    @property
    def root(self) -> str:
        """The absolute path of the root directory."""
        return self._root

    @property
    def url(self) -> str:
        """``file://`` followed by the absolute root path."""
        return f"file://{self._root}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._root == self._root  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._root))

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self._root, "fsync_threads": self._fsync_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._root = state["root"]
        self._fsync_threads = state.get("fsync_threads", 8)
        self._init_caches()

    # --- paths -------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        if os.sep != "/":
            key = key.replace("/", os.sep)
        return self._root + os.sep + key

    def _ensure_dir(self, directory: str) -> None:
        """Create ``directory`` and missing parents, remembering what needs an fsync."""
        if directory in self._dirs:
            return
        missing = []
        current = directory
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for path in reversed(missing):
            # FileExistsError: made concurrently, maybe by a process that never fsyncs it.
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
            self._unsynced_dirs.add(os.path.dirname(path))
        self._dirs.add(directory)

    def _open_temp(self, path: str) -> tuple[int, str]:
        """Create a temporary file next to ``path``, creating its directory if needed."""
        directory, name = os.path.split(path)
        temp = os.path.join(directory, f".{name[:_TEMP_NAME_CHARS]}.{secrets.token_hex(8)}.tmp")
        return self._create(temp), temp

    def _create(self, path: str) -> int:
        """Create a new file (never an existing one), and its directory if needed."""
        directory = os.path.dirname(path)
        self._ensure_dir(directory)
        try:
            return os.open(path, _files.CREATE_FLAGS, 0o666)
        except FileNotFoundError:  # directory removed behind our back: forget and retry
            self._dirs.discard(directory)
            self._ensure_dir(directory)
            return os.open(path, _files.CREATE_FLAGS, 0o666)

    def _sync_new_dirs(self, directory: str) -> None:
        """fsync the directories above ``directory`` that gained a subdirectory."""
        if not self._unsynced_dirs:
            return
        current = directory
        while True:
            parent = os.path.dirname(current)
            if parent in self._unsynced_dirs:
                _files.fsync_dir(parent)
                self._unsynced_dirs.discard(parent)  # only after the fsync succeeded
            if parent == current:
                return
            current = parent

    # --- blocking implementations (run in a worker thread) -----------------------------

    def _get_sync(
        self,
        key: str,
        path: str,
        byte_range: tuple[int, int] | None,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes:
        data = self._read_sync(key, path, byte_range)
        if check is not None:
            check(data)
        return data

    def _read_sync(self, key: str, path: str, byte_range: tuple[int, int] | None) -> bytes:
        try:
            fd = os.open(path, _files.READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(key) from None
        except PermissionError:
            if os.path.isdir(path):  # Windows refuses to open directories
                raise ObjectNotFoundError(key) from None
            raise
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise ObjectNotFoundError(key)
            # Clipped to the size first: pread allocates what it is asked for.
            start, end = (0, st.st_size) if byte_range is None else byte_range
            start, end = min(start, st.st_size), min(end, st.st_size)
            return _files.read_upto(fd, end - start, start) if end > start else b""
        except IsADirectoryError:
            raise ObjectNotFoundError(key) from None
        finally:
            os.close(fd)

    def _put_sync(self, path: str, data: bytes | memoryview) -> None:
        fd, temp = self._open_temp(path)
        _files.fill_new_file(fd, temp, data)
        try:
            os.replace(temp, path)
        except BaseException:
            _files.unlink_quietly(temp)
            raise

    def _put_new_sync(self, path: str, data: bytes | memoryview) -> None:
        _files.fill_new_file(self._create(path), path, data)

    def _put_if_absent_sync(self, path: str, data: bytes | memoryview) -> bool:
        if not self._links_supported:
            return self._create_exclusive(path, data)
        fd, temp = self._open_temp(path)
        try:
            _files.write_and_close(fd, data, os.fsync)
            try:
                os.link(temp, path)  # atomic: fails if the target exists
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINK_ERRNOS:
                    raise
                self._links_supported = False
                return self._create_exclusive(path, data)
        finally:
            _files.unlink_quietly(temp)
        self._sync_dir(os.path.dirname(path))
        return True

    def _sync_dir(self, directory: str) -> None:
        """fsync a directory and the new directories above it."""
        _files.fsync_dir(directory)
        self._sync_new_dirs(directory)

    def _create_exclusive(self, path: str, data: bytes | memoryview) -> bool:
        """put_if_absent without hard links: O_EXCL creation, then write.

        Creation is still atomic (one winner), but content visibility is not: another
        process may briefly see the file empty or partly written.
        """
        directory = os.path.dirname(path)
        self._ensure_dir(directory)
        try:
            fd = os.open(path, _files.CREATE_FLAGS, 0o666)
        except FileExistsError:
            return False
        try:
            _files.write_and_close(fd, data, os.fsync)
        except BaseException:
            _files.unlink_quietly(path)  # do not leave a truncated object behind
            raise
        self._sync_dir(directory)
        return True

    def _list_sync(self, prefix: str, limit: int | None) -> list[str]:
        base_key, _, name_prefix = prefix.rpartition("/")
        base = self._root + (os.sep + base_key.replace("/", os.sep) if base_key else "")
        key_start = base_key + "/" if base_key else ""
        found: list[str] = []
        stack = [(base, key_start, name_prefix)]
        while stack:
            directory, start, wanted = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.startswith(wanted):
                    continue  # temporary files and dot-names are never keys
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, start + name + "/", ""))
                elif entry.is_file():
                    found.append(start + name)
        return first_keys(found, limit)

    def _exists_sync(self, path: str) -> bool:
        return os.path.isfile(path)

    def _delete_sync(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            os.unlink(path)

    def _fsync_object(self, key: str, path: str) -> None:
        try:
            if not os.path.isfile(path):
                raise ObjectNotFoundError(key)
            _files.fsync_path(path)
        except FileNotFoundError:
            raise ObjectNotFoundError(key) from None

    def _sync_filesystems(self, paths: dict[str, str], directories: set[str]) -> bool:
        """syncfs each filesystem holding ``directories`` if that beats per-file fsyncs
        (`_syncfs.worthwhile`); then every object must exist. False: nothing done."""
        try:
            by_device = {os.stat(d).st_dev: d for d in directories}
        except OSError:  # a missing directory: the per-file path reports the missing object
            return False
        if not _syncfs.worthwhile(len(paths), by_device, many=_SYNCFS_FROM):
            return False
        for key, path in paths.items():
            if not os.path.isfile(path):
                raise ObjectNotFoundError(key)
        new_dirs = set(self._unsynced_dirs)  # parents of new directories
        for directory in by_device.values():
            fd = os.open(directory, os.O_RDONLY)
            try:
                _syncfs.syncfs(fd)
            finally:
                os.close(fd)
        for directory in new_dirs:  # on a synced filesystem already, or else fsynced here
            if os.stat(directory).st_dev not in by_device:
                _files.fsync_dir(directory)
        self._unsynced_dirs.difference_update(new_dirs)
        return True

    def _durable_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._fsync_threads, "vrepo-fsync")
                weakref.finalize(self, self._pool.shutdown, wait=False)
            return self._pool

    # --- async interface ---------------------------------------------------------------

    async def _run(self, verb: str, key: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run blocking ``func`` in the loop's default executor; OSError → StorageError."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, func, *args)
        except OSError as exc:
            raise StorageError(f"{verb} {key!r} in {self.url} failed: {exc}") from exc

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Read a file, or bytes ``[start, end)`` of it (clipped at end of file)."""
        return await self.get_checked(key, byte_range, None)

    async def get_checked(
        self,
        key: str,
        byte_range: tuple[int, int] | None,
        check: Callable[[bytes], None] | None,
    ) -> bytes:
        """`get`, with ``check(data)`` run in the reading thread, right after the read."""
        path = self._path(key)
        byte_range = validate_byte_range(byte_range)
        return await self._run("reading", key, self._get_sync, key, path, byte_range, check)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        """Write via a temporary file and an atomic rename; not yet durable (see make_durable)."""
        await self._run("writing", key, self._put_sync, self._path(key), data)

    async def put_new(self, key: str, data: bytes | memoryview) -> None:
        """Write in place (no temporary file and rename): the key is fresh and unread."""
        await self._run("writing", key, self._put_new_sync, self._path(key), data)

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Create durably via hard link of an fsynced temp file; False if the key exists."""
        path = self._path(key)
        return await self._run("creating", key, self._put_if_absent_sync, path, data)

    async def delete(self, key: str) -> None:
        """Remove the file if present; directories are left in place."""
        await self._run("deleting", key, self._delete_sync, self._path(key))

    async def exists(self, key: str) -> bool:
        """Whether a regular file exists at this key."""
        return await self._run("checking", key, self._exists_sync, self._path(key))

    async def size(self, key: str) -> int:
        """The file's size (one stat)."""
        return await self._run("sizing", key, self._size_sync, key, self._path(key))

    def _size_sync(self, key: str, path: str) -> int:
        try:
            return os.stat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix``, sorted; walks only the directory the prefix names."""
        validate_prefix(prefix)
        return await self._run("listing", prefix, self._list_sync, prefix, limit)

    async def make_durable(self, keys: Iterable[str]) -> None:
        """fsync the files, their directories, and new directories above them, in parallel."""
        paths = {key: self._path(key) for key in keys}
        if not paths:
            return
        directories = {os.path.dirname(path) for path in paths.values()}
        loop = asyncio.get_running_loop()
        pool = self._durable_pool()
        try:
            if await loop.run_in_executor(pool, self._sync_filesystems, paths, directories):
                return
            # Files first, so a missing key is reported as such, not as a missing directory.
            await asyncio.gather(
                *(loop.run_in_executor(pool, self._fsync_object, k, p) for k, p in paths.items())
            )
            await asyncio.gather(
                *(loop.run_in_executor(pool, self._sync_dir, d) for d in directories)
            )
        except OSError as exc:
            raise StorageError(f"making objects durable in {self.url} failed: {exc}") from exc
