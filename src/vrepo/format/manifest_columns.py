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
- ``locations`` uint32 (n,)    for virtual refs, the index of their (location, validator) in
  ``sources``, `NOT_VIRTUAL` for the other rows; None when no row is virtual (an all-virtual
  manifest: keys, offsets, lengths, locations, 24 bytes per ref)
- ``sources``                  the distinct (location, validator) pairs virtual refs point
  into, each once (dictionary encoding: 1,000 files cost 1,000 strings, not one per ref)

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

NOT_VIRTUAL = np.uint32(2**32 - 1)
"""The ``locations`` entry of a row that is not a virtual ref."""

Source = tuple[str, str]
"""A virtual ref's (location, validator)."""


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
    locations: np.ndarray | None = None
    sources: tuple[Source, ...] = ()

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

    def virtual_mask(self) -> np.ndarray:
        """Which rows are virtual refs, bool (n,)."""
        if self.locations is None:
            return np.zeros(len(self.keys), dtype=bool)
        return self.locations != NOT_VIRTUAL

    def inline_mask(self) -> np.ndarray:
        """Which rows are inline refs, bool (n,)."""
        if self.ids is None:
            mask = np.ones(len(self.keys), dtype=bool)
        elif self.ids.flags.c_contiguous and self.ids.shape[1] == ID_BYTES == 12:
            words = self.ids.view("<u4")  # 3 words: faster than any
            mask = (words[:, 0] | words[:, 1] | words[:, 2]) == 0
        else:
            mask = ~self.ids.any(axis=1)
        if self.locations is not None:
            mask &= self.locations == NOT_VIRTUAL
        return mask

    def stored_mask(self) -> np.ndarray:
        """Which rows point into ``chunks/`` objects (neither inline nor virtual), bool (n,)."""
        if self.ids is None:
            return np.zeros(len(self.keys), dtype=bool)
        return ~self.inline_mask() & ~self.virtual_mask()

    def locations_or_none(self) -> np.ndarray:
        """The locations column, with `NOT_VIRTUAL` standing in when no row is virtual."""
        if self.locations is None:
            return np.full(len(self.keys), NOT_VIRTUAL, dtype=np.uint32)
        return self.locations

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


def canonical_locations(
    locations: np.ndarray | None, sources: tuple[Source, ...]
) -> tuple[np.ndarray | None, tuple[Source, ...]]:
    """``locations`` and ``sources`` with the unused sources dropped (indices renumbered in
    table order), or ``(None, ())`` when no row is virtual: the canonical form."""
    if locations is None:
        return None, ()
    virtual = locations != NOT_VIRTUAL
    if not virtual.any():
        return None, ()
    used = np.bincount(locations[virtual], minlength=len(sources)) > 0
    if used.all():
        return locations, tuple(sources)
    renumber = np.full(len(sources), NOT_VIRTUAL, dtype=np.uint32)
    renumber[used] = np.arange(int(used.sum()), dtype=np.uint32)
    out = locations.copy()
    out[virtual] = renumber[locations[virtual]]
    return out, tuple(s for s, u in zip(sources, used.tolist(), strict=True) if u)


def merge_sources(
    old: tuple[Source, ...], new: tuple[Source, ...], new_locations: np.ndarray
) -> tuple[tuple[Source, ...], np.ndarray]:
    """One source table for two manifests: ``old`` extended by the entries of ``new`` it
    lacks, and ``new_locations`` renumbered into it (a loop over the table, not the rows)."""
    if not new:
        return old, new_locations
    index = {s: i for i, s in enumerate(old)}
    table = list(old)
    for s in new:
        if s not in index:
            index[s] = len(table)
            table.append(s)
    if len(table) >= int(NOT_VIRTUAL):
        raise ValueError("a manifest holds virtual refs into more than 2**32 - 1 sources")
    renumber = np.fromiter((index[s] for s in new), dtype=np.uint32, count=len(new))
    out = new_locations.copy()
    virtual = out != NOT_VIRTUAL
    out[virtual] = renumber[out[virtual]]
    return tuple(table), out
