"""Differences between any two snapshots: nodes, chunk counts per array, opaque objects.

Two snapshots are compared directly (not through their transaction logs), so a diff works
between any two snapshots of a repository, related or not. Arrays whose manifests are the
same objects in both are skipped without reading them; the others are compared column by
column with numpy, never with a Python loop over chunks.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vrepo.engine.node import parse_node_metadata
from vrepo.engine.objects import ObjectIO
from vrepo.format import Manifest, ManifestRef, NodeSnapshot, Snapshot
from vrepo.format.ids import ID_BYTES


@dataclass(frozen=True)
class ArrayChunkDiff:
    """How many chunks of one array were added, changed (a different ref) and removed."""

    path: str
    added: int = 0
    changed: int = 0
    removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "added": self.added, "changed": self.changed,
                "removed": self.removed}  # fmt: skip


@dataclass(frozen=True)
class SnapshotDiff:
    """What changed from snapshot ``from_id`` (None: an empty repository) to ``to_id``.

    Node paths are absolute ("/" is the root group). A node whose kind changed is listed as
    removed and added. ``metadata_changed`` lists nodes in both whose ``zarr.json`` differs
    (a new shape after an append, new attributes...). ``chunks`` has one entry per array
    with chunk changes, sorted by path; a chunk counts as changed when its ref differs (a
    rewritten chunk stored as a new object counts even if its bytes are the same).
    """

    from_id: str | None
    to_id: str
    added_groups: tuple[str, ...] = ()
    added_arrays: tuple[str, ...] = ()
    removed_groups: tuple[str, ...] = ()
    removed_arrays: tuple[str, ...] = ()
    metadata_changed: tuple[str, ...] = ()
    chunks: tuple[ArrayChunkDiff, ...] = ()
    objects_added: tuple[str, ...] = ()
    objects_changed: tuple[str, ...] = ()
    objects_removed: tuple[str, ...] = ()
    _by_path: dict[str, ArrayChunkDiff] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._by_path.update((c.path, c) for c in self.chunks)

    def chunks_of(self, path: str) -> ArrayChunkDiff:
        """The chunk counts of the array at ``path`` (all zero if its chunks did not change)."""
        return self._by_path.get(path, ArrayChunkDiff(path))

    def is_empty(self) -> bool:
        """Whether the two snapshots hold the same data."""
        return not self.chunks and not any(getattr(self, name) for name in _PATH_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with these field names (``chunks`` as a list of dicts)."""
        out: dict[str, Any] = {"from_id": self.from_id, "to_id": self.to_id}
        out.update((name, list(getattr(self, name))) for name in _PATH_FIELDS)
        out["chunks"] = [c.to_dict() for c in self.chunks]
        return out

    def __str__(self) -> str:
        if self.is_empty():
            return "no changes"
        lines = [
            f"{title}: {', '.join(getattr(self, name))}"
            for name, title in zip(_PATH_FIELDS, _TITLES, strict=True)
            if getattr(self, name)
        ]
        for c in self.chunks:
            lines.append(f"chunks of {c.path}: +{c.added} ~{c.changed} -{c.removed}")
        return "\n".join(lines)


_PATH_FIELDS = (
    "added_groups",
    "added_arrays",
    "removed_groups",
    "removed_arrays",
    "metadata_changed",
    "objects_added",
    "objects_changed",
    "objects_removed",
)
_TITLES = (
    "added groups",
    "added arrays",
    "removed groups",
    "removed arrays",
    "metadata changed",
    "objects added",
    "objects changed",
    "objects removed",
)


async def diff_snapshots(objects: ObjectIO, old: Snapshot | None, new: Snapshot) -> SnapshotDiff:
    """Compare two snapshots of one repository (``old`` None: compare with an empty one)."""
    old_nodes = {n.path: n for n in old.nodes} if old is not None else {}
    new_nodes = {n.path: n for n in new.nodes}
    added: dict[str, list[str]] = {"group": [], "array": []}
    removed: dict[str, list[str]] = {"group": [], "array": []}
    changed_meta: list[str] = []
    counts: dict[str, ArrayChunkDiff] = {}
    compare: list[tuple[NodeSnapshot, NodeSnapshot]] = []
    for path in sorted(old_nodes.keys() | new_nodes.keys()):
        before, after = old_nodes.get(path), new_nodes.get(path)
        if before is not None and after is not None and before.kind == after.kind:
            if before.zarr_json != after.zarr_json:
                changed_meta.append(path)
            if after.kind != "array" or before.manifests == after.manifests:
                continue
            if _same_layout(before, after):
                compare.append((before, after))
            else:  # re-defined with another chunk layout: every old chunk is gone
                counts[path] = ArrayChunkDiff(path, _count(after), 0, _count(before))
            continue
        if before is not None:
            removed[before.kind].append(path)
            if before.kind == "array" and _count(before):
                counts[path] = ArrayChunkDiff(path, removed=_count(before))
        if after is not None:
            added[after.kind].append(path)
            if after.kind == "array" and _count(after):  # (then ``before`` was a group)
                counts[path] = ArrayChunkDiff(path, added=_count(after))
    compared = await asyncio.gather(*(_compare_arrays(objects, a, b) for a, b in compare))
    counts.update((c.path, c) for c in compared if c.added or c.changed or c.removed)

    old_loose = {o.key: o.ref for o in old.loose} if old is not None else {}
    new_loose = {o.key: o.ref for o in new.loose}
    return SnapshotDiff(
        from_id=old.id if old is not None else None,
        to_id=new.id,
        added_groups=tuple(added["group"]),
        added_arrays=tuple(added["array"]),
        removed_groups=tuple(removed["group"]),
        removed_arrays=tuple(removed["array"]),
        metadata_changed=tuple(changed_meta),
        chunks=tuple(counts[p] for p in sorted(counts)),
        objects_added=tuple(sorted(new_loose.keys() - old_loose.keys())),
        objects_changed=tuple(
            sorted(k for k in new_loose.keys() & old_loose.keys() if new_loose[k] != old_loose[k])
        ),
        objects_removed=tuple(sorted(old_loose.keys() - new_loose.keys())),
    )


