"""Changing manifest columns: setting and removing chunk refs by sorted merge.

Old rows are never visited one by one: the changed keys are found by binary search, new rows
go in at their sorted positions with `np.insert`, and the live inline payloads are copied in
runs whose number grows with the number of changes, not with the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vrepo.format.chunk_grid import (
    as_coords,
    check_extent,
    check_unique,
    extent_of,
    ravel,
    unravel,
)
from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.ids import ID_BYTES
from vrepo.format.manifest_build import RefColumns
from vrepo.format.manifest_columns import (
    NO_CHECKSUM,
    NOT_VIRTUAL,
    ManifestColumns,
    Source,
    canonical_checksums,
    canonical_locations,
    merge_sources,
)
from vrepo.format.virtual_ref import VirtualRef


def apply_changes(
    old: ManifestColumns, coords: Any, refs: Sequence[ChunkRef | VirtualRef | None]
) -> ManifestColumns | None:
    """`old` with each coordinate set to its ref, or removed where the ref is None.

    Refs not mentioned are kept. Coordinates must be unique within one call. Returns None when
    there is nothing to change (no coordinates given).
    """
    c = as_coords(coords, old.ndim)
    m = len(refs)
    if c.shape[0] != m:
        raise ValueError(f"got {c.shape[0]} chunk coordinates but {m} refs")
    if m == 0:
        return None
    is_set = np.fromiter([r is not None for r in refs], dtype=bool, count=m)
    set_coords = c[is_set]
    set_idx = np.flatnonzero(is_set)
    if len(set_coords):  # the new rows in row-major order, as every extent orders them
        order = np.argsort(ravel(set_coords, extent_of(set_coords)), kind="stable")
        set_coords, set_idx = set_coords[order], set_idx[order]
    new = RefColumns([refs[i] for i in set_idx.tolist()])  # type: ignore[misc]
    return _merge(old, c, set_coords, new)


def apply_column_changes(
    old: ManifestColumns, written: ManifestColumns, deleted: np.ndarray
) -> ManifestColumns:
    """`old` with the rows of ``written`` set and the (k, ndim) coordinates ``deleted``
    removed: the columnar form of `apply_changes`, with no Python object per ref.

    ``written`` and ``deleted`` must not share a coordinate.
    """
    if written.ndim != old.ndim:
        raise ValueError(f"expected {old.ndim}-d changes, got {written.ndim}-d ones")
    set_coords = written.coords()
    deleted = as_coords(deleted, old.ndim)
    changed = np.concatenate([set_coords, deleted]) if len(deleted) else set_coords
    return _merge(old, changed, set_coords, _ColumnRows(written))


class _ColumnRows:
    """Manifest columns seen as the new rows of a merge (the attributes of `RefColumns`)."""

    __slots__ = ("blob", "checksums", "ids", "inline", "lengths", "locations", "offsets", "sources")

    def __init__(self, cols: ManifestColumns) -> None:
        self.blob, self.checksums, self.ids = cols.inline_blob, cols.checksums, cols.ids
        self.inline, self.lengths, self.offsets = cols.inline_mask(), cols.lengths, cols.offsets
        self.locations, self.sources = cols.locations, cols.sources


def _merge(
    old: ManifestColumns,
    c: np.ndarray,
    set_coords: np.ndarray,
    new: RefColumns | _ColumnRows,
) -> ManifestColumns:
    """`old` without the rows at coordinates ``c`` (every changed one), plus the rows of
    ``new`` at ``set_coords`` (row-major order)."""
    extent = tuple(max(a, b) for a, b in zip(old.extent, extent_of(set_coords), strict=True))
    check_extent(extent)
    keys = old.keys
    if extent != old.extent and len(keys):
        keys = ravel(unravel(keys, old.extent), extent)

    # every changed coordinate inside the extent leaves the old rows (re-added if set)
    inside = (c < np.asarray(extent, dtype=np.uint64)).all(axis=1)
    changed = np.sort(ravel(c[inside], extent))
    check_unique(changed, extent, "with_changes")
    n = len(keys)
    keep = np.ones(n, dtype=bool)
    if n:
        pos = np.minimum(np.searchsorted(keys, changed), n - 1)
        keep[pos[keys[pos] == changed]] = False
    removed = not keep.all()
    new_keys = ravel(set_coords, extent)

    # merge: kept rows keep their order, new rows go in at their sorted positions
    old_inline = old.inline_mask()
    kept_keys = keys[keep]
    at = np.searchsorted(kept_keys, new_keys)
    out_keys = np.insert(kept_keys, at, new_keys)
    out_lengths = np.insert(old.lengths[keep], at, new.lengths)
    out_inline = np.insert(old_inline[keep], at, new.inline)
    src_offsets = np.insert(old.offsets[keep], at, new.offsets)
    out_locations, sources = _merged_locations(old, keep, at, new)
    stored = ~out_inline if out_locations is None else ~out_inline & (out_locations == NOT_VIRTUAL)
    if not stored.any():
        out_ids = None
    else:
        old_ids = old.ids_or_zeros()[keep]
        new_ids = new.ids if new.ids is not None else np.zeros((len(new_keys), ID_BYTES), np.uint8)
        out_ids = np.insert(old_ids, at, new_ids, axis=0)
    if old.checksums is None and new.checksums is None:
        out_checksums = None
    else:
        new_sums = new.checksums
        if new_sums is None:
            new_sums = np.full(len(new_keys), NO_CHECKSUM, dtype=np.uint64)
        kept_sums = old.checksums_or_missing()[keep]
        out_checksums = canonical_checksums(np.insert(kept_sums, at, new_sums))

    blob, out_offsets = merge_blobs(
        old.inline_blob,
        new.blob,
        src_offsets,
        out_lengths,
        out_inline,
        from_new=np.insert(np.zeros(len(kept_keys), bool), at, np.ones(len(new_keys), bool)),
        unchanged=not new.inline.any() and old_inline[keep].sum() == old_inline.sum(),
    )

    if removed and len(out_keys):  # deleting may shrink the extent: keep it canonical
        out_coords = unravel(out_keys, extent)
        shrunk = extent_of(out_coords)
        if shrunk != extent:
            extent, out_keys = shrunk, ravel(out_coords, shrunk)
    elif not len(out_keys):
        extent = (0,) * old.ndim
    out_locations, sources = canonical_locations(out_locations, sources)
    return ManifestColumns(
        old.ndim,
        extent,
        out_keys,
        out_ids,
        out_offsets,
        out_lengths,
        blob,
        out_checksums,
        out_locations,
        sources,
    )


def _merged_locations(
    old: ManifestColumns, keep: np.ndarray, at: np.ndarray, new: RefColumns | _ColumnRows
) -> tuple[np.ndarray | None, tuple[Source, ...]]:
    """The locations column of a merge (kept old rows, new rows inserted ``at``) and the one
    source table it indexes; (None, ()) when neither side has a virtual ref."""
    if old.locations is None and new.locations is None:
        return None, ()
    new_locations = new.locations
    if new_locations is None:
        new_locations = np.full(len(new.lengths), NOT_VIRTUAL, dtype=np.uint32)
    sources, new_locations = merge_sources(old.sources, new.sources, new_locations)
    kept = old.locations_or_none()[keep]
    return np.insert(kept, at, new_locations), sources


def merge_blobs(
    old: bytes | memoryview,
    new: bytes,
    src_offsets: np.ndarray,
    lengths: np.ndarray,
    inline: np.ndarray,
    *,
    from_new: np.ndarray,
    unchanged: bool,
) -> tuple[bytes | memoryview, np.ndarray]:
    """Compact the live inline payloads of `old` and `new` into one blob in row order.

    Rows whose payloads are adjacent in their source form runs, and each run is copied with one
    slice; the number of runs grows with the number of changes, not with the number of rows.
    Returns the blob and the offsets column (external offsets unchanged).
    """
    if unchanged:  # the same inline rows in the same order: reuse the blob and its offsets
        return old, src_offsets
    rows = np.flatnonzero(inline)
    if len(rows) == 0:
        return b"", src_offsets
    lens = lengths[rows].astype(np.uint64)
    # a virtual address space: old payloads at [0, len(old)), new ones after a 1-byte gap,
    # so that a run never spans both sources
    base = np.uint64(len(old) + 1)
    starts = src_offsets[rows] + np.where(from_new[rows], base, np.uint64(0))
    ends = starts + lens
    brk = np.ones(len(rows), dtype=bool)
    brk[1:] = starts[1:] != ends[:-1]
    first = np.flatnonzero(brk)
    last = np.append(first[1:] - 1, len(rows) - 1)
    run_a, run_b = starts[first].tolist(), ends[last].tolist()
    old_mv, new_mv, b0 = memoryview(old), memoryview(new), int(base)
    pieces = [
        old_mv[a:b] if a < b0 else new_mv[a - b0 : b - b0]
        for a, b in zip(run_a, run_b, strict=True)
    ]
    if len(pieces) == 1 and run_a[0] == 0 and run_b[0] == len(old):
        blob: bytes | memoryview = old
    else:
        blob = b"".join(pieces)
    offsets = src_offsets.copy()
    offsets[rows] = np.cumsum(lens, dtype=np.uint64) - lens
    return blob, offsets
