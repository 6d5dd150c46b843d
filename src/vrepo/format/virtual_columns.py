"""Manifest columns of virtual refs, built from numpy columns without a Python object per ref."""

from __future__ import annotations

from typing import Any

import numpy as np

from vrepo.format.chunk_grid import as_coords, check_extent, check_unique, extent_of, ravel
from vrepo.format.chunk_ref import MAX_CHUNK_LENGTH
from vrepo.format.manifest_columns import ManifestColumns, Source


def virtual_columns(
    ndim: int,
    coords: Any,
    location_index: np.ndarray,
    offsets: Any,
    lengths: Any,
    sources: tuple[Source, ...],
) -> ManifestColumns:
    """Columns of n virtual refs: (n, ndim) unique chunk coordinates (any order), each ref's
    index into ``sources`` (its (location, validator)), byte offsets and lengths.
    `ValueError` names what is wrong."""
    c = as_coords(coords, ndim)
    n = c.shape[0]
    index = np.asarray(location_index)
    offsets, lengths = np.asarray(offsets), np.asarray(lengths)
    for name, column in (("locations", index), ("offsets", offsets), ("lengths", lengths)):
        if column.shape != (n,):
            raise ValueError(
                f"{name} must have shape ({n},) as the coordinates, got {column.shape}"
            )
        if n and not np.issubdtype(column.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {column.dtype}")
    if n == 0:
        return ManifestColumns.empty(ndim)
    if offsets.min() < 0 or lengths.min() < 0 or int(lengths.max()) > MAX_CHUNK_LENGTH:
        raise ValueError("virtual refs need offsets >= 0 and 0 <= lengths < 4 GiB")
    if index.min() < 0 or int(index.max()) >= len(sources):
        raise ValueError("a location index is out of range of the locations given")
    extent = extent_of(c)
    check_extent(extent)
    keys = ravel(c, extent)
    order = None
    if not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        check_unique(keys, extent, "set_virtual_refs")

    def sorted_as(a: np.ndarray, dtype: type) -> np.ndarray:
        return (a if order is None else a[order]).astype(dtype)

    return ManifestColumns(
        ndim,
        extent,
        keys,
        None,
        sorted_as(offsets, np.uint64),
        sorted_as(lengths, np.uint32),
        b"",
        None,
        sorted_as(index, np.uint32),
        tuple(sources),
    )
