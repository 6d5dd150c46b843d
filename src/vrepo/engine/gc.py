"""Garbage collection: deleting what no retained snapshot names and the grace period passed.

A collection finds the retained snapshots (`gc_roots`), counts what they name (`gc_counts`),
and deletes:

- snapshots not retained (and their transaction logs), once they are older than the grace
  period, or were dropped since the last collection (ref moves and cuts are trusted only
  when that old, so a dropped snapshot has been unreachable that long);
- manifests and history pages no retained snapshot names: those that died with dropped
  snapshots, and unnamed ones older than the grace period;
- chunks no live manifest (or loose key, or pending offer) names: those of dead manifests
  that no live manifest of the same array covering their place names, and unnamed ones
  older than the grace period (abandoned sessions, forks and jobs);
- turn claims older than the grace period.

Its cost follows what changed since the last collection: the state it leaves (`gc/`) holds
the counts and a *mark* below which every object with a timed id was decided, so the next
one lists chunks, manifests and pages from the mark on (object stores start the listing
there) and reads only the manifests made since, not every one. A repository created before
timed ids (format 3) is collected in full each time, as is one whose state is missing or
out of date (a collection that stopped half-way).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vrepo._progress import Note, silent
from vrepo.engine.gc_counts import NO_IDS, Counts, covers, fingerprints, stored_chunk_ids
from vrepo.engine.gc_roots import Roots, bounded, find_roots, retained_from
from vrepo.engine.history_cuts import cuts_as_of
from vrepo.engine.objects import ObjectIO, chunk_key, snapshot_key, transaction_key
from vrepo.errors import ObjectNotFoundError, SnapshotNotFoundError
from vrepo.format import (
    GC_PREFIX,
    ID_BYTES,
    GcState,
    Manifest,
    NamedManifest,
    Snapshot,
    array_to_ids,
    decode_gc_state,
    encode_gc_state,
    ids_to_array,
    new_id,
    timed_id_floor,
    timed_id_seconds,
)
from vrepo.format.chunk_grid import ravel

CLOCK_SKEW_S = 600  # clocks of writers may differ by half this; see docs/garbage-collection.md
_FUTURE_S = 86_400  # a random (pre-format-3) id "made" over a day ahead is not a timed id
_STATES_KEPT = 2


@dataclass(frozen=True)
class GcReport:
    """What a collection deleted (with ``dry_run``: would delete), by kind, and the bytes."""

    chunks: int
    manifests: int
    snapshots: int
    transaction_logs: int
    history_pages: int
    other: int  # turn claims and the states of earlier collections
    bytes_freed: int
    retained_snapshots: int
    incremental: bool
    dry_run: bool
    seconds: float

    @property
    def objects(self) -> int:
        """How many objects in all."""
        return (
            self.chunks
            + self.manifests
            + self.snapshots
            + self.transaction_logs
            + self.history_pages
            + self.other
        )


class _StateOutOfDate(Exception):
    """The last collection's state names objects that are gone: collect in full instead."""


async def collect(
    objects: ObjectIO,
    grace_us: int,
    *,
    dry_run: bool,
    timed_ids: bool,
    now_us: int | None = None,
    note: Note = silent,
) -> GcReport:
    """Collect the garbage of the repository ``objects`` reads (see the module's docstring);
    ``note`` hears which phase the collection is in."""
    started = time.perf_counter()
    now = time.time_ns() // 1000 if now_us is None else now_us
    state = await _newest_state(objects) if timed_ids else None
    try:
        run = _Run(objects, now, grace_us, state, timed_ids, note)
        deleted = await run.collect(dry_run)
    except _StateOutOfDate:
        note("the last collection's state is out of date: collecting in full")
        run = _Run(objects, now, grace_us, None, timed_ids, note)
        deleted = await run.collect(dry_run)
    return GcReport(
        **deleted,
        retained_snapshots=len(run.retained),
        incremental=run.state is not None,
        dry_run=dry_run,
        seconds=time.perf_counter() - started,
    )


