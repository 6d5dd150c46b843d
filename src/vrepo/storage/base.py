"""The one interface through which vrepo touches bytes at rest.

Keys are relative, '/'-separated paths such as ``snapshots/ABC`` or ``refs/branch.main/x.json``;
every backend validates them (see `vrepo.storage._keys`) so nothing escapes the root.
All methods are coroutines; backends do blocking I/O off the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from vrepo.storage._keys import first_keys


class Storage(ABC):
    """Async object storage: whole/ranged reads, writes, atomic create, delete, listing.

    A storage object pickles as its configuration only and re-creates clients lazily in the
    process that unpickles it. Equality compares configuration (same location, same options).

    Byte ranges are ``(start, end)`` with ``0 <= start <= end``, clipped at the object's end;
    negative ranges raise `InvalidArgumentError` on every backend (see `get`). Failures
    should be raised as `StorageError` (`ObjectNotFoundError` for a missing key); a
    repository wraps its storage so that anything else a backend raises reaches users as a
    `StorageError` naming the operation and key, with the original exception chained.
    """

    @abstractmethod
    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Return the object's bytes, or bytes ``[start, end)`` of it.

        A range reaching past the end is clipped to the object's size before anything is
        allocated, so ``(0, 2**70)`` of a 10-byte object returns its 10 bytes. A range must be
        two integers with ``0 <= start <= end``: negative values and an end before the start
        raise `InvalidArgumentError` (they are not read as Python slices), checked before any
        request, whether or not the key exists. Raises `ObjectNotFoundError` if absent.
        """

    async def get_checked(
        self,
        key: str,
        byte_range: tuple[int, int] | None,
        check: Callable[[bytes], None],
    ) -> bytes:
        """`get`, then ``check(data)``, which raises to refuse the bytes (e.g. a checksum).

        The engine verifies chunks so. A backend that reads in a worker thread may run
        ``check`` there, on bytes still in that core's cache and off the event loop; by
        default it runs after `get` returns.
        """
        data = await self.get(key, byte_range)
        check(data)
        return data

    @abstractmethod
    async def put(self, key: str, data: bytes | memoryview) -> None:
        """Create or replace an object. Readers see the old or the new bytes, never a mix."""

    async def put_new(self, key: str, data: bytes | memoryview) -> None:
        """Create an object under a fresh, unique key that nothing reads until it is written.

        For write-once objects named by random ids (chunks): a backend may write in place
        instead of atomically, because no reader looks for the key before a commit refers to
        it, and an interrupted write leaves only unreferenced garbage. By default, `put`.
        """
        await self.put(key, data)

    @abstractmethod
    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Atomically create an object only if no object has that key.

        Returns True if this call created it, False if the key already existed (in which case
        nothing is changed). Exactly one of many concurrent callers, in any process, wins.
        A created object is durable when this returns.
        """

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object; removing a missing key is not an error."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether an object with this key exists."""

    async def size(self, key: str) -> int:
        """The object's length in bytes; `ObjectNotFoundError` if absent. Garbage collection
        reports what it frees with it. By default the object is read."""
        return len(await self.get(key))

    @abstractmethod
    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix``, sorted lexicographically; the first ``limit`` if given.

        ``prefix`` is a plain string prefix (``"refs/branch.main/"``), not a glob.
        """

    async def list_after(
        self, prefix: str, start_after: str, *, limit: int | None = None
    ) -> list[str]:
        """Keys starting with ``prefix`` that sort after ``start_after``, sorted; the first
        ``limit`` if given.

        Garbage collection lists only objects created since its last run this way (object
        ids sort by creation time). Object stores start the listing there (S3's
        ``StartAfter``); by default the whole prefix is listed and filtered.
        """
        keys = [key for key in await self.list(prefix) if key > start_after]
        return keys if limit is None else first_keys(keys, limit)

    @abstractmethod
    async def make_durable(self, keys: Iterable[str]) -> None:
        """Ensure the given, already written, keys are on stable storage.

        Called by a commit before it publishes the ref record that depends on those objects.
        Backends whose writes are durable on return (S3, memory) do nothing.
        """

    async def _prepare_for_workers(self) -> None:
        """Get ready to be pickled for other processes (`Session.fork` calls it).

        S3 storage with a credentials provider fetches credentials here, so workers receive
        them in the pickle instead of each calling the provider. Others do nothing.
        """
        return None

    @property
    def supports_atomic_create(self) -> bool:
        """Whether `put_if_absent` is atomic across processes (required for safe commits)."""
        return True

    @property
    @abstractmethod
    def url(self) -> str:
        """A short, credential-free description of the location, for messages and repr."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
