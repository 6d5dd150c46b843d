"""The columns of one manifest: the unit that is built, changed, encoded and decoded.

One row per chunk, sorted by the chunk's linear key (see `chunk_grid`); at most 40 bytes per
ref in memory, inline payloads aside:

- ``keys``     uint64 (n,)     linear chunk index, strictly increasing
- ``ids``      uint8  (n, 12)  chunk object ids; an all-zero row is an inline ref; None when
  every ref is inline (then 20 bytes per ref)
- ``offsets``  uint64 (n,)     offset in the chunk object, or in ``inline_blob`` when inline
- ``lengths``  uint32 (n,)     byte length
- ``inline_blob``              the payloads of the inline refs, concatenated in key order
- ``checksums`` uint64 (n,)    CRC-32C of each stored chunk, `NO_CHECKSUM` where there is none
  (inline refs, refs kept from version-1 manifests); None when no row has one (then 32 bytes
  per ref, 20 if every ref is inline)

Keeping these together as one value, apart from the `Manifest` that wraps them, lets the
builders (`manifest_build`, `manifest_update`) and the codec (`manifest_codec`) work on a
manifest's data without depending on each other or on the `Manifest` class.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vrepo.format.chunk_grid import unravel
from vrepo.format.ids import ID_BYTES

NO_CHECKSUM = np.uint64(2**32)
"""The ``checksums`` entry of a row without a checksum (outside the range of a CRC-32C)."""


class ManifestColumns(NamedTuple):
    """Consistent, key-sorted columns of chunk refs for an array of `ndim` dimensions."""

    ndim: int
    extent: tuple[int, ...]
    keys: np.ndarray
    ids: np.ndarray | None
    offsets: np.ndarray
    lengths: np.ndarray
    inline_blob: bytes | memoryview
    checksums: np.ndarray | None = None

    @classmethod
    def empty(cls, ndim: int) -> ManifestColumns:
        """No rows, for an array of `ndim` dimensions."""
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

    def coords(self) -> np.ndarray:
        """The (n, ndim) uint64 chunk coordinates in sorted (row-major) order."""
        return unravel(self.keys, self.extent)

    def inline_mask(self) -> np.ndarray:
        """Which rows are inline refs, bool (n,)."""
        if self.ids is None:
            return np.ones(len(self.keys), dtype=bool)
        ids = self.ids
        if ids.flags.c_contiguous and ids.shape[1] == ID_BYTES == 12:  # 3 words: faster than any
            words = ids.view("<u4")
            return (words[:, 0] | words[:, 1] | words[:, 2]) == 0
        return ~ids.any(axis=1)

    def ids_or_zeros(self) -> np.ndarray:
        """The ids column, with all-zero rows standing in when every ref is inline."""
        if self.ids is None:
            return np.zeros((len(self.keys), ID_BYTES), dtype=np.uint8)
        return self.ids

    def checksums_or_missing(self) -> np.ndarray:
        """The checksums column, with `NO_CHECKSUM` standing in when no row has one."""
        if self.checksums is None:
            return np.full(len(self.keys), NO_CHECKSUM, dtype=np.uint64)
        return self.checksums


def canonical_checksums(checksums: np.ndarray | None) -> np.ndarray | None:
    """``checksums``, or None when no row has one (the canonical form of that column)."""
    if checksums is None or (checksums == NO_CHECKSUM).all():
        return None
    return checksums
