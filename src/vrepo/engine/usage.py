"""Disk usage of one snapshot: bytes per array, unique to it or shared, and what is garbage.

A chunk is *shared* when another snapshot some ref's history holds names it too; the bytes
*unique* to a snapshot are what deleting it from every history would give back. The
repository's *reclaimable* bytes are what `Repository.garbage_collect` would free now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vrepo.engine.gc import collect
from vrepo.engine.gc_counts import NO_IDS, Counts, covers, stored_chunk_ids
from vrepo.engine.gc_roots import bounded, retained_from
from vrepo.engine.history_cuts import current_cuts
from vrepo.engine.objects import ObjectIO
from vrepo.engine.refs import current_heads


@dataclass(frozen=True)
class ArrayUsage:
    """One array: its stored chunks (not inline ones), their bytes, and how many of those
    bytes no other snapshot in a history names."""

    path: str
    chunks: int
    stored_bytes: int
    unique_bytes: int

    @property
    def shared_bytes(self) -> int:
        return self.stored_bytes - self.unique_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "chunks": self.chunks,
            "stored_bytes": self.stored_bytes,
            "unique_bytes": self.unique_bytes,
            "shared_bytes": self.shared_bytes,
        }


@dataclass(frozen=True)
class Usage:
    """A snapshot's arrays, and what a collection with the given grace period frees now."""

    snapshot_id: str
    arrays: tuple[ArrayUsage, ...]
    reclaimable_bytes: int
    reclaimable_objects: int

    @property
    def stored_bytes(self) -> int:
        return sum(a.stored_bytes for a in self.arrays)

    @property
    def unique_bytes(self) -> int:
        return sum(a.unique_bytes for a in self.arrays)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "stored_bytes": self.stored_bytes,
            "unique_bytes": self.unique_bytes,
            "shared_bytes": self.stored_bytes - self.unique_bytes,
            "reclaimable_bytes": self.reclaimable_bytes,
            "reclaimable_objects": self.reclaimable_objects,
            "arrays": [a.to_dict() for a in self.arrays],
        }


async def usage(objects: ObjectIO, snapshot_id: str, grace_us: int, *, timed_ids: bool) -> Usage:
    """How ``snapshot_id``'s stored bytes split, array by array (see the module)."""
    target = await objects.get_snapshot(snapshot_id)
    reached: set[str] = set()
    heads = (await current_heads(objects.storage)).values()
    await retained_from(objects, heads, await current_cuts(objects), reached)
    counts = Counts()
    for snapshot in await bounded(map(objects.get_snapshot, sorted(reached | {snapshot_id}))):
        counts.add(snapshot, 1)
    live = counts.live_manifests()
    arrays = []
    for node in target.nodes:
        if node.kind != "array":
            continue
        chunks = stored = unique = 0
        for ref in node.manifests:
            manifest = await objects.get_manifest(ref.id)
            ids = stored_chunk_ids(manifest)
            stored_rows = manifest.columns.stored_mask()
            lengths = manifest.lengths[stored_rows].astype(np.int64)
            chunks, stored = chunks + len(ids), stored + int(lengths.sum())
            if counts.manifests[ref.id].count > 1 or not len(ids):
                continue  # another snapshot names this very manifest: all of it is shared
            coords = manifest.coords()[stored_rows]
            others = [m for m in live if m.path == node.path and m.id != ref.id]
            others = [m for m in others if covers(m, coords)]
            read = await bounded(objects.get_manifest(m.id) for m in others)
            named = np.unique(np.concatenate([stored_chunk_ids(m) for m in read] or [NO_IDS]))
            unique += int(lengths[~np.isin(ids, named)].sum())  # fingerprints: see gc_counts
        arrays.append(ArrayUsage(node.path, chunks, stored, unique))
    garbage = await collect(objects, grace_us, dry_run=True, timed_ids=timed_ids)
    return Usage(snapshot_id, tuple(arrays), garbage.bytes_freed, garbage.objects)
