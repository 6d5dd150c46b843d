"""Layer 1: the only code that touches bytes at rest.

`Storage` is the async interface; `LocalStorage` (the default) and `MemoryStorage`
implement it. `as_storage` turns what a user passes (a path, a ``file://`` URL or a
storage object) into a `Storage`.
"""

from __future__ import annotations

import os

from vrepo.errors import StorageError
from vrepo.storage.base import Storage
from vrepo.storage.local import LocalStorage
from vrepo.storage.memory import MemoryStorage

_SUPPORTED = "plain paths and file:// URLs (local storage), or a Storage object"


def local_storage(path: str | os.PathLike[str]) -> LocalStorage:
    """Storage in a directory of the local filesystem (created on first write)."""
    return LocalStorage(path)


def memory_storage() -> MemoryStorage:
    """New, empty storage inside this process only: for tests and scratch work."""
    return MemoryStorage()


def as_storage(obj: Storage | str | os.PathLike[str]) -> Storage:
    """Accept a storage object as is, or turn a path or ``file://`` URL into `LocalStorage`.

    Lets user-facing functions take either a location or a configured storage.
    """
    if isinstance(obj, Storage):
        return obj
    if isinstance(obj, str):
        scheme, sep, rest = obj.partition("://")
        if sep:
            if scheme.lower() != "file":
                raise StorageError(
                    f"unsupported storage URL scheme {scheme!r} in {obj!r}; supported are "
                    f"{_SUPPORTED}"
                )
            obj = rest
        return LocalStorage(obj)
    if isinstance(obj, os.PathLike):
        return LocalStorage(obj)
    raise TypeError(f"expected {_SUPPORTED}, got {type(obj).__name__}")


__all__ = [
    "LocalStorage",
    "MemoryStorage",
    "Storage",
    "as_storage",
    "local_storage",
    "memory_storage",
]
