"""A storage that keeps some key prefixes on another storage: refs apart from data.

For object stores without atomic create (Swift): `RoutedStorage(data, refs)` sends every key
that starts with one of ``prefixes`` to ``refs`` (a storage with atomic create: local disk on a
shared filesystem, S3) and everything else to ``data``. The default prefixes are exactly the
keys vrepo creates with `put_if_absent` (ref records, commit-queue claims, expiry records,
``repo.json``), so commits are as safe as ``refs``' atomic create while chunks, manifests and
snapshots live in ``data``. The engine sees one storage and does not change.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable
from typing import Any

from vrepo.errors import InvalidArgumentError
from vrepo.storage._keys import validate_key
from vrepo.storage.base import Storage

#: What vrepo writes with put_if_absent: ref records, turns claims, expiry records, repo.json.
#: (The storage layer may not import the format layer; tests check these match it.)
REFS_PREFIXES: tuple[str, ...] = ("refs/", "turns/", "expiry/", "repo.json")


class RoutedStorage(Storage):
    """Keys under ``prefixes`` on ``refs``, all others on ``data``; listings merge both.

    Atomic create is what ``refs`` offers (all `put_if_absent` calls vrepo makes go there).
    A ``put_if_absent`` on a key outside the prefixes goes to ``data`` as any other call.
    """

    def __init__(
        self, data: Storage, refs: Storage, prefixes: Iterable[str] = REFS_PREFIXES
    ) -> None:
        if not isinstance(data, Storage) or not isinstance(refs, Storage):
            raise InvalidArgumentError("RoutedStorage needs two Storage objects (data, refs)")
        self._prefixes = tuple(prefixes)
        if not self._prefixes or not all(isinstance(p, str) and p for p in self._prefixes):
            raise InvalidArgumentError("prefixes must be non-empty strings")
        self._data, self._refs = data, refs

    @property
    def data(self) -> Storage:
        """Where everything but the routed prefixes lives."""
        return self._data

    @property
    def refs(self) -> Storage:
        """Where the routed prefixes live."""
        return self._refs

    @property
    def supports_atomic_create(self) -> bool:
        """Whether ``refs`` has atomic create (vrepo's creates all go there)."""
        return self._refs.supports_atomic_create

    @property
    def url(self) -> str:
        return f"{self._data.url} (refs on {self._refs.url})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoutedStorage) and (other._data, other._refs, other._prefixes) == (
            self._data,
            self._refs,
            self._prefixes,
        )

    def __hash__(self) -> int:
        return hash((RoutedStorage, self._data, self._refs, self._prefixes))

    def _for(self, key: str) -> Storage:
        validate_key(key)
        return self._refs if key.startswith(self._prefixes) else self._data

    def _for_prefix(self, prefix: str) -> list[Storage]:
        """The storages that may hold keys starting with ``prefix``."""
        if prefix.startswith(self._prefixes):
            return [self._refs]
        if any(routed.startswith(prefix) for routed in self._prefixes):
            return [self._data, self._refs]
        return [self._data]

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        return await self._for(key).get(key, byte_range)

    async def get_checked(self, key: str, byte_range: Any, check: Any) -> bytes:
        return await self._for(key).get_checked(key, byte_range, check)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self._for(key).put(key, data)

    async def put_new(self, key: str, data: bytes | memoryview) -> None:
        await self._for(key).put_new(key, data)

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        return await self._for(key).put_if_absent(key, data)

    async def delete(self, key: str) -> None:
        await self._for(key).delete(key)

    async def exists(self, key: str) -> bool:
        return await self._for(key).exists(key)

    async def size(self, key: str) -> int:
        return await self._for(key).size(key)

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        parts = await asyncio.gather(
            *(s.list(prefix, limit=limit) for s in self._for_prefix(prefix))
        )
        return self._merge(parts, limit)

    async def list_after(
        self, prefix: str, start_after: str, *, limit: int | None = None
    ) -> list[str]:
        parts = await asyncio.gather(
            *(s.list_after(prefix, start_after, limit=limit) for s in self._for_prefix(prefix))
        )
        return self._merge(parts, limit)

    def _merge(self, parts: list[list[str]], limit: int | None) -> list[str]:
        if len(parts) == 1:
            return parts[0]
        data, refs = parts
        # each side keeps only its own keys (a stray one on the wrong side is not ours)
        merged = heapq.merge(
            (k for k in data if not k.startswith(self._prefixes)),
            (k for k in refs if k.startswith(self._prefixes)),
        )
        keys = list(merged)
        return keys if limit is None else keys[:limit]

    async def make_durable(self, keys: Iterable[str]) -> None:
        data, refs = [], []
        for key in keys:
            (refs if self._for(key) is self._refs else data).append(key)
        await asyncio.gather(self._data.make_durable(data), self._refs.make_durable(refs))

    async def _prepare_for_workers(self) -> None:
        await asyncio.gather(self._data._prepare_for_workers(), self._refs._prepare_for_workers())

    async def close(self) -> None:
        """Close both storages' clients, where they have a ``close``."""
        for storage in (self._data, self._refs):
            close = getattr(storage, "close", None)
            if close is not None:
                await close()