def _count(node: NodeSnapshot) -> int:
    return sum(m.count for m in node.manifests)


def _same_layout(a: NodeSnapshot, b: NodeSnapshot) -> bool:
    """Whether chunk coordinates mean the same in both versions of an array."""
    layout_a = parse_node_metadata(a.zarr_json).layout
    layout_b = parse_node_metadata(b.zarr_json).layout
    return layout_a.compatible_with(layout_b)


async def _compare_arrays(objects: ObjectIO, a: NodeSnapshot, b: NodeSnapshot) -> ArrayChunkDiff:
    """Chunk counts added, changed and removed; manifests (pieces) that both versions share
    hold the same chunks and no others, so only the rest is read and compared."""
    ndim = parse_node_metadata(a.zarr_json).layout.ndim
    shared = {m.id for m in a.manifests} & {m.id for m in b.manifests}
    old, new = await asyncio.gather(
        _columns(objects, [m for m in a.manifests if m.id not in shared], ndim),
        _columns(objects, [m for m in b.manifests if m.id not in shared], ndim),
    )
    return ArrayChunkDiff(a.path, *_compare_columns(old, new))


@dataclass(frozen=True)
class _Columns:
    """The chunk refs of an array (one or more manifests) as flat columns."""

    coords: np.ndarray  # uint64 (n, ndim)
    ids: np.ndarray  # uint8 (n, 12), zero rows inline
    offsets: np.ndarray  # uint64 (n,), into `blob` when inline
    lengths: np.ndarray  # uint32 (n,)
    blob: np.ndarray  # uint8: the inline payloads
    virtual: np.ndarray  # bool (n,): virtual refs (zero ids too)
    sources: np.ndarray  # int64 (n,): a virtual ref's (location, validator), hashed; else 0


async def _columns(objects: ObjectIO, refs: list[ManifestRef], ndim: int) -> _Columns:
    manifests = await asyncio.gather(*(objects.get_manifest(m.id) for m in refs))
    return _columns_of(list(manifests), ndim)


def _columns_of(manifests: list[Manifest], ndim: int) -> _Columns:
    """Concatenate the columns of an array's manifests (inline offsets shifted to one blob)."""
    if not manifests:
        manifests = [Manifest.empty(ndim)]
    blobs = [np.frombuffer(m.inline_blob, dtype=np.uint8) for m in manifests]
    shifts = np.cumsum([0, *(len(b) for b in blobs[:-1])], dtype=np.uint64)
    ids, offsets, virtual, sources = [], [], [], []
    for m, shift in zip(manifests, shifts, strict=True):
        m_ids = m.ids if m.ids is not None else np.zeros((len(m), ID_BYTES), np.uint8)
        inline = m.columns.inline_mask()
        ids.append(m_ids)
        offsets.append(np.where(inline, m.offsets + shift, m.offsets))
        virtual.append(m.columns.virtual_mask())
        sources.append(_source_hashes(m))
    return _Columns(
        virtual=np.concatenate(virtual),
        sources=np.concatenate(sources),
        coords=np.concatenate([m.coords() for m in manifests]),
        ids=np.concatenate(ids),
        offsets=np.concatenate(offsets),
        lengths=np.concatenate([m.lengths for m in manifests]),
        blob=np.concatenate(blobs),
    )


def _source_hashes(m: Manifest) -> np.ndarray:
    """Per row, a hash of a virtual ref's (location, validator) (one per table entry, not per
    row); 0 for other rows. Compared within one process only."""
    if m.locations is None:
        return np.zeros(len(m), np.int64)
    table = np.array([hash(source) for source in m.sources] + [0], dtype=np.int64)
    rows = np.where(m.columns.virtual_mask(), m.locations, len(m.sources))
    return table[rows]


