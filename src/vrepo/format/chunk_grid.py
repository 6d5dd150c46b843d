"""Chunk-grid coordinates: validation and the row-major linear keys that manifests sort by.

A chunk coordinate's key is its row-major linear index inside an ``extent`` (per dimension,
the largest coordinate + 1). Sorting by key is sorting coordinates lexicographically, whatever
the extent, so growing the extent re-keys rows without reordering them. Everything here works
on whole numpy arrays of coordinates or keys, never row by row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_COORD = 2**32 - 1
"""The largest chunk coordinate a manifest stores (coordinates are uint32 on disk)."""

_MAX_CELLS = 2**63


def check_extent(extent: tuple[int, ...]) -> None:
    """Refuse a chunk grid whose linear keys would not fit in uint64 arithmetic."""
    if math.prod(extent) > _MAX_CELLS:
        raise ValueError(
            f"a chunk grid of extent {extent} has more than 2**63 chunks; vrepo does not "
            f"support chunk grids that large (use larger chunks)"
        )


def as_coords(coords: Any, ndim: int) -> np.ndarray:
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
    if c.min() < 0 or c.max() > MAX_COORD:
        raise ValueError("chunk coordinates must be between 0 and 2**32 - 1")
    return c.astype(np.uint64)


def ravel(coords: np.ndarray, extent: tuple[int, ...]) -> np.ndarray:
    """Row-major linear keys (uint64) of (n, ndim) coordinates inside `extent`."""
    n, ndim = coords.shape
    if ndim == 0:
        return np.zeros(n, dtype=np.uint64)
    keys = coords[:, 0].astype(np.uint64)
    for d in range(1, ndim):
        keys *= np.uint64(extent[d])
        keys += coords[:, d]
    return keys


def unravel(keys: np.ndarray, extent: tuple[int, ...]) -> np.ndarray:
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


def extent_of(coords: np.ndarray) -> tuple[int, ...]:
    """The smallest extent holding (n, ndim) coordinates: per dimension, max + 1 (0 if none)."""
    if coords.shape[0] == 0:
        return (0,) * coords.shape[1]
    return tuple(int(x) + 1 for x in coords.max(axis=0))


def check_unique(sorted_keys: np.ndarray, extent: tuple[int, ...], where: str) -> None:
    """Refuse sorted keys that repeat, naming the first repeated coordinate."""
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if len(dup):
        coord = tuple(int(x) for x in unravel(sorted_keys[dup[:1]], extent)[0])
        raise ValueError(f"{where}: chunk coordinate {coord} is given more than once")
