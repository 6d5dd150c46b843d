"""Region writes checked against what is stored, and ``"auto"`` regions found by vrepo.

xarray reports a region outside the stored array as "different dimension sizes ... consider
using the region argument", and finds ``"auto"`` regions by decoding the stored coordinate,
which fails on times it cannot decode. Here each region becomes plain ``slice(start, stop)``
inside the stored array before anything is written, or an `InvalidArgumentError` says which
dimension is wrong and what to pass instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from vrepo.errors import InvalidArgumentError
from vrepo.xarray._append_stored import StoredGroup, require_dimension, span


def resolve_region(
    ds: xr.Dataset, stored: StoredGroup | None, region: Any, group: str | None
) -> dict[Hashable, slice]:
    """``region`` ("auto" or a dict of slices and "auto") as slices inside the stored group."""
    if stored is None or not stored.variables:
        where = f"group {group!r}" if group else "the root group"
        raise InvalidArgumentError(
            f"region= writes into stored arrays, but {where} holds none: write the whole "
            "dataset first, or its metadata with ds.to_zarr(session.store, compute=False)"
        )
    if isinstance(region, str) and region == "auto":
        region = dict.fromkeys(ds.dims, "auto")
    if not isinstance(region, Mapping):
        raise InvalidArgumentError(
            f"region must be 'auto' or a dict of dimension: slice or 'auto', not {region!r}"
        )
    resolved: dict[Hashable, slice] = {}
    for dim, where in region.items():
        fix = "; write with mode='a' to add variables along new dimensions"
        require_dimension(ds, stored, dim, f"{dim!r} (in region)", fix)
        if isinstance(where, str) and where == "auto":
            resolved[dim] = _found(ds, stored, dim)
        else:
            resolved[dim] = _inside(ds, stored, dim, where)
    return resolved


def _inside(ds: xr.Dataset, stored: StoredGroup, dim: Hashable, where: Any) -> slice:
    """``where`` as slice(start, stop) with 0 <= start <= stop <= the stored size."""
    if not isinstance(where, slice) or where.step not in (None, 1):
        raise InvalidArgumentError(
            f"region[{dim!r}] must be 'auto' or a slice with step 1, not {where!r}"
        )
    size, n = stored.sizes[dim], ds.sizes[dim]
    start = 0 if where.start is None else int(where.start)
    stop = size if where.stop is None else int(where.stop)
    start, stop = (start + size if start < 0 else start), (stop + size if stop < 0 else stop)
    shown = f"region={{{str(dim)!r}: slice({where.start}, {where.stop})}}"
    if start < 0 or stop > size or start > stop:
        raise InvalidArgumentError(
            f"{shown} reaches outside the stored {dim!r}, which has {size} steps "
            f"(slice(0, {size})): write inside it, or pass append_dim={dim!r} instead of "
            "region to add steps after the stored ones"
        )
    if stop - start != n:
        raise InvalidArgumentError(
            f"{shown} covers {stop - start} {dim!r} steps but the dataset has {n}: pass "
            f"region={{{str(dim)!r}: slice({start}, {start + n})}}, or select {stop - start} "
            f"steps of the dataset"
        )
    return slice(start, stop)


def _found(ds: xr.Dataset, stored: StoredGroup, dim: Hashable) -> slice:
    """Where the dataset's ``dim`` values sit in the stored ones, compared as stored."""
    if dim not in ds.coords:
        return _inside(ds, stored, dim, slice(0, ds.sizes[dim]))  # xarray's rule: from 0
    if not stored.has_coordinate(dim):
        raise InvalidArgumentError(
            f"region='auto' places the dataset by its {dim!r} values, but the stored dataset "
            f"has no {dim!r} coordinate: pass region={{{str(dim)!r}: slice(start, stop)}}"
        )
    new = stored.encode(dim, ds[dim].variable).values
    index = pd.Index(stored.raw[dim].values)
    if not index.is_unique:
        raise InvalidArgumentError(
            f"the stored {dim!r} values repeat, so region='auto' cannot place the dataset: "
            f"pass region={{{str(dim)!r}: slice(start, stop)}}"
        )
    positions = index.get_indexer(new)
    if missing := int((positions == -1).sum()):
        first = np.ravel(ds[dim].values)[positions == -1][0]
        raise InvalidArgumentError(
            f"region='auto': {missing} of the {new.size} {dim!r} values ({span(ds[dim])}) are "
            f"not stored (stored: {stored.span(dim)}; first missing: {first}). Pass "
            f"append_dim={dim!r} to add steps after the stored ones, or select the stored "
            "steps first"
        )
    if positions.size and (np.diff(positions) != 1).any():
        raise InvalidArgumentError(
            f"region='auto': the {dim!r} values are stored, but not as one run in the same "
            f"order (stored positions {positions[0]} .. {positions[-1]}): sort the dataset "
            f"by {dim!r} or write the pieces one by one"
        )
    start = int(positions[0]) if positions.size else 0
    return slice(start, start + positions.size)