class _Run:
    """One collection: what it found, then what it deletes."""

    def __init__(
        self,
        objects: ObjectIO,
        now_us: int,
        grace_us: int,
        state: GcState | None,
        timed: bool,
        note: Note = silent,
    ) -> None:
        self.objects, self.storage, self.note = objects, objects.storage, note
        self.now_us, self.grace_us, self.state, self.timed = now_us, grace_us, state, timed
        self.cutoff_us = now_us - grace_us
        self.cutoff_s = self.cutoff_us // 1_000_000
        self.retained: set[str] = set()
        self.pinned: set[str] = set()
        self.sizes: dict[str, int] = {}

    @property
    def mark(self) -> str:
        """Where the next collection's listings start: everything with a timed id below was
        decided now. Set back by the clock skew allowed, so that objects a writer whose clock
        lags this one's makes later are still listed then, and never past a chunk kept only
        because a pending offer names it."""
        seconds = self.cutoff_s - CLOCK_SKEW_S
        if self.pinned:  # kept only while an offer names them: listed again next time
            seconds = min(seconds, *map(timed_id_seconds, self.pinned))
        return timed_id_floor(seconds)

    def _old(self, object_id: str) -> bool:
        """Whether an object was made before the grace period, as its timed id says. A
        repository from before timed ids holds random ids: one "made" far in the future is
        such an id, and old (its collection assumes no older vrepo writes to it any more)."""
        made = timed_id_seconds(object_id)
        return made < self.cutoff_s or (not self.timed and made > self.now_us // 10**6 + _FUTURE_S)

    async def collect(self, dry_run: bool) -> dict[str, int]:
        self.note("finding what branches, tags and pending commits reach")
        roots = await find_roots(self.objects, self.cutoff_us)
        stored = await self._retain(roots)
        self.note(f"counting the references of {len(self.retained)} retained snapshots")
        counts = await self._count(stored)
        live = counts.live_manifests()
        self.pinned = roots.pinned_chunks
        others = counts.live_others()
        loose = {k.removeprefix("chunks/") for k in others if k.startswith("chunks/")}
        pinned = self.pinned | loose
        self.note("finding manifests and chunks nothing reaches")
        dead_manifests, dead_chunks = await self._dead_manifests_and_chunks(counts, live, pinned)
        if self.state is not None:  # loose keys' chunks whose snapshots all died
            dead_chunks |= {
                k.removeprefix("chunks/")
                for k in self.state.others
                if k.startswith("chunks/") and k.removeprefix("chunks/") not in pinned
            }
        dead_snapshots = sorted(set(stored) - self.retained)
        old_states = (await self.storage.list(GC_PREFIX))[: 1 - _STATES_KEPT]
        groups = {
            "chunks": [chunk_key(c) for c in sorted(dead_chunks)],
            "manifests": [f"manifests/{m}" for m in sorted(dead_manifests)],
            "snapshots": [snapshot_key(s) for s in dead_snapshots],
            "transaction_logs": [transaction_key(s) for s in dead_snapshots],
            "history_pages": await self._dead_pages(others),
            "other": [*roots.stale_claims, *old_states],
        }
        total = sum(map(len, groups.values()))
        self.note(f"measuring {total} unreachable objects")
        sizes = await bounded(self._size(key) for keys in groups.values() for key in keys)
        if not dry_run:
            self.note(f"deleting {total} unreachable objects")
            for kind in ("chunks", "manifests", "history_pages", "snapshots", "transaction_logs"):
                await bounded(self.storage.delete(key) for key in groups[kind])
            self.objects.forget(key for keys in groups.values() for key in keys)
            await self._save_state(live, others)
            await bounded(self.storage.delete(key) for key in groups["other"])
        present = [key for keys in groups.values() for key in keys]
        found = dict(zip(present, sizes, strict=True))
        result = {kind: sum(found[k] is not None for k in keys) for kind, keys in groups.items()}
        return result | {"bytes_freed": sum(n for n in sizes if n is not None)}

    async def _size(self, key: str) -> int | None:
        """The object's size, or None if it is not there (a transaction log never written)."""
        if key in self.sizes:
            return self.sizes[key]
        try:
            return await self.storage.size(key)
        except ObjectNotFoundError:
            return None

    # --- snapshots ---------------------------------------------------------------------

    async def _retain(self, roots: Roots) -> dict[str, Snapshot | None]:
        """Fill ``self.retained``; return every stored snapshot id, with the snapshot read
        if it is not retained (None if it vanished meanwhile)."""
        cuts = await cuts_as_of(self.objects, self.cutoff_us)
        stored = [key.removeprefix("snapshots/") for key in await self.storage.list("snapshots/")]
        await retained_from(self.objects, roots.snapshots, cuts, self.retained)
        others = [s for s in stored if s not in self.retained]
        read = dict(zip(others, await bounded(map(self._snapshot_or_none, others)), strict=True))
        young = [
            s for s, one in read.items() if one is not None and one.created_at >= self.cutoff_us
        ]
        await retained_from(self.objects, young, cuts, self.retained)
        return {s: read.get(s) for s in stored}

    async def _snapshot_or_none(self, snapshot_id: str) -> Snapshot | None:
        try:
            return await self.objects.get_snapshot(snapshot_id)
        except SnapshotNotFoundError:
            return None

    async def _count(self, stored: dict[str, Snapshot | None]) -> Counts:
        """The counts for ``self.retained``: the last state's, updated by the snapshots
        retained or dropped since; in full, from every retained snapshot."""
        if self.state is None:
            counts, added, dropped = Counts(), self.retained, set()
        else:
            before = set(self.state.snapshots)
            counts = Counts.of_state(self.state)
            added, dropped = self.retained - before, before - self.retained
        for snapshot_id, snapshot in zip(
            sorted(added), await bounded(map(self._snapshot_or_none, sorted(added))), strict=True
        ):
            if snapshot is None:  # a concurrent collection deleted it: nothing to keep
                self.retained.discard(snapshot_id)
            else:
                counts.add(snapshot, 1)
        for snapshot_id in sorted(dropped):
            snapshot = stored.get(snapshot_id)
            if snapshot is None:  # deleted by a collection that left no state
                raise _StateOutOfDate(snapshot_id)
            counts.add(snapshot, -1)
        return counts

    # --- manifests and chunks ----------------------------------------------------------

    async def _dead_manifests_and_chunks(
        self, counts: Counts, live: list[NamedManifest], pinned: set[str]
    ) -> tuple[set[str], set[str]]:
        live_ids = {m.id for m in live}
        named_before = {} if self.state is None else {m.id: m for m in self.state.manifests}
        dying = [m for m in named_before.values() if m.id not in live_ids]
        listed = await self._listed("manifests/")
        dead_manifests = {m.id for m in dying} | {
            m for m in listed if m not in live_ids and self._old(m)
        }
        # Chunks made since the mark are named only by manifests made since (less the skew).
        floor_s = -1 if self.state is None else timed_id_seconds(self.state.mark) - CLOCK_SKEW_S
        recent = [m for m in live if m.id not in named_before or timed_id_seconds(m.id) >= floor_s]
        named = await self._stored_ids(recent)
        dead = {c for c in await self._listed("chunks/") if self._old(c) and c not in pinned}
        dead = _minus(dead, named)
        dead |= await self._chunks_of_dying(dying, live, pinned)
        return dead_manifests, dead

    async def _chunks_of_dying(
        self, dying: list[NamedManifest], live: list[NamedManifest], pinned: set[str]
    ) -> set[str]:
        """The chunks of manifests that died that no live manifest of the same array names
        at the same place (a chunk id sits at the one place it was written for), compared
        place by place, vectorised: the cost is the dying manifests' size."""
        by_path: dict[str, list[NamedManifest]] = {}
        for m in live:
            by_path.setdefault(m.path, []).append(m)
        dead = [np.zeros((0, ID_BYTES), dtype=np.uint8)]
        for named, manifest in zip(
            dying, await bounded(self._manifest(m.id) for m in dying), strict=True
        ):
            rows = np.flatnonzero(manifest.columns.stored_mask())
            if not len(rows):
                continue
            coords = manifest.coords()[rows]
            ids = manifest.ids[rows]
            kept = np.zeros(len(rows), dtype=bool)
            covering = [o for o in by_path.get(named.path, ()) if covers(o, coords)]
            for other in await bounded(self._manifest(o.id) for o in covering):
                kept |= _same_ref_at(other, coords, ids)
            gone = rows[~kept]
            lengths = manifest.lengths[gone]
            gone_ids = np.ascontiguousarray(manifest.ids[gone])
            for chunk_id, length in zip(array_to_ids(gone_ids), lengths.tolist(), strict=True):
                self.sizes[chunk_key(chunk_id)] = int(length)
            dead.append(gone_ids)
        return set(array_to_ids(np.concatenate(dead))) - pinned

    async def _manifest(self, manifest_id: str) -> Manifest:
        try:
            return await self.objects.get_manifest(manifest_id)
        except ObjectNotFoundError:
            raise _StateOutOfDate(manifest_id) from None

    async def _stored_ids(self, manifests: Iterable[NamedManifest]) -> np.ndarray:
        """Fingerprints of the stored chunks ``manifests`` name, sorted, unique."""
        read = await bounded(self._manifest(m.id) for m in manifests)
        return np.unique(np.concatenate([stored_chunk_ids(m) for m in read] or [NO_IDS]))

    # --- listing -----------------------------------------------------------------------

    async def _listed(self, prefix: str) -> list[str]:
        """The ids under ``prefix`` (``"chunks/"``...) made since the mark; in full, all."""
        if self.state is None:
            keys = await self.storage.list(prefix)
        else:
            keys = await self.storage.list_after(prefix, prefix + self.state.mark)
        return [key.removeprefix(prefix) for key in keys]

    async def _dead_pages(self, live: dict[str, int]) -> list[str]:
        dying = [] if self.state is None else [k for k in self.state.others if k not in live]
        listed = [f"history/{p}" for p in await self._listed("history/") if self._old(p)]
        return sorted(
            {k for k in dying if k.startswith("history/")} | {k for k in listed if k not in live}
        )

    # --- state -------------------------------------------------------------------------

    async def _save_state(self, live: list[NamedManifest], others: dict[str, int]) -> None:
        state = GcState(
            ran_at=self.now_us,
            grace=self.grace_us,
            mark=self.mark,
            snapshots=tuple(sorted(self.retained)),
            manifests=tuple(live),
            others=others,
        )
        key = f"{GC_PREFIX}{time.time_ns() // 1000:017d}-{new_id()}.state"  # newest last
        await self.storage.put_new(key, encode_gc_state(state))


async def _newest_state(objects: ObjectIO) -> GcState | None:
    keys = await objects.storage.list(GC_PREFIX)
    if not keys:
        return None
    return decode_gc_state(await objects.storage.get(keys[-1]), what=f"collection state {keys[-1]}")


def _minus(candidates: set[str], named: np.ndarray) -> set[str]:
    """``candidates`` (ids) less those whose fingerprint is in ``named`` (sorted)."""
    if not candidates or not len(named):
        return candidates
    listed = sorted(candidates)
    hit = np.isin(fingerprints(ids_to_array(listed)), named)
    return {i for i, named_too in zip(listed, hit, strict=True) if not named_too}


def _same_ref_at(manifest: Manifest, coords: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """For each of ``coords`` (n, ndim), whether ``manifest`` holds a stored chunk there
    whose id is the row of ``ids`` (n, 12): one binary search over its sorted keys."""
    extent = np.asarray(manifest.extent, dtype=np.uint64)
    same = np.zeros(len(coords), dtype=bool)
    if not len(manifest) or len(extent) != coords.shape[1]:
        return same
    inside = np.flatnonzero((coords < extent).all(axis=1))
    keys = ravel(coords[inside], manifest.extent)
    at = np.minimum(np.searchsorted(manifest.keys, keys), len(manifest) - 1)
    found = manifest.keys[at] == keys
    same[inside] = found & (manifest.columns.ids_or_zeros()[at] == ids[inside]).all(axis=1)
    return same
