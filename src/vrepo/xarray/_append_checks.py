"""CF-aware checks for appending an xarray dataset to one already stored, or writing into it.

An append that zarr would accept can still corrupt a dataset: times that repeat or go back,
a latitude grid that moved, a variable left shorter than its neighbours, a float64 silently
squeezed into float32, Celsius added under a stored "K". And ``mode="a"`` without
``append_dim`` writes variables in place, so new depths would silently replace the stored
ones. These checks compare the new dataset with the stored one, read raw and compared in the
stored encoding (`vrepo.xarray._append_stored`), and raise `InvalidArgumentError` before any
chunk is written. cf_xarray finds the time axis, so datasets need not call it "time".
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import xarray as xr

from vrepo.errors import InvalidArgumentError
from vrepo.xarray._append_stored import (
    StoredGroup,
    first_value,
    is_time_like,
    require_dimension,
    same_units,
    span,
)


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
        and (dim in named or ds[dim].dtype.kind == "M" or is_time_like(ds[dim].variable))
    }
    return candidates.pop() if len(candidates) == 1 else None


def default_append_dim(ds: xr.Dataset, stored: StoredGroup) -> Hashable | None:
    """For mode "a" without ``append_dim``: the dimension to append along, None to write in place.

    Equal steps along every shared dimension keep xarray's meaning of "a": add or overwrite
    variables in place. A time axis (unambiguous, stored with values) whose values differ is
    appended along. Any other difference would overwrite stored coordinates or fail half-way,
    so it raises `InvalidArgumentError` saying how to append or overwrite on purpose.
    """
    differing = [dim for dim in ds.dims if dim in stored.sizes and not _same_steps(ds, stored, dim)]
    if not differing:
        return None
    time = time_dimension(ds)
    if time in differing and stored.has_coordinate(time):
        return time
    raise _overwrite_refused(ds, stored, differing)


def check_in_place(ds: xr.Dataset, stored: StoredGroup) -> None:
    """Variables written over stored ones keep their dtype and units (xarray keeps the attrs)."""
    _check_compatible(ds, stored)


def check_append(ds: xr.Dataset, stored: StoredGroup, dim: Hashable) -> None:
    """Raise `InvalidArgumentError` if appending ``ds`` to ``stored`` along ``dim`` is unsafe."""
    fix = "; write with mode='w' to replace it, or choose one of its dimensions"
    require_dimension(ds, stored, dim, f"append_dim={dim!r}", fix)
    _check_variables_match(ds, stored, dim)
    _check_other_dimensions(ds, stored, dim)
    _check_compatible(ds, stored)
    _check_coordinates(ds, stored, dim)
    if dim in ds.coords and stored.has_coordinate(dim):
        new = stored.encode(dim, ds[dim].variable).values
        _check_appended_values(new, stored.raw[dim].values, dim, span(ds[dim]), stored.span(dim))


def _same_steps(ds: xr.Dataset, stored: StoredGroup, dim: Hashable) -> bool:
    """Whether ``ds`` has the stored steps along ``dim``: its size, and its values if both have."""
    if ds.sizes[dim] != stored.sizes[dim]:
        return False
    if dim not in ds.coords or not stored.has_coordinate(dim):
        return True
    return stored.encode(dim, ds[dim].variable).equals(stored.raw[dim].variable)


def _overwrite_refused(
    ds: xr.Dataset, stored: StoredGroup, differing: list[Hashable]
) -> InvalidArgumentError:
    dim, n, m = differing[0], ds.sizes[differing[0]], stored.sizes[differing[0]]
    if dim in ds.coords and stored.has_coordinate(dim):
        what = (
            f"its {dim!r} values ({span(ds[dim])}, {n} steps) differ from the stored ones "
            f"({stored.span(dim)}, {m} steps)"
        )
    else:
        what = f"its dimension {dim!r} has {n} steps but {m} are stored"
    if others := [str(d) for d in differing[1:]]:
        what += f" (and {', '.join(map(repr, others))} differ too)"
    in_place = "mode='r+' or " if n == m else ""
    return InvalidArgumentError(
        f"mode='a' without append_dim writes variables in place, and {what}: pass "
        f"append_dim={dim!r} to append along {dim!r}, or {in_place}"
        f"region={{{dim!r}: slice(start, start + {n})}} to overwrite stored values on purpose"
    )


def _check_variables_match(ds: xr.Dataset, stored: StoredGroup, dim: Hashable) -> None:
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


def _check_other_dimensions(ds: xr.Dataset, stored: StoredGroup, dim: Hashable) -> None:
    for other, size in ds.sizes.items():
        if other != dim and other in stored.sizes and stored.sizes[other] != size:
            raise InvalidArgumentError(
                f"dimension {other!r} has size {size} in the appended dataset but "
                f"{stored.sizes[other]} in the stored one; only {dim!r} may grow"
            )


def _check_coordinates(ds: xr.Dataset, stored: StoredGroup, dim: Hashable) -> None:
    for name, coord in ds.coords.items():
        if dim in coord.dims or name not in stored.variables:
            continue
        if not stored.encode(name, coord.variable).equals(stored.raw[name].variable):
            raise InvalidArgumentError(
                f"coordinate {name!r} differs from the stored one; an append must keep every "
                f"coordinate that does not run along {dim!r} (regrid or select the data first)"
            )


def _check_compatible(ds: xr.Dataset, stored: StoredGroup) -> None:
    """Each variable that lands in a stored array fits its dtype and units."""
    for name, var in ds.variables.items():
        if var.dtype.kind == "O" and var.size == 0:
            continue  # no values, so neither dates nor strings: nothing lands
        if name in stored.variables:
            _check_dtype(name, var, stored)
            _check_units(name, var, _own_attrs(ds, name), stored)


def _check_dtype(name: Hashable, var: xr.Variable, stored: StoredGroup) -> None:
    if is_time_like(var):
        if stored.units(name) is None:
            raise InvalidArgumentError(
                f"variable {name!r} holds dates or durations but the stored one holds "
                f"{stored.raw[name].dtype} values without CF units; write numbers, or "
                "write with mode='w' to replace the stored dataset"
            )
        return  # encoded in the stored units and dtype, as xarray writes them
    if stored.is_packed(name):
        return  # packed with the stored scale_factor/add_offset: any float fits
    old = stored.numbers(name).dtype
    if var.dtype.kind in "US" and old.kind == var.dtype.kind and var.dtype != old:
        raise InvalidArgumentError(
            f"variable {name!r} holds strings of {var.dtype} but the stored array holds "
            f"{old}, and fixed-length strings append only at the same length: convert them "
            f"(ds[{str(name)!r}].astype({str(old)!r})) if none is longer, or rewrite "
            f"{name!r} with mode='w'"
        )
    if var.dtype != old and not _strings_fit(var.dtype, old):
        raise InvalidArgumentError(
            f"variable {name!r} is {var.dtype} but stored as {old}; "
            f"convert it first (e.g. ds[{str(name)!r}].astype({str(old)!r}))"
        )


def _own_attrs(ds: xr.Dataset, name: Hashable) -> Mapping[Hashable, object]:
    """A variable's attributes; a bounds variable takes units and calendar from its parent."""
    attrs = ds[name].attrs
    for parent in ds.variables.values():
        if parent.attrs.get("bounds") == name and "units" not in attrs:
            inherited = {k: parent.attrs[k] for k in ("units", "calendar") if k in parent.attrs}
            return {**attrs, **inherited}
    return attrs


