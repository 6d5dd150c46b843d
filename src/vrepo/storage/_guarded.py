"""One place where whatever a `Storage` raises becomes a `StorageError`.

A repository wraps its storage once, when it is opened or created (`guarded`; the engine's
`ObjectIO` wraps what it unpickles), so every engine call goes through `GuardedStorage`:
vrepo's errors pass unchanged, and any other exception a backend raises (an ``OSError``, a
``RuntimeError``, a botocore error from a third-party `Storage`) reaches the user as a
`StorageError` naming the operation and the key, with the original chained as its cause. A
`put_if_absent` that lost the race still simply returns False.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from vrepo.errors import ObjectNotFoundError, StorageError, VRepoError
from vrepo.storage.base import Storage

_T = TypeVar("_T")
_BYTES_LIKE = (bytes, bytearray, memoryview)


def guarded(storage: Storage) -> Storage:
    """``storage`` wrapped in a `GuardedStorage` (once: a guarded storage is returned as is)."""
    return storage if isinstance(storage, GuardedStorage) else GuardedStorage(storage)


def unguarded(storage: Storage) -> Storage:
    """The storage a `GuardedStorage` wraps (any other storage as is)."""
    return storage.inner if isinstance(storage, GuardedStorage) else storage


class GuardedStorage(Storage):
    """A `Storage` that forwards every call to ``inner`` and turns foreign failures (and
    results of the wrong type) into `StorageError`. Pickles, compares and hashes as
    ``inner`` wrapped."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def __reduce__(self) -> tuple[Callable[[Storage], Storage], tuple[Storage]]:
        return guarded, (self.inner,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GuardedStorage) and other.inner == self.inner

    def __hash__(self) -> int:
        return hash(self.inner)

    def __repr__(self) -> str:
        return repr(self.inner)

    @property
    def url(self) -> str:
        """The wrapped storage's URL."""
        return self.inner.url

    @property
    def supports_atomic_create(self) -> bool:
        """Whether the wrapped storage's `put_if_absent` is atomic."""
        return self.inner.supports_atomic_create

    # --- the calls ---------------------------------------------------------------------

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        return await self._read(key, "get", lambda: self.inner.get(key, byte_range))

    async def get_checked(
        self,
        key: str,
        byte_range: tuple[int, int] | None,
        check: Callable[[bytes], None],
    ) -> bytes:
        return await self._read(
            key, "get_checked", lambda: self.inner.get_checked(key, byte_range, check)
        )

    async def _read(self, key: str, name: str, reading: Callable[[], Awaitable[Any]]) -> bytes:
        try:
            data = await reading()
        except FileNotFoundError as exc:  # a backend's own way of saying "missing"
            raise ObjectNotFoundError(key) from exc
        except VRepoError:
            raise  # a check's own FormatError, among others
        except Exception as exc:
            raise self._failure(f"reading {key!r}", name, exc) from exc
        if not isinstance(data, _BYTES_LIKE):
            raise self._wrong_result(name, key, data, "the object's bytes")
        return data

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self._call(f"writing {key!r}", "put", self.inner.put, key, data)

    async def put_new(self, key: str, data: bytes | memoryview) -> None:
        await self._call(f"writing {key!r}", "put_new", self.inner.put_new, key, data)

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        method = self.inner.put_if_absent
        created = await self._call(f"creating {key!r}", "put_if_absent", method, key, data)
        if not isinstance(created, bool):
            raise self._wrong_result("put_if_absent", key, created, "True or False")
        return created

    async def delete(self, key: str) -> None:
        await self._call(f"deleting {key!r}", "delete", self.inner.delete, key)

    async def exists(self, key: str) -> bool:
        return bool(await self._call(f"checking {key!r}", "exists", self.inner.exists, key))

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        method = self.inner.list
        return await self._call(f"listing {prefix!r}", "list", method, prefix, limit=limit)

    async def size(self, key: str) -> int:
        return await self._call(f"sizing {key!r}", "size", self.inner.size, key)

    async def list_after(
        self, prefix: str, start_after: str, *, limit: int | None = None
    ) -> list[str]:
        method = self.inner.list_after
        doing = f"listing {prefix!r} after {start_after!r}"
        return await self._call(doing, "list_after", method, prefix, start_after, limit=limit)

    async def make_durable(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        what = f"making {keys[0]!r}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
        method = self.inner.make_durable
        await self._call(f"{what} durable", "make_durable", method, keys)

    async def _prepare_for_workers(self) -> None:
        method = self.inner._prepare_for_workers
        await self._call("preparing to send it to workers", "_prepare_for_workers", method)

    # --- helpers -----------------------------------------------------------------------

    async def _call(
        self, doing: str, name: str, method: Callable[..., Awaitable[_T]], *args: Any, **kw: Any
    ) -> _T:
        """``await method(*args, **kw)``; failures other than vrepo's become `StorageError`."""
        try:
            return await method(*args, **kw)
        except VRepoError:
            raise
        except Exception as exc:
            raise self._failure(doing, name, exc) from exc

    def _where(self) -> str:
        try:
            return self.inner.url
        except Exception:  # a broken third-party url must not hide the real failure
            return f"a {type(self.inner).__name__}"

    def _failure(self, doing: str, name: str, exc: Exception) -> StorageError:
        return StorageError(
            f"{doing} in {self._where()} failed: {type(exc).__name__}: {exc} (raised by "
            f"{type(self.inner).__name__}.{name}); check that the storage is reachable and "
            "that its location and credentials are right"
        )

    def _wrong_result(self, name: str, key: str, result: object, wanted: str) -> StorageError:
        return StorageError(
            f"{type(self.inner).__name__}.{name}({key!r}) in {self._where()} returned "
            f"{type(result).__name__}, not {wanted}; the storage backend is broken (see "
            "vrepo.storage.Storage for what each method must return)"
        )