def _compare_columns(old: _Columns, new: _Columns) -> tuple[int, int, int]:
    """(added, changed, removed) chunk counts from ``old`` to ``new``, all in numpy."""
    added, changed, removed = _row_changes(old, new)
    return len(added), len(changed), len(removed)


def _row_changes(old: _Columns, new: _Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows added (indices into ``new``), changed (into ``new``: a different ref at the same
    coordinates) and removed (into ``old``), all in numpy."""
    keys_old, keys_new = _comparable_keys(old.coords, new.coords)
    common, i_old, i_new = np.intersect1d(
        keys_old, keys_new, assume_unique=True, return_indices=True
    )
    added = np.setdiff1d(np.arange(len(keys_new)), i_new, assume_unique=True)
    removed = np.setdiff1d(np.arange(len(keys_old)), i_old, assume_unique=True)
    if not len(common):
        return added, i_new, removed
    ids_old, ids_new = old.ids[i_old], new.ids[i_new]
    virtual_old, virtual_new = old.virtual[i_old], new.virtual[i_new]
    inline_old = ~ids_old.any(axis=1) & ~virtual_old
    inline_new = ~ids_new.any(axis=1) & ~virtual_new
    len_old, len_new = old.lengths[i_old], new.lengths[i_new]
    off_old, off_new = old.offsets[i_old], new.offsets[i_new]
    differs = (inline_old != inline_new) | (virtual_old != virtual_new) | (len_old != len_new)
    external = ~inline_old & ~inline_new & ~virtual_old & ~virtual_new
    differs |= external & ((ids_old != ids_new).any(axis=1) | (off_old != off_new))
    both_virtual = virtual_old & virtual_new
    differs |= both_virtual & ((old.sources[i_old] != new.sources[i_new]) | (off_old != off_new))
    both_inline = np.flatnonzero(inline_old & inline_new & (len_old == len_new) & (len_old > 0))
    if len(both_inline):
        differs[both_inline] = _payloads_differ(
            old.blob, off_old[both_inline], new.blob, off_new[both_inline], len_old[both_inline]
        )
    return added, i_new[differs], removed


@dataclass(frozen=True)
class ChunkDelta:
    """One array's chunks that differ from one version to another, as (k, ndim) uint64
    coordinates: ``written`` holds a ref in the new version (added or changed), ``removed``
    only in the old one."""

    written: np.ndarray
    removed: np.ndarray

    def coords(self) -> np.ndarray:
        """Every chunk that differs."""
        return np.concatenate([self.written, self.removed])


async def chunk_delta(
    objects: ObjectIO, old: tuple[ManifestRef, ...], new: tuple[ManifestRef, ...], ndim: int
) -> ChunkDelta:
    """The chunks that differ between two versions of an array with one chunk layout (their
    manifests), reading only the manifests the two do not share."""
    shared = {m.id for m in old} & {m.id for m in new}
    a, b = await asyncio.gather(
        _columns(objects, [m for m in old if m.id not in shared], ndim),
        _columns(objects, [m for m in new if m.id not in shared], ndim),
    )
    added, changed, removed = _row_changes(a, b)
    written = np.sort(np.concatenate([added, changed]))
    return ChunkDelta(b.coords[written], a.coords[removed])


def _comparable_keys(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 1-D key per coordinate row, comparable between ``a`` and ``b``."""
    ndim = a.shape[1]
    if ndim == 0:
        return np.zeros(len(a), np.uint64), np.zeros(len(b), np.uint64)
    both = np.concatenate([a, b])
    extent = [int(x) + 1 for x in both.max(axis=0)] if len(both) else [1] * ndim
    if math.prod(extent) < 2**64:  # row-major linear index
        keys = both[:, 0].copy()
        for d in range(1, ndim):
            keys *= np.uint64(extent[d])
            keys += both[:, d]
    else:  # a sparse, huge grid: compare whole rows as opaque items
        rows = np.ascontiguousarray(both, dtype=">u8")
        keys = rows.view(np.dtype((np.void, 8 * ndim))).ravel()
    return keys[: len(a)], keys[len(a) :]


def _payloads_differ(
    blob_a: np.ndarray,
    offsets_a: np.ndarray,
    blob_b: np.ndarray,
    offsets_b: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """Per row, whether two equally long inline payloads differ (gathered, then compared)."""
    lengths = lengths.astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    pos_a = np.repeat(offsets_a.astype(np.int64), lengths) + within
    pos_b = np.repeat(offsets_b.astype(np.int64), lengths) + within
    unequal = (blob_a[pos_a] != blob_b[pos_b]).astype(np.int64)
    return np.add.reduceat(unequal, starts) > 0


__all__ = ["ArrayChunkDiff", "ChunkDelta", "SnapshotDiff", "chunk_delta", "diff_snapshots"]