def _strings_fit(new: np.dtype, old: np.dtype) -> bool:
    """What xarray appends without truncating: object strings to variable-length ones
    (object, or numpy's StringDType as newer zarr reads them), fixed-length to object."""
    return (new.kind == "O" and old.kind in "OT") or (new.kind in "US" and old.kind == "O")


def _check_units(
    name: Hashable, var: xr.Variable, attrs: Mapping[Hashable, object], stored: StoredGroup
) -> None:
    """Numbers in other units than the stored ones would be read in the stored units.

    xarray keeps a stored array's attributes when it writes into it, so "degC" data would
    be read as "K", and times counted from another reference (or in another calendar) as
    the stored times. Dates are encoded in the stored units, but not across calendars.
    """
    if (old := stored.units(name)) is None or var.dtype.kind == "m":
        return
    since = " since " in old
    stored_calendar = _calendar(stored.raw[name].attrs.get("calendar"))
    if is_time_like(var):
        calendar = _calendar(getattr(first_value(var), "calendar", "proleptic_gregorian"))
        if since and calendar != stored_calendar:
            raise InvalidArgumentError(
                f"the new {name!r} dates are in the {calendar!r} calendar but the stored ones "
                f"in {stored_calendar!r}: convert them first, e.g. "
                f"ds.convert_calendar({stored_calendar!r}, dim={str(name)!r})"
            )
        return
    new = attrs.get("units")
    if new is None and not since:
        return  # the stored attrs stay and say what the numbers mean
    if new is None or not same_units(str(new), old):
        fix = "decode them with xr.decode_cf (vrepo encodes them in the stored units)"
        raise InvalidArgumentError(
            f"variable {name!r} holds numbers in units {new!r} but the stored ones are in "
            f"{old!r}, and they would be read in {old!r}: {fix if since else 'convert them'}, "
            f"or set ds[{str(name)!r}].attrs['units'] = {old!r} if they already are"
        )
    if since and (calendar := _calendar(attrs.get("calendar"))) != stored_calendar:
        raise InvalidArgumentError(
            f"variable {name!r} holds times in the {calendar!r} calendar but the stored "
            f"ones are in {stored_calendar!r}: decode them with xr.decode_cf and convert "
            f"them (ds.convert_calendar({stored_calendar!r}))"
        )


