"""Manifests: the chunk refs of one array, columnar and sorted for binary-search lookups.

A manifest is a handful of numpy columns, one row per chunk, sorted by the row-major linear
index ("key") of the chunk coordinate within the manifest's ``extent`` (per dimension, the
largest coordinate + 1). Sorting by key is sorting coordinates lexicographically, whatever the
extent, so growing the extent re-keys rows without reordering them.

Columns (at most 32 bytes per ref in memory, inline payloads aside):

- ``keys``     uint64 (n,)     linear chunk index, strictly increasing
- ``ids``      uint8  (n, 12)  chunk object ids; an all-zero row is an inline ref; None when
  every ref is inline (then 20 bytes per ref)
- ``offsets``  uint64 (n,)     offset in the chunk object, or in ``inline_blob`` when inline
- ``lengths``  uint32 (n,)     byte length
- ``inline_blob``              the payloads of the inline refs, concatenated in key order

Everything is vectorised: building, changing, encoding and decoding never loop in Python over
the rows of an existing manifest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from vrepo.errors import FormatError
from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.envelope import FileType, StructFile, compress_bytes, decompress_bytes
from vrepo.format.ids import ID_BYTES, array_to_ids, bytes_to_id, ids_to_array

_MAX_COORD = 2**32 - 1
_MAX_CELLS = 2**63
_MAX_LENGTH = 2**32 - 1
_ZERO_ID = "0" * 20


class _Payload(msgspec.Struct):
    """The msgpack body of a manifest file.

    ``columns`` is one zstd frame holding, packed little-endian and in this order: coords
    (count x ndim uint32), ids (count x 12 bytes, present when ``has_ids``), offsets (count
    uint64) and lengths (count uint32). ``inline_blob`` is stored raw: inline payloads are
    chunks already compressed by their zarr codecs, and compressing them again cost most of
    the time of a commit and of a cold read.
    """

    ndim: int
    count: int
    extent: list[int]
    has_ids: bool
    columns: Any
    inline_blob: Any


class _DecodedPayload(_Payload):
    """Decoding into memoryviews keeps the inline payloads a zero-copy view of the file."""

    columns: memoryview
    inline_blob: memoryview


_file = StructFile(FileType.MANIFEST, _DecodedPayload, compress=False)


# --- coordinate helpers -----------------------------------------------------------------


def _check_extent(extent: tuple[int, ...]) -> None:
    if math.prod(extent) > _MAX_CELLS:
        raise ValueError(
            f"a chunk grid of extent {extent} has more than 2**63 chunks; vrepo does not "
            f"support chunk grids that large (use larger chunks)"
        )


def _as_coords(coords: Any, ndim: int) -> np.ndarray:
    """Validate chunk coordinates and return them as uint64 of shape (n, ndim)."""
    c = np.asarray(coords)
    if c.size == 0 and (c.ndim != 2 or c.shape[1] != ndim):
        c = c.reshape(c.shape[0] if c.ndim == 2 else 0, ndim)
    if c.ndim != 2 or c.shape[1] != ndim:
        raise ValueError(f"chunk coordinates must have shape (n, {ndim}), got {c.shape}")
    if c.size == 0:
        return np.zeros(c.shape, dtype=np.uint64)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"chunk coordinates must be integers, got {c.dtype}")
    if c.min() < 0 or c.max() > _MAX_COORD:
        raise ValueError("chunk coordinates must be between 0 and 2**32 - 1")
    return c.astype(np.uint64)


def _ravel(coords: np.ndarray, extent: tuple[int, ...]) -> np.ndarray:
    """Row-major linear keys (uint64) of (n, ndim) coordinates inside `extent`."""
    n, ndim = coords.shape
    if ndim == 0:
        return np.zeros(n, dtype=np.uint64)
    keys = coords[:, 0].astype(np.uint64)
    for d in range(1, ndim):
        keys *= np.uint64(extent[d])
        keys += coords[:, d]
    return keys


def _unravel(keys: np.ndarray, extent: tuple[int, ...]) -> np.ndarray:
    """The (n, ndim) uint64 coordinates of linear keys inside `extent`."""
    ndim = len(extent)
    out = np.empty((len(keys), ndim), dtype=np.uint64)
    if ndim == 0 or len(keys) == 0:
        return out
    rem = keys.copy()
    for d in range(ndim - 1, 0, -1):
        e = np.uint64(extent[d])
        out[:, d] = rem % e
        rem //= e
    out[:, 0] = rem
    return out


def _extent_of(coords: np.ndarray) -> tuple[int, ...]:
    if coords.shape[0] == 0:
        return (0,) * coords.shape[1]
    return tuple(int(x) + 1 for x in coords.max(axis=0))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --- columns from ChunkRef objects --------------------------------------------------------


class _Columns:
    """Columns built from a sorted list of ChunkRefs (inline offsets point into `blob`)."""

    __slots__ = ("blob", "ids", "inline", "lengths", "offsets")

    def __init__(self, refs: Sequence[ChunkRef]) -> None:
        n = len(refs)
        chunk_ids = [r.chunk_id for r in refs]
        lengths = np.fromiter([r.length for r in refs], dtype=np.int64, count=n)
        if n and (lengths.min() < 0 or lengths.max() > _MAX_LENGTH):
            raise ValueError("a chunk is larger than 4 GiB, which vrepo manifests do not support")
        self.lengths = lengths.astype(np.uint32)
        n_inline = chunk_ids.count(None)
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
                self.inline = np.fromiter([c is None for c in chunk_ids], dtype=bool, count=n)
                chunk_ids = [_ZERO_ID if c is None else c for c in chunk_ids]
                inline_lengths = np.where(self.inline, self.lengths, 0).astype(np.uint64)
                starts = np.cumsum(inline_lengths, dtype=np.uint64) - inline_lengths
                self.offsets[self.inline] = starts[self.inline]
            else:
                self.inline = np.zeros(n, dtype=bool)
                inline_lengths = np.zeros(0, dtype=np.uint64)
            self.ids = ids_to_array(chunk_ids)
            if (~self.ids.any(axis=1) & ~self.inline).any():
                raise ValueError("the all-zero chunk id is reserved for inline refs")
        if int(inline_lengths.sum()) != len(self.blob):
            raise ValueError("an inline ChunkRef's length differs from its payload size")


# --- the manifest -------------------------------------------------------------------------


class Manifest:
    """The chunk refs of one array: immutable, columnar, sorted by linear chunk key."""

    __slots__ = ("_blob", "_extent", "_ids", "_keys", "_lengths", "_ndim", "_offsets")

    def __init__(
        self,
        ndim: int,
        extent: tuple[int, ...],
        keys: np.ndarray,
        ids: np.ndarray | None,
        offsets: np.ndarray,
        lengths: np.ndarray,
        inline_blob: bytes | memoryview,
    ) -> None:
        """Wrap already-consistent columns; use `empty`, `from_refs` or `decode` instead."""
        self._ndim = ndim
        self._extent = tuple(extent)
        self._keys = _readonly(keys)
        self._ids = None if ids is None else _readonly(ids)
        self._offsets = _readonly(offsets)
        self._lengths = _readonly(lengths)
        self._blob = inline_blob

    # construction ---------------------------------------------------------------------

    @classmethod
    def empty(cls, ndim: int) -> Manifest:
        """A manifest without chunk refs for an array of `ndim` dimensions."""
        if ndim < 0:
            raise ValueError(f"ndim must be >= 0, got {ndim}")
        return cls(
            ndim,
            (0,) * ndim,
            np.zeros(0, np.uint64),
            None,
            np.zeros(0, np.uint64),
            np.zeros(0, np.uint32),
            b"",
        )

    @classmethod
    def from_refs(cls, ndim: int, coords: Any, refs: Sequence[ChunkRef]) -> Manifest:
        """Build a manifest from (n, ndim) chunk coordinates (any order) and their refs."""
        c = _as_coords(coords, ndim)
        if c.shape[0] != len(refs):
            raise ValueError(f"got {c.shape[0]} chunk coordinates but {len(refs)} refs")
        if len(refs) == 0:
            return cls.empty(ndim)
        extent = _extent_of(c)
        _check_extent(extent)
        keys = _ravel(c, extent)
        if not (keys[1:] > keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            _check_unique(keys, extent, "from_refs")
            refs = [refs[i] for i in order.tolist()]
        cols = _Columns(refs)
        return cls(ndim, extent, keys, cols.ids, cols.offsets, cols.lengths, cols.blob)

    def with_changes(self, coords: Any, refs: Sequence[ChunkRef | None]) -> Manifest:
        """A new manifest with each coordinate set to its ref, or removed where the ref is None.

        Refs not mentioned are kept. Coordinates must be unique within one call.
        """
        c = _as_coords(coords, self._ndim)
        m = len(refs)
        if c.shape[0] != m:
            raise ValueError(f"got {c.shape[0]} chunk coordinates but {m} refs")
        if m == 0:
            return self
        is_set = np.fromiter([r is not None for r in refs], dtype=bool, count=m)
        set_coords = c[is_set]
        extent = tuple(max(a, b) for a, b in zip(self._extent, _extent_of(set_coords), strict=True))
        _check_extent(extent)
        keys = self._keys
        if extent != self._extent and len(keys):
            keys = _ravel(_unravel(keys, self._extent), extent)

        # every changed coordinate inside the extent leaves the old rows (re-added if set)
        inside = (c < np.asarray(extent, dtype=np.uint64)).all(axis=1)
        changed = np.sort(_ravel(c[inside], extent))
        _check_unique(changed, extent, "with_changes")
        n = len(keys)
        keep = np.ones(n, dtype=bool)
        if n:
            pos = np.minimum(np.searchsorted(keys, changed), n - 1)
            keep[pos[keys[pos] == changed]] = False
        removed = not keep.all()

        # the new rows, sorted by key
        set_idx = np.flatnonzero(is_set)
        new_keys = _ravel(set_coords, extent)
        order = np.argsort(new_keys, kind="stable")
        new_keys = new_keys[order]
        new = _Columns([refs[i] for i in set_idx[order].tolist()])  # type: ignore[misc]

        # merge: kept rows keep their order, new rows go in at their sorted positions
        old_inline = self._inline_mask()
        kept_keys = keys[keep]
        at = np.searchsorted(kept_keys, new_keys)
        out_keys = np.insert(kept_keys, at, new_keys)
        out_lengths = np.insert(self._lengths[keep], at, new.lengths)
        out_inline = np.insert(old_inline[keep], at, new.inline)
        src_offsets = np.insert(self._offsets[keep], at, new.offsets)
        if out_inline.all():
            out_ids = None
        else:
            old_ids = self._ids_or_zeros()[keep]
            new_ids = (
                new.ids if new.ids is not None else np.zeros((len(new_keys), ID_BYTES), np.uint8)
            )
            out_ids = np.insert(old_ids, at, new_ids, axis=0)

        blob, out_offsets = _merge_blobs(
            self._blob,
            new.blob,
            src_offsets,
            out_lengths,
            out_inline,
            from_new=np.insert(np.zeros(len(kept_keys), bool), at, np.ones(len(new_keys), bool)),
            unchanged=not new.inline.any() and old_inline[keep].sum() == old_inline.sum(),
        )

        if removed and len(out_keys):  # deleting may shrink the extent: keep it canonical
            out_coords = _unravel(out_keys, extent)
            shrunk = _extent_of(out_coords)
            if shrunk != extent:
                extent, out_keys = shrunk, _ravel(out_coords, shrunk)
        elif not len(out_keys):
            extent = (0,) * self._ndim
        return Manifest(self._ndim, extent, out_keys, out_ids, out_offsets, out_lengths, blob)

    # reading ----------------------------------------------------------------------------

    def lookup(self, coord: Sequence[int]) -> ChunkRef | None:
        """The ref of the chunk at `coord`, or None if the manifest has none (O(log n))."""
        if len(coord) != self._ndim:
            raise ValueError(f"expected a {self._ndim}-d chunk coordinate, got {tuple(coord)}")
        key = 0
        for x, e in zip(coord, self._extent, strict=True):
            if not 0 <= x < e:
                return None
            key = key * e + int(x)
        keys = self._keys
        i = int(keys.searchsorted(np.uint64(key)))
        if i == len(keys) or int(keys[i]) != key:
            return None
        return self._ref_at(i)

    def _ref_at(self, i: int) -> ChunkRef:
        offset = int(self._offsets[i])
        length = int(self._lengths[i])
        if self._ids is None or not self._ids[i].any():
            return ChunkRef(None, 0, length, bytes(self._blob[offset : offset + length]))
        return ChunkRef(bytes_to_id(self._ids[i].tobytes()), offset, length)

    def coords(self) -> np.ndarray:
        """The (n, ndim) uint64 chunk coordinates in sorted (row-major) order."""
        return _unravel(self._keys, self._extent)

    def chunk_ids(self) -> list[str]:
        """The distinct chunk object ids referenced (sorted), e.g. for durability checks and GC."""
        if self._ids is None:
            return []
        external = self._ids[~self._inline_mask()]
        if len(external) == 0:
            return []
        unique = np.unique(np.ascontiguousarray(external).view(f"V{ID_BYTES}").ravel())
        return array_to_ids(unique.view(np.uint8).reshape(-1, ID_BYTES))

    def _inline_mask(self) -> np.ndarray:
        if self._ids is None:
            return np.ones(len(self._keys), dtype=bool)
        return ~self._ids.any(axis=1)

    def _ids_or_zeros(self) -> np.ndarray:
        if self._ids is None:
            return np.zeros((len(self._keys), ID_BYTES), dtype=np.uint8)
        return self._ids

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def ndim(self) -> int:
        """Number of dimensions of the array's chunk grid."""
        return self._ndim

    @property
    def extent(self) -> tuple[int, ...]:
        """Per dimension, the largest chunk coordinate + 1 (zeros when empty)."""
        return self._extent

    @property
    def keys(self) -> np.ndarray:
        """Linear chunk keys, uint64 (n,), strictly increasing."""
        return self._keys

    @property
    def ids(self) -> np.ndarray | None:
        """Chunk ids as raw bytes, uint8 (n, 12); zero rows are inline; None if all inline."""
        return self._ids

    @property
    def offsets(self) -> np.ndarray:
        """Byte offsets, uint64 (n,): in the chunk object, or in `inline_blob` if inline."""
        return self._offsets

    @property
    def lengths(self) -> np.ndarray:
        """Byte lengths, uint32 (n,)."""
        return self._lengths

    @property
    def inline_blob(self) -> bytes | memoryview:
        """The inline payloads, concatenated (a read-only memoryview after `decode`)."""
        return self._blob

    @property
    def stored_bytes(self) -> int:
        """Total bytes of all referenced chunks (inline ones included)."""
        return int(self._lengths.sum(dtype=np.uint64))

    @property
    def nbytes_in_memory(self) -> int:
        """Bytes held by the columns, excluding inline payloads."""
        cols = (self._keys, self._ids, self._offsets, self._lengths)
        return sum(c.nbytes for c in cols if c is not None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return (
            self._ndim == other._ndim
            and self._extent == other._extent
            and np.array_equal(self._keys, other._keys)
            and (self._ids is None) == (other._ids is None)
            and (self._ids is None or np.array_equal(self._ids, other._ids))
            and np.array_equal(self._offsets, other._offsets)
            and np.array_equal(self._lengths, other._lengths)
            and self._blob == other._blob
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n_inline = int(self._inline_mask().sum())
        return (
            f"Manifest(ndim={self._ndim}, refs={len(self)}, inline={n_inline}, "
            f"extent={self._extent}, stored_bytes={self.stored_bytes})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            Manifest,
            (
                self._ndim,
                self._extent,
                self._keys,
                self._ids,
                self._offsets,
                self._lengths,
                bytes(self._blob),
            ),
        )

    # encoding ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Encode as a binary vrepo manifest file."""
        coords = self._keys if self._ndim == 1 else self.coords()
        columns = [_le_bytes(coords, "<u4")]
        if self._ids is not None:
            columns.append(_le_bytes(self._ids, "u1"))
        columns += [_le_bytes(self._offsets, "<u8"), _le_bytes(self._lengths, "<u4")]
        payload = _Payload(
            ndim=self._ndim,
            count=len(self),
            extent=list(self._extent),
            has_ids=self._ids is not None,
            columns=compress_bytes(b"".join(columns)),
            inline_blob=self._blob,
        )
        return _file.encode(payload)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, *, what: str) -> Manifest:
        """Decode and verify a manifest file; `FormatError` if it is corrupt or inconsistent.

        The columns are zero-copy views of the decompressed file.
        """
        return _file.decode(data, what=what, then=_from_payload)


def _le_bytes(a: np.ndarray, dtype: str) -> memoryview:
    """A flat byte view of `a` as `dtype` (copying only if the dtype or layout differs)."""
    return memoryview(np.ascontiguousarray(a, dtype=dtype).reshape(-1).view(np.uint8))


def _check_unique(sorted_keys: np.ndarray, extent: tuple[int, ...], where: str) -> None:
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if len(dup):
        coord = tuple(int(x) for x in _unravel(sorted_keys[dup[:1]], extent)[0])
        raise ValueError(f"{where}: chunk coordinate {coord} is given more than once")


def _merge_blobs(
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


def _from_payload(p: _DecodedPayload) -> Manifest:
    """Validate a decoded payload and build the manifest (raises ValueError when inconsistent)."""
    ndim, n = p.ndim, p.count
    extent = tuple(p.extent)
    if ndim < 0 or n < 0 or len(extent) != ndim or (ndim == 0 and n > 1):
        raise ValueError(f"ndim {ndim}, count {n} and extent {extent} do not agree")
    if any(not 0 <= e <= _MAX_COORD + 1 for e in extent):
        raise ValueError(f"extent {extent} out of range")
    _check_extent(extent)
    widths = [("coords", 4 * ndim), ("ids", ID_BYTES if p.has_ids else 0), ("offsets", 8)]
    widths.append(("lengths", 4))
    try:
        raw = memoryview(decompress_bytes(p.columns, sum(w for _, w in widths) * n, what="columns"))
    except FormatError as e:
        raise ValueError(str(e)) from e  # reported with the file's name by StructFile
    column, start = {}, 0
    for name, width in widths:
        column[name], start = raw[start : start + width * n], start + width * n
    coords = np.frombuffer(column["coords"], dtype="<u4").reshape(n, ndim)
    if _extent_of(coords) != extent:
        raise ValueError(f"extent {extent} does not match the coordinates")
    keys = _ravel(coords, extent)
    if not (keys[1:] > keys[:-1]).all():
        raise ValueError("chunk coordinates are not strictly sorted")
    ids = np.frombuffer(column["ids"], np.uint8).reshape(n, ID_BYTES) if p.has_ids else None
    offsets = np.frombuffer(column["offsets"], dtype="<u8")
    lengths = np.frombuffer(column["lengths"], dtype="<u4")
    inline = np.ones(n, dtype=bool) if ids is None else ~ids.any(axis=1)
    if ids is not None and inline.all():
        ids = None  # canonical form: no ids column when every ref is inline
    ends = offsets[inline] + lengths[inline].astype(np.uint64)
    if len(ends) and (int(ends.max()) > len(p.inline_blob) or (ends < offsets[inline]).any()):
        raise ValueError("an inline ref points past the end of the inline payloads")
    return Manifest(ndim, extent, keys, ids, offsets, lengths, p.inline_blob)
