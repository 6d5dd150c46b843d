"""Split manifests: an array's chunk refs in pieces, one per block of the chunk grid.

A piece holds the refs whose chunk coordinates fall in one block of ``split`` chunks per
dimension (its index is ``coords // split``), so a commit rewrites only the pieces whose
blocks it wrote in, and a read loads only the pieces of the chunks it reads. The block takes
whole trailing dimensions first and runs of the leading one (usually time, the dimension
appends grow), so an append touches the newest piece only. A `ManifestRef` without a split
covers every coordinate (manifests written before pieces, and 0-d arrays).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vrepo.format.chunk_grid import extent_of, ravel, unravel
from vrepo.format.manifest_columns import (
    ManifestColumns,
    canonical_checksums,
    canonical_locations,
)


def choose_split(grid: Sequence[int], max_refs: int) -> tuple[int, ...]:
    """Chunks per dimension of one piece of an array whose chunk grid is ``grid``, holding
    at most ``max_refs`` refs: whole trailing dimensions while they fit, then the leading
    dimension in runs (not capped by its extent, which appends grow)."""
    if not grid:
        return ()
    room, trailing = max(1, max_refs), []
    for extent in reversed(grid[1:]):
        size = max(1, min(int(extent), room))
        trailing.append(size)
        room = max(1, room // size)
    return (room, *reversed(trailing))


def pieces_of(coords: np.ndarray, split: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct piece indices (k, ndim) of ``coords`` (n, ndim), sorted, and for each
    coordinate the row of its piece among them (n,)."""
    if len(coords) == 0:
        return np.zeros((0, len(split)), np.uint64), np.zeros(0, np.intp)
    blocks = np.asarray(coords, dtype=np.uint64) // np.asarray(split, dtype=np.uint64)
    extent = extent_of(blocks)  # rows as linear keys: a 1-d unique, not a row-wise one
    keys, inverse = np.unique(ravel(blocks, extent), return_inverse=True)
    return unravel(keys, extent), inverse.reshape(-1)


def select_rows(
    cols: ManifestColumns, rows: np.ndarray, inline_mask: np.ndarray | None = None
) -> ManifestColumns:
    """The manifest columns of the rows ``rows`` (sorted indices) only, with their extent
    and inline payloads narrowed to them (vectorised; no loop over rows). ``inline_mask``:
    ``cols.inline_mask()``, when the caller selects many times from the same columns."""
    coords = unravel(cols.keys[rows], cols.extent)
    extent = extent_of(coords)
    lengths = cols.lengths[rows]
    offsets = cols.offsets[rows].copy()
    ids = None if cols.ids is None else cols.ids[rows]
    inline = (cols.inline_mask() if inline_mask is None else inline_mask)[rows]
    blob = np.frombuffer(cols.inline_blob, dtype=np.uint8)
    starts, sizes = offsets[inline], lengths[inline].astype(np.int64)
    new_starts = (np.cumsum(sizes) - sizes).astype(np.uint64)  # payloads packed in order
    # every inline payload byte, gathered in order: source index = start of its run + position
    positions = np.arange(int(sizes.sum()), dtype=np.int64)
    gather = positions - np.repeat(new_starts.astype(np.int64) - starts.astype(np.int64), sizes)
    offsets[inline] = new_starts
    checksums = None if cols.checksums is None else cols.checksums[rows]
    if ids is not None and not ids.any():
        ids = None  # no kept ref is stored: the canonical form has no ids column
    locations = None if cols.locations is None else cols.locations[rows]
    locations, sources = canonical_locations(locations, cols.sources)
    return ManifestColumns(
        cols.ndim,
        extent,
        ravel(coords, extent) if len(coords) else np.zeros(0, np.uint64),
        ids,
        offsets,
        lengths,
        blob[gather].tobytes(),
        canonical_checksums(checksums),
        locations,
        sources,
    )


def split_columns(
    cols: ManifestColumns, split: Sequence[int]
) -> list[tuple[tuple[int, ...], ManifestColumns]]:
    """``cols`` cut into pieces of ``split`` chunks per dimension, by piece index."""
    pieces, inverse = pieces_of(cols.coords(), split)
    order = np.argsort(inverse, kind="stable")  # rows stay key-sorted within a piece
    bounds = np.searchsorted(inverse[order], np.arange(len(pieces) + 1))
    inline = cols.inline_mask()  # once, not once per piece
    return [
        (
            tuple(int(x) for x in piece),
            select_rows(cols, order[bounds[i] : bounds[i + 1]], inline),
        )
        for i, piece in enumerate(pieces)
    ]
