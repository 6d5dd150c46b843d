"""Building manifest columns from `ChunkRef` and `VirtualRef` objects and their chunk coordinates.

This is the one place that turns Python `ChunkRef` objects into numpy columns; everything
after it (changing, encoding, decoding) works on whole columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vrepo.format.chunk_grid import as_coords, check_extent, check_unique, extent_of, ravel
from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.ids import ids_to_array
from vrepo.format.manifest_columns import (
    NO_CHECKSUM,
    NOT_VIRTUAL,
    ManifestColumns,
    Source,
    canonical_checksums,
)
from vrepo.format.virtual_ref import VirtualRef

_MAX_LENGTH = 2**32 - 1
_ZERO_ID = "0" * 20


class RefColumns:
    """Columns built from a sorted list of refs (inline offsets point into `blob`)."""

    __slots__ = (
        "blob",
        "checksums",
        "ids",
        "inline",
        "lengths",
        "locations",
        "offsets",
        "sources",
    )

    def __init__(self, refs: Sequence[ChunkRef | VirtualRef]) -> None:
        """Validate `refs` (already in key order) and lay them out as columns."""
        n = len(refs)
        chunk_ids = [r.chunk_id for r in refs]
        lengths = np.fromiter([r.length for r in refs], dtype=np.int64, count=n)
        if n and (lengths.min() < 0 or lengths.max() > _MAX_LENGTH):
            raise ValueError("a chunk is larger than 4 GiB, which vrepo manifests do not support")
        self.lengths = lengths.astype(np.uint32)
        virtual = np.fromiter([type(r) is VirtualRef for r in refs], dtype=bool, count=n)
        self.locations, self.sources = _locations(refs, virtual)
        n_inline = chunk_ids.count(None) - int(virtual.sum())
        if n_inline:
            payloads = [r.inline for r in refs]
            self.blob = b"".join(filter(None, payloads))
        else:
            self.blob = b""
        if n_inline == n:  # all inline: no ids column, offsets are the payload positions
            self.inline = np.ones(n, dtype=bool)
            self.ids = None
            inline_lengths = self.lengths.astype(np.uint64)
            self.offsets = np.cumsum(inline_lengths, dtype=np.uint64) - inline_lengths
        else:
            offsets = np.fromiter([r.offset for r in refs], dtype=np.int64, count=n)
            if n and offsets.min() < 0:
                raise ValueError("chunk offsets must be >= 0")
            self.offsets = offsets.astype(np.uint64)
            if n_inline:
                self.inline = np.fromiter([r.inline is not None for r in refs], bool, count=n)
                inline_lengths = np.where(self.inline, self.lengths, 0).astype(np.uint64)
                starts = np.cumsum(inline_lengths, dtype=np.uint64) - inline_lengths
                self.offsets[self.inline] = starts[self.inline]
            else:
                self.inline = np.zeros(n, dtype=bool)
                inline_lengths = np.zeros(0, dtype=np.uint64)
            stored = ~self.inline & ~virtual
            if stored.any():
                self.ids = ids_to_array([_ZERO_ID if c is None else c for c in chunk_ids])
                if (~self.ids.any(axis=1) & stored).any():
                    raise ValueError("the all-zero chunk id is reserved for inline refs")
            else:
                self.ids = None  # only inline and virtual refs: no ids column
        if int(inline_lengths.sum()) != len(self.blob):
            raise ValueError("an inline ChunkRef's length differs from its payload size")
        self.checksums = _checksums(refs) if self.ids is not None else None


def _locations(
    refs: Sequence[ChunkRef | VirtualRef], virtual: np.ndarray
) -> tuple[np.ndarray | None, tuple[Source, ...]]:
    """The locations column and source table of ``refs`` (None, () if none is virtual)."""
    if not virtual.any():
        return None, ()
    index: dict[Source, int] = {}
    rows = [
        index.setdefault((r.location, r.validator), len(index))
        if type(r) is VirtualRef
        else int(NOT_VIRTUAL)
        for r in refs
    ]
    return np.asarray(rows, dtype=np.uint32), tuple(index)


def _checksums(refs: Sequence[ChunkRef | VirtualRef]) -> np.ndarray | None:
    """The checksums column of ``refs`` (`NO_CHECKSUM` where a ref has none), or None."""
    missing = int(NO_CHECKSUM)
    sums = [missing if r.checksum is None else r.checksum for r in refs]
    return canonical_checksums(np.fromiter(sums, dtype=np.uint64, count=len(refs)))


def columns_from_refs(
    ndim: int, coords: Any, refs: Sequence[ChunkRef | VirtualRef]
) -> ManifestColumns:
    """Columns for (n, ndim) chunk coordinates (any order, unique) and their refs."""
    c = as_coords(coords, ndim)
    if c.shape[0] != len(refs):
        raise ValueError(f"got {c.shape[0]} chunk coordinates but {len(refs)} refs")
    if len(refs) == 0:
        return ManifestColumns.empty(ndim)
    extent = extent_of(c)
    check_extent(extent)
    keys = ravel(c, extent)
    if not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        check_unique(keys, extent, "from_refs")
        refs = [refs[i] for i in order.tolist()]
    c = RefColumns(refs)
    return ManifestColumns(
        ndim, extent, keys, c.ids, c.offsets, c.lengths, c.blob, c.checksums, c.locations, c.sources
    )
