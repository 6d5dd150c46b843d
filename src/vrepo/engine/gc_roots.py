"""What a garbage collection must keep: every snapshot something may still reach.

Roots are the ref heads; every snapshot a ref pointed at within the grace period (a branch
reset or deleted lately still protects what it left, so a move made while a collection runs
never loses its target); the snapshots and chunks of pending commit offers (`turns/`); and
snapshots younger than the grace period (commits in flight). The retained snapshots are what
the roots' histories hold, with expiry's cuts as they were a grace period ago: a younger cut
protects what it skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from vrepo.engine.history_index import walk_index
from vrepo.engine.objects import ObjectIO
from vrepo.errors import ObjectNotFoundError, SnapshotNotFoundError
from vrepo.format import (
    REFS_PREFIX,
    TURNS_PREFIX,
    RefRecord,
    TurnClaim,
    decode_ref_record,
    decode_turn_claim,
)

T = TypeVar("T")
BATCH = 64  # storage requests in flight at once


async def bounded(calls: Iterable[Awaitable[T]], limit: int = BATCH) -> list[T]:
    """Await ``calls`` with at most ``limit`` running at once; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


@dataclass
class Roots:
    """Where retention starts, and the claims too old to keep."""

    snapshots: set[str] = field(default_factory=set)
    pinned_chunks: set[str] = field(default_factory=set)
    stale_claims: list[str] = field(default_factory=list)


async def find_roots(objects: ObjectIO, cutoff_us: int) -> Roots:
    """The roots of a collection whose grace period began at ``cutoff_us``."""
    roots = Roots()
    by_ref: dict[str, list[str]] = {}
    for key in await objects.storage.list(REFS_PREFIX):  # newest first within each ref
        by_ref.setdefault(key.rsplit("/", 1)[0], []).append(key)
    for snapshots in await bounded(_moved_to(objects, keys, cutoff_us) for keys in by_ref.values()):
        roots.snapshots.update(snapshots)
    claim_keys = await objects.storage.list(TURNS_PREFIX)
    claims = await bounded(_read_claim(objects, key) for key in claim_keys)
    for key, claim in zip(claim_keys, claims, strict=True):
        if claim is None:
            continue
        if claim.offer is not None:
            roots.snapshots.add(claim.offer.base_id)
            roots.pinned_chunks.update(
                ref.chunk_id
                for chunks in claim.offer.chunks
                for ref in chunks.refs
                if ref is not None and ref.chunk_id is not None
            )
        if claim.claimed_at < cutoff_us:
            roots.stale_claims.append(key)
    return roots


async def _moved_to(objects: ObjectIO, keys: list[str], cutoff_us: int) -> set[str]:
    """What one ref points at, and what it pointed at since ``cutoff_us`` (its records are
    read newest first, a few at a time, until one is older)."""
    found: set[str] = set()
    for start in range(0, len(keys), 8):
        records = await asyncio.gather(*(_read_record(objects, k) for k in keys[start : start + 8]))
        for record in records:
            if record.snapshot_id is not None:
                found.add(record.snapshot_id)
            if record.written_at < cutoff_us:
                return found
            if record.previous_snapshot_id is not None:
                found.add(record.previous_snapshot_id)
    return found


async def _read_record(objects: ObjectIO, key: str) -> RefRecord:
    return decode_ref_record(await objects.storage.get(key), what=f"ref record {key}")


async def _read_claim(objects: ObjectIO, key: str) -> TurnClaim | None:
    try:  # its committer may have released it since the listing
        data = await objects.storage.get(key)
    except ObjectNotFoundError:
        return None
    return decode_turn_claim(data, what=f"turn claim {key}")


async def retained_from(
    objects: ObjectIO, roots: Iterable[str], cuts: Mapping[str, str], seen: set[str]
) -> None:
    """Add to ``seen`` the roots and their histories under ``cuts``, through every parent
    of merge commits too. A walk ends at a snapshot seen already, or at one a collection
    deleted (it was expired)."""
    pending = list(roots)
    while pending:
        root = pending.pop()
        if root in seen:
            continue
        try:
            async for entry in walk_index(objects, root, cuts):
                if entry.id in seen:
                    break
                seen.add(entry.id)
                pending.extend(entry.merged_parents)
        except SnapshotNotFoundError:
            continue
