"""Manifests: the chunk refs of one array, columnar and sorted for binary-search lookups.

A manifest is a handful of numpy columns, one row per chunk, sorted by the row-major linear
index ("key") of the chunk coordinate within the manifest's ``extent`` (per dimension, the
largest coordinate + 1); see `chunk_grid` for the keys and `manifest_columns` for the columns.

`Manifest` is the immutable public face of one `ManifestColumns`: lookups and accessors live
here, while building from refs (`manifest_build`), changing (`manifest_update`) and the file
format (`manifest_codec`) each live in their own module and work on the bare columns.

Everything is vectorised: building, changing, encoding and decoding never loop in Python over
the rows of an existing manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.ids import ID_BYTES, array_to_ids, bytes_to_id
from vrepo.format.manifest_build import columns_from_refs
from vrepo.format.manifest_codec import decode_manifest, encode_manifest
from vrepo.format.manifest_columns import NO_CHECKSUM, NOT_VIRTUAL, ManifestColumns, Source
from vrepo.format.manifest_update import apply_changes, apply_column_changes
from vrepo.format.virtual_ref import VirtualRef


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _same_virtual(a: ManifestColumns, b: ManifestColumns) -> bool:
    """Whether two manifests' virtual rows name the same sources (tables may be ordered apart)."""
    la, lb = a.locations, b.locations
    if la is None or lb is None or not np.array_equal(la == NOT_VIRTUAL, lb == NOT_VIRTUAL):
        return la is lb
    va, vb = la != NOT_VIRTUAL, lb != NOT_VIRTUAL
    names_a = [a.sources[i] for i in la[va].tolist()]
    return names_a == [b.sources[i] for i in lb[vb].tolist()]


