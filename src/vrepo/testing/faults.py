"""A storage that fails on purpose: for testing what vrepo (and code on it) does on faults.

`FaultyStorage` wraps any `Storage` and makes chosen calls fail, either before they reach the
wrapped storage or after it applied them (the ambiguous failure of a timeout or a reset
connection after the write landed). Failures come from `fail_next` (exact, for one test) or
at random at a given rate (for soak tests); each is an `InjectedFault`, a
`ConnectionResetError`, as a third-party storage library would raise.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from vrepo.storage import Storage

METHODS = ("get", "put", "put_new", "put_if_absent", "delete", "exists", "list", "make_durable")
WRITES = frozenset({"put", "put_new", "put_if_absent", "delete"})


class InjectedFault(ConnectionResetError):
    """A failure `FaultyStorage` made up; ``applied`` tells whether the call took effect."""

    def __init__(self, method: str, key: str, *, applied: bool) -> None:
        when = "after applying it" if applied else "before applying it"
        super().__init__(f"injected fault in {method}({key!r}), {when}")
        self.applied = applied


class FaultyStorage(Storage):
    """``inner`` with failures injected.

    ``rate`` is the share of calls (to ``methods``) that fail at random, ``applied_share``
    the share of failing writes that fail after taking effect; ``seed`` makes the sequence
    repeatable. ``injected`` counts the faults raised, by method and whether applied.
    """

    def __init__(
        self,
        inner: Storage,
        *,
        rate: float = 0.0,
        applied_share: float = 0.5,
        methods: Iterable[str] = METHODS,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0 or not 0.0 <= applied_share <= 1.0:
            raise ValueError("rate and applied_share are shares between 0 and 1")
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown storage methods {sorted(unknown)}; choose from {METHODS}")
        self.inner = inner
        self.rate = rate
        self.applied_share = applied_share
        self.methods = frozenset(methods)
        self._random = random.Random(seed)
        self._planned: list[tuple[str, bool, str]] = []  # (method, applied, key prefix)
        self.injected: Counter[tuple[str, bool]] = Counter()

    def fail_next(
        self, method: str, *, after_applying: bool = False, times: int = 1, key_prefix: str = ""
    ) -> None:
        """Make the next ``times`` calls of ``method`` (on keys starting so) fail."""
        if method not in METHODS:
            raise ValueError(f"unknown storage method {method!r}; choose from {METHODS}")
        if after_applying and method not in WRITES:
            raise ValueError(f"{method} changes nothing, so it cannot fail after applying")
        self._planned.extend([(method, after_applying, key_prefix)] * times)

    @property
    def planned(self) -> list[tuple[str, bool, str]]:
        """The faults `fail_next` planned that have not happened yet: (method, applied, prefix)."""
        return list(self._planned)

    def _fault(self, method: str, key: str) -> bool | None:
        """None: no fault; else whether the call is to be applied before it fails."""
        for i, (planned, applied, prefix) in enumerate(self._planned):
            if planned == method and key.startswith(prefix):
                del self._planned[i]
                return applied
        if method in self.methods and self.rate and self._random.random() < self.rate:
            return method in WRITES and self._random.random() < self.applied_share
        return None

    async def _call(self, method: str, key: str, *args: Any, **kwargs: Any) -> Any:
        applied = self._fault(method, key)
        if applied is None:
            return await getattr(self.inner, method)(*args, **kwargs)
        if applied:
            await getattr(self.inner, method)(*args, **kwargs)
        self.injected[method, applied] += 1
        raise InjectedFault(method, key, applied=applied)

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        return await self._call("get", key, key, byte_range)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self._call("put", key, key, data)

    async def put_new(self, key: str, data: bytes | memoryview) -> None:
        await self._call("put_new", key, key, data)

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        return await self._call("put_if_absent", key, key, data)

    async def delete(self, key: str) -> None:
        await self._call("delete", key, key)

    async def exists(self, key: str) -> bool:
        return await self._call("exists", key, key)

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        return await self._call("list", prefix, prefix, limit=limit)

    async def make_durable(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        await self._call("make_durable", keys[0] if keys else "", keys)

    async def _prepare_for_workers(self) -> None:
        await self.inner._prepare_for_workers()

    @property
    def supports_atomic_create(self) -> bool:
        return self.inner.supports_atomic_create

    @property
    def url(self) -> str:
        return f"faulty+{self.inner.url}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FaultyStorage) and other.inner == self.inner

    def __hash__(self) -> int:
        return hash(("faulty", self.inner))
