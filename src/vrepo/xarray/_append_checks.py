"""CF-aware checks for appending an xarray dataset to one already stored.

An append that zarr would accept can still corrupt a dataset: times that repeat or go back,
a latitude grid that moved, a variable left shorter than its neighbours, a float64 silently
squeezed into float32. These checks compare the new dataset with the stored one (read
lazily; only 1-D coordinates are loaded) and raise `InvalidArgumentError` before any chunk
is written. cf_xarray finds the time axis, so datasets need not call it "time".
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from vrepo.errors import InvalidArgumentError


def time_dimension(ds: xr.Dataset) -> Hashable | None:
    """The dataset's time dimension when it is unambiguous, else None.

    Candidates are dimension coordinates that cf_xarray identifies as the T axis or as
    ``time``, and dimension coordinates holding datetimes.
    """
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    named = set(ds.cf.axes.get("T", [])) | set(ds.cf.coordinates.get("time", []))
    candidates = {
        dim
        for dim in ds.dims
        if dim in ds.coords
        and (dim in named or ds[dim].dtype.kind == "M" or _holds_cftime(ds[dim]))
    }
    return candidates.pop() if len(candidates) == 1 else None


def default_append_dim(ds: xr.Dataset, stored: xr.Dataset) -> Hashable | None:
    """For mode "a" without ``append_dim``: the time dimension, when this is an append.

    It is one when the dataset's time axis is unambiguous, stored too, and its values are
    not exactly the stored ones (equal times mean xarray's "a": add or overwrite variables).
    """
    dim = time_dimension(ds)
    if dim is None or dim not in stored.dims or dim not in stored.coords:
        return None
    if ds.sizes[dim] == stored.sizes[dim] and np.array_equal(ds[dim].values, stored[dim].values):
        return None
    return dim


def check_append(ds: xr.Dataset, stored: xr.Dataset, dim: Hashable) -> None:
    """Raise `InvalidArgumentError` if appending ``ds`` to ``stored`` along ``dim`` is unsafe."""
    if dim not in ds.dims:
        raise InvalidArgumentError(
            f"append_dim={dim!r} is not a dimension of the dataset being written "
            f"(its dimensions: {sorted(map(str, ds.dims))})"
        )
    if dim not in stored.dims:
        raise InvalidArgumentError(
            f"append_dim={dim!r} is not a dimension of the stored dataset "
            f"(its dimensions: {sorted(map(str, stored.dims))}); write with mode='w' to "
            "replace it, or choose one of its dimensions"
        )
    _check_variables_match(ds, stored, dim)
    _check_other_dimensions(ds, stored, dim)
    _check_coordinates(ds, stored, dim)
    _check_dtypes(ds, stored)
    if dim in ds.coords and dim in stored.coords:
        _check_appended_values(ds[dim].values, stored[dim].values, dim)


def _check_variables_match(ds: xr.Dataset, stored: xr.Dataset, dim: Hashable) -> None:
    along = {name for name, var in stored.variables.items() if dim in var.dims}
    new = {name for name, var in ds.variables.items() if dim in var.dims}
    if missing := sorted(map(str, along - new)):
        bounds_of = {
            str(var.attrs["bounds"]): str(name)
            for name, var in stored.variables.items()
            if "bounds" in var.attrs
        }
        described = [
            f"{name!r} (the bounds of {bounds_of[name]!r})" if name in bounds_of else repr(name)
            for name in missing
        ]
        raise InvalidArgumentError(
            f"appending along {dim!r} would leave {', '.join(described)} shorter than the "
            "rest of the stored dataset: include them in the dataset you append (bounds "
            "variables travel with their coordinate)"
        )
    if extra := sorted(map(str, new - along)):
        raise InvalidArgumentError(
            f"{', '.join(map(repr, extra))} along {dim!r} are not in the stored dataset, so "
            "appending would create them with only the new steps: write them over the whole "
            f"length of {dim!r} first (mode='a' without append_dim), or drop them"
        )


def _check_other_dimensions(ds: xr.Dataset, stored: xr.Dataset, dim: Hashable) -> None:
    for other, size in ds.sizes.items():
        if other != dim and other in stored.sizes and stored.sizes[other] != size:
            raise InvalidArgumentError(
                f"dimension {other!r} has size {size} in the appended dataset but "
                f"{stored.sizes[other]} in the stored one; only {dim!r} may grow"
            )


def _check_coordinates(ds: xr.Dataset, stored: xr.Dataset, dim: Hashable) -> None:
    for name, coord in ds.coords.items():
        if dim in coord.dims or name not in stored.variables:
            continue
        if not coord.variable.equals(stored[name].variable):
            raise InvalidArgumentError(
                f"coordinate {name!r} differs from the stored one; an append must keep every "
                f"coordinate that does not run along {dim!r} (regrid or select the data first)"
            )


def _check_dtypes(ds: xr.Dataset, stored: xr.Dataset) -> None:
    for name, var in ds.variables.items():
        if name not in stored.variables:
            continue
        old = stored[name].dtype
        if var.dtype.kind in "Mm" and var.dtype.kind == old.kind:
            continue  # datetime64[us] vs [ns]: the same times, encoded by their units anyway
        if var.dtype != old:
            raise InvalidArgumentError(
                f"variable {name!r} is {var.dtype} but stored as {old}; "
                f"convert it first (e.g. ds[{str(name)!r}].astype({str(old)!r}))"
            )


def _check_appended_values(new: np.ndarray, old: np.ndarray, dim: Hashable) -> None:
    """New coordinate values must continue the stored ones in their direction."""
    if new.size == 0 or old.size == 0:
        return
    decreasing = old.size > 1 and bool(old[-1] < old[0])
    ordered = new[:-1] > new[1:] if decreasing else new[:-1] < new[1:]
    if not np.all(ordered):
        raise InvalidArgumentError(
            f"the appended {dim!r} values are not strictly "
            f"{'decreasing' if decreasing else 'increasing'}; sort the dataset by {dim!r}"
        )
    first, last = new[0], new[-1]
    if (first < old[-1]) if decreasing else (first > old[-1]):
        return
    within = (new >= old.min()) & (new <= old.max())
    what = "overlap" if within.any() else "precede"
    raise InvalidArgumentError(
        f"the appended {dim!r} values ({first} .. {last}) {what} the stored ones "
        f"({old[0]} .. {old[-1]}); an append must come after what is stored. To overwrite "
        f"stored steps write with region={{{str(dim)!r}: 'auto'}}"
    )


def _holds_cftime(var: xr.DataArray) -> bool:
    if var.dtype.kind != "O" or var.size == 0:
        return False
    return type(var.values.flat[0]).__module__.startswith("cftime")