class Manifest:
    """The chunk refs of one array: immutable, columnar, sorted by linear chunk key."""

    __slots__ = ("_cols",)

    def __init__(
        self,
        ndim: int,
        extent: tuple[int, ...],
        keys: np.ndarray,
        ids: np.ndarray | None,
        offsets: np.ndarray,
        lengths: np.ndarray,
        inline_blob: bytes | memoryview,
        checksums: np.ndarray | None = None,
        locations: np.ndarray | None = None,
        sources: tuple[Source, ...] = (),
    ) -> None:
        """Wrap already-consistent columns; use `empty`, `from_refs` or `decode` instead."""
        self._cols = ManifestColumns(
            ndim,
            tuple(extent),
            _readonly(keys),
            None if ids is None else _readonly(ids),
            _readonly(offsets),
            _readonly(lengths),
            inline_blob,
            None if checksums is None else _readonly(checksums),
            None if locations is None else _readonly(locations),
            tuple(sources),
        )

    # construction ---------------------------------------------------------------------

    @classmethod
    def empty(cls, ndim: int) -> Manifest:
        """A manifest without chunk refs for an array of `ndim` dimensions."""
        return cls(*ManifestColumns.empty(ndim))

    @classmethod
    def from_refs(cls, ndim: int, coords: Any, refs: Sequence[ChunkRef | VirtualRef]) -> Manifest:
        """Build a manifest from (n, ndim) chunk coordinates (any order) and their refs."""
        return cls(*columns_from_refs(ndim, coords, refs))

    def with_changes(self, coords: Any, refs: Sequence[ChunkRef | VirtualRef | None]) -> Manifest:
        """A new manifest with each coordinate set to its ref, or removed where the ref is None.

        Refs not mentioned are kept. Coordinates must be unique within one call.
        """
        changed = apply_changes(self._cols, coords, refs)
        return self if changed is None else Manifest(*changed)

    def with_column_changes(self, written: Manifest, deleted: np.ndarray) -> Manifest:
        """A new manifest with the refs of ``written`` set and the (k, ndim) coordinates
        ``deleted`` removed: `with_changes` for changes held as columns (no object per ref).
        ``written`` and ``deleted`` must not share a coordinate."""
        if not len(written) and not len(deleted):
            return self
        return Manifest(*apply_column_changes(self._cols, written.columns, deleted))

    # reading ----------------------------------------------------------------------------

    def lookup(self, coord: Sequence[int]) -> ChunkRef | VirtualRef | None:
        """The ref of the chunk at `coord`, or None if the manifest has none (O(log n))."""
        cols = self._cols
        if len(coord) != cols.ndim:
            raise ValueError(f"expected a {cols.ndim}-d chunk coordinate, got {tuple(coord)}")
        key = 0
        for x, e in zip(coord, cols.extent, strict=True):
            if not 0 <= x < e:
                return None
            key = key * e + int(x)
        keys = cols.keys
        i = int(keys.searchsorted(np.uint64(key)))
        if i == len(keys) or int(keys[i]) != key:
            return None
        return self._ref_at(i)

    def _ref_at(self, i: int) -> ChunkRef | VirtualRef:
        cols = self._cols
        offset = int(cols.offsets[i])
        length = int(cols.lengths[i])
        if cols.locations is not None and cols.locations[i] != NOT_VIRTUAL:
            location, validator = cols.sources[int(cols.locations[i])]
            return VirtualRef(location, offset, length, validator)
        if cols.ids is None or not cols.ids[i].any():
            return ChunkRef(None, 0, length, bytes(cols.inline_blob[offset : offset + length]))
        checksum = None
        if cols.checksums is not None and cols.checksums[i] != NO_CHECKSUM:
            checksum = int(cols.checksums[i])
        return ChunkRef(bytes_to_id(cols.ids[i].tobytes()), offset, length, None, checksum)

    def coords(self) -> np.ndarray:
        """The (n, ndim) uint64 chunk coordinates in sorted (row-major) order."""
        return self._cols.coords()

    def refs(self) -> list[ChunkRef | VirtualRef]:
        """Every ref, in key order (one Python object per row: for small manifests)."""
        return [self._ref_at(i) for i in range(len(self))]

    def chunk_ids(self) -> list[str]:
        """The distinct chunk object ids referenced (sorted), e.g. for durability checks and GC."""
        ids = self._cols.ids
        if ids is None:
            return []
        external = ids[self._cols.stored_mask()]
        if len(external) == 0:
            return []
        unique = np.unique(np.ascontiguousarray(external).view(f"V{ID_BYTES}").ravel())
        return array_to_ids(unique.view(np.uint8).reshape(-1, ID_BYTES))

    def __len__(self) -> int:
        return len(self._cols.keys)

    @property
    def columns(self) -> ManifestColumns:
        """All columns as one value (read-only arrays), as the builders and the codec take them."""
        return self._cols

    @property
    def ndim(self) -> int:
        """Number of dimensions of the array's chunk grid."""
        return self._cols.ndim

    @property
    def extent(self) -> tuple[int, ...]:
        """Per dimension, the largest chunk coordinate + 1 (zeros when empty)."""
        return self._cols.extent

    @property
    def keys(self) -> np.ndarray:
        """Linear chunk keys, uint64 (n,), strictly increasing."""
        return self._cols.keys

    @property
    def ids(self) -> np.ndarray | None:
        """Chunk ids as raw bytes, uint8 (n, 12); zero rows are inline; None if all inline."""
        return self._cols.ids

    @property
    def offsets(self) -> np.ndarray:
        """Byte offsets, uint64 (n,): in the chunk object, or in `inline_blob` if inline."""
        return self._cols.offsets

    @property
    def lengths(self) -> np.ndarray:
        """Byte lengths, uint32 (n,)."""
        return self._cols.lengths

    @property
    def checksums(self) -> np.ndarray | None:
        """CRC-32C per row, uint64 (n,), `NO_CHECKSUM` where a row has none (inline refs, refs
        from version-1 manifests); None when no row has one."""
        return self._cols.checksums

    @property
    def locations(self) -> np.ndarray | None:
        """Per row, the index of a virtual ref's (location, validator) in `sources`, uint32
        (n,), `NOT_VIRTUAL` for other rows; None when no row is virtual."""
        return self._cols.locations

    @property
    def sources(self) -> tuple[Source, ...]:
        """The distinct (location, validator) pairs of the virtual refs."""
        return self._cols.sources

    @property
    def virtual_count(self) -> int:
        """How many refs are virtual."""
        return int(self._cols.virtual_mask().sum())

    @property
    def inline_blob(self) -> bytes | memoryview:
        """The inline payloads, concatenated (a read-only memoryview after `decode`)."""
        return self._cols.inline_blob

    @property
    def stored_bytes(self) -> int:
        """Total bytes of the chunks the repository holds (inline ones included; virtual
        ones, kept outside it, not)."""
        lengths = self._cols.lengths
        if self._cols.locations is not None:
            lengths = lengths[~self._cols.virtual_mask()]
        return int(lengths.sum(dtype=np.uint64))

    @property
    def nbytes_in_memory(self) -> int:
        """Bytes held by the columns, excluding inline payloads."""
        c = self._cols
        columns = (c.keys, c.ids, c.offsets, c.lengths, c.checksums, c.locations)
        return sum(a.nbytes for a in columns if a is not None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        a, b = self._cols, other._cols
        return (
            a.ndim == b.ndim
            and a.extent == b.extent
            and np.array_equal(a.keys, b.keys)
            and (a.ids is None) == (b.ids is None)
            and (a.ids is None or np.array_equal(a.ids, b.ids))
            and np.array_equal(a.offsets, b.offsets)
            and np.array_equal(a.lengths, b.lengths)
            and a.inline_blob == b.inline_blob
            and (a.checksums is None) == (b.checksums is None)
            and (a.checksums is None or np.array_equal(a.checksums, b.checksums))
            and (a.locations is None) == (b.locations is None)
            and (a.locations is None or _same_virtual(a, b))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n_inline = int(self._cols.inline_mask().sum())
        n_virtual = self.virtual_count
        virtual = f", virtual={n_virtual}" if n_virtual else ""
        return (
            f"Manifest(ndim={self.ndim}, refs={len(self)}, inline={n_inline}{virtual}, "
            f"extent={self.extent}, stored_bytes={self.stored_bytes})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        c = self._cols._replace(inline_blob=bytes(self._cols.inline_blob))
        return (Manifest, tuple(c))

    # encoding ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Encode as a binary vrepo manifest file."""
        return encode_manifest(self._cols)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, *, what: str) -> Manifest:
        """Decode and verify a manifest file; `FormatError` if it is corrupt or inconsistent.

        The columns are zero-copy views of the decompressed file.
        """
        return Manifest(*decode_manifest(data, what=what))
