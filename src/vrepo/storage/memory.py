"""Storage in a dict inside the current process: for tests, examples and scratch work.

Objects are immutable ``bytes``. Pickling does not copy the data: an unpickled
`MemoryStorage` is the very same object, which only works inside the process that created
it (threads, event loops, dask's threaded scheduler), never in another process.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Callable, Iterable

from vrepo.errors import ObjectNotFoundError, StorageError
from vrepo.storage._keys import first_keys, validate_byte_range, validate_key, validate_prefix
from vrepo.storage.base import Storage

_REGISTRY: weakref.WeakValueDictionary[str, MemoryStorage] = weakref.WeakValueDictionary()


def _lookup(storage_id: str) -> MemoryStorage:
    """Find a live `MemoryStorage` of this process by id (the target of unpickling)."""
    storage = _REGISTRY.get(storage_id)
    if storage is None:
        raise StorageError(
            f"in-memory storage memory://{storage_id[:8]} does not exist in this process: "
            "in-memory storage exists only inside the process that created it (and only while "
            "it is referenced); use local or S3 storage for multi-process work"
        )
    return storage


class MemoryStorage(Storage):
    """A thread-safe dict of immutable bytes; lost when the process ends."""

    def __init__(self) -> None:
        self._id = uuid.uuid4().hex
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        _REGISTRY[self._id] = self

    @property
    def url(self) -> str:
        """``memory://`` and the first characters of this storage's unique id."""
        return f"memory://{self._id[:8]}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryStorage) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self) -> tuple[Callable[[str], MemoryStorage], tuple[str]]:
        return _lookup, (self._id,)

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The stored bytes, or bytes ``[start, end)`` clipped at the end."""
        validate_key(key)
        byte_range = validate_byte_range(byte_range)
        with self._lock:
            data = self._data.get(key)
        if data is None:
            raise ObjectNotFoundError(key)
        return data if byte_range is None else data[byte_range[0] : byte_range[1]]

    async def put(self, key: str, data: bytes | memoryview) -> None:
        """Store an immutable copy of ``data``."""
        validate_key(key)
        data = bytes(data)
        with self._lock:
            self._data[key] = data

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Store a copy of ``data`` unless the key exists; True if stored."""
        validate_key(key)
        data = bytes(data)
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = data
            return True

    async def delete(self, key: str) -> None:
        """Remove the key if present."""
        validate_key(key)
        with self._lock:
            self._data.pop(key, None)

    async def exists(self, key: str) -> bool:
        """Whether the key is stored."""
        validate_key(key)
        with self._lock:
            return key in self._data

    async def size(self, key: str) -> int:
        """The stored value's length."""
        validate_key(key)
        with self._lock:
            if key not in self._data:
                raise ObjectNotFoundError(key)
            return len(self._data[key])

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """Stored keys starting with ``prefix``, sorted."""
        validate_prefix(prefix)
        with self._lock:
            keys = [key for key in self._data if key.startswith(prefix)]
        return first_keys(keys, limit)

    async def make_durable(self, keys: Iterable[str]) -> None:
        """Nothing to make durable; only checks that every key exists."""
        wanted = [validate_key(key) for key in keys]
        with self._lock:
            missing = next((key for key in wanted if key not in self._data), None)
        if missing is not None:
            raise ObjectNotFoundError(missing)