# one name per calendar; standard and proleptic_gregorian differ only before 1582
_CALENDAR_ALIASES = {
    "gregorian": "standard",
    "proleptic_gregorian": "standard",
    "noleap": "365_day",
    "all_leap": "366_day",
}


def _calendar(calendar: object) -> str:
    name = "standard" if calendar is None else str(calendar).lower()
    return _CALENDAR_ALIASES.get(name, name)


def _check_appended_values(
    new: np.ndarray, old: np.ndarray, dim: Hashable, new_span: str, old_span: str
) -> None:
    """New coordinate values (in the stored encoding) must continue the stored ones."""
    if new.size == 0 or old.size == 0:
        return
    decreasing = old.size > 1 and bool(old[-1] < old[0])
    ordered = new[:-1] > new[1:] if decreasing else new[:-1] < new[1:]
    if not np.all(ordered):
        raise InvalidArgumentError(
            f"the appended {dim!r} values are not strictly "
            f"{'decreasing' if decreasing else 'increasing'}; sort the dataset by {dim!r}"
        )
    if (new[0] < old[-1]) if decreasing else (new[0] > old[-1]):
        return
    within = (new >= old.min()) & (new <= old.max())
    what = "overlap" if within.any() else "precede"
    raise InvalidArgumentError(
        f"the appended {dim!r} values ({new_span}) {what} the stored ones ({old_span}); an "
        f"append must come after what is stored. To overwrite stored steps write with "
        f"region={{{str(dim)!r}: 'auto'}}"
    )


def undecodable(ds: xr.Dataset, stored: StoredGroup) -> frozenset[Hashable]:
    """Stored variables the dataset writes into that xarray cannot decode by default.

    xarray's zarr writer decodes them to learn their encoding and fails ("unable to decode
    time units"); written as the plain numbers they are, they need no decoding. Dates cannot
    be encoded to match them, so those raise `InvalidArgumentError`.
    """
    names = frozenset(
        name
        for name in ds.variables
        if name in stored.variables and not stored.decodes_by_default(name)
    )
    for name in sorted(names, key=str):
        if is_time_like(ds[name].variable):
            attrs = {k: v for k, v in stored.raw[name].attrs.items() if k in ("units", "calendar")}
            raise InvalidArgumentError(
                f"the stored {name!r} ({attrs}) cannot be decoded by xarray, so vrepo cannot "
                f"encode dates to match it: write {name!r} as the numbers it holds (open the "
                "new data with decode_times=False too), or write with mode='w' to replace it"
            )
    return names
