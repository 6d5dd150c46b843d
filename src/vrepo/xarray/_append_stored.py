"""What a group already holds, read raw, and new data encoded the way it is stored.

The append and region checks compare new values with stored ones. Decoding what is stored
can fail on data xarray itself wrote (a ``TIME`` in ``hour since 0000-01-01`` with no
calendar opens only with ``decode_times=False``), so the stored group is read without any
decoding, the new variables are encoded with the stored variable's encoding, exactly as
xarray will write them, and the two are compared number for number.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from xarray import conventions
from xarray.backends.zarr import encode_zarr_variable

from vrepo.errors import InvalidArgumentError, VRepoError

_PACKING = ("scale_factor", "add_offset")
_TIME_ATTRS = ("units", "calendar")


class StoredGroup:
    """A stored zarr group opened raw (nothing decoded), with the views the checks need."""

    def __init__(self, raw: xr.Dataset) -> None:
        self.raw = raw
        self._numbers: dict[Hashable, xr.Variable] = {}

    @property
    def sizes(self) -> Mapping[Hashable, int]:
        return self.raw.sizes

    @property
    def variables(self) -> Mapping[Hashable, xr.Variable]:
        return self.raw.variables

    def has_coordinate(self, dim: Hashable) -> bool:
        """Whether ``dim`` is stored with values of its own (a dimension coordinate)."""
        return dim in self.raw.variables and self.raw[dim].dims == (dim,)

    def numbers(self, name: Hashable) -> xr.Variable:
        """The stored variable decoded as xarray would, except times (that step can fail)."""
        if name not in self._numbers:
            self._numbers[name] = conventions.decode_cf_variable(
                name, self.raw[name].variable, decode_times=False, decode_timedelta=False
            )
        return self._numbers[name]

    def is_packed(self, name: Hashable) -> bool:
        """Whether the stored values are packed (scale_factor/add_offset): any float fits."""
        return any(key in self.raw[name].attrs for key in _PACKING)

    def units(self, name: Hashable) -> str | None:
        units = self.raw[name].attrs.get("units")
        return None if units is None else str(units)

    def encode(self, name: Hashable, new: xr.Variable) -> xr.Variable:
        """``new`` encoded as the stored ``name`` is: the very values xarray would write."""
        numbers = self.numbers(name)
        encoding = {k: v for k, v in numbers.encoding.items() if k not in new.attrs}
        if is_time_like(new):
            encoding.update({k: numbers.attrs[k] for k in _TIME_ATTRS if k in numbers.attrs})
        var = new.copy(deep=False)
        var.encoding = encoding
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # xarray's note that it changed the units: raised
            encoded = encode_zarr_variable(var, name=name)
        units, wanted = encoded.attrs.get("units"), encoding.get("units")
        if wanted is not None and not same_units(str(units), str(wanted)):
            raise InvalidArgumentError(
                f"the new {name!r} values cannot be stored exactly in the stored units "
                f"{wanted!r} as {encoded.dtype}: xarray would write them in {units!r} under "
                f"the stored {wanted!r}, and they would read back wrong. Round them to whole "
                f"{str(wanted).split()[0]}, or rewrite the whole {name!r} with mode='w' and "
                f"encoding={{{str(name)!r}: {{'units': {str(units)!r}}}}}"
            )
        return encoded

    def decodes_by_default(self, name: Hashable) -> bool:
        """Whether xarray's default decoding, which its zarr writer applies, works on ``name``."""
        var = self.raw[name].variable
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conventions.decode_cf_variable(name, var)  # reads the first and last values
        except Exception:  # what xarray's decoders raise varies: ValueError, OverflowError, ...
            return False
        return True

    def span(self, name: Hashable) -> str:
        """'first .. last' of a stored 1-D variable, decoded where xarray can, raw otherwise."""
        var = self.raw[name].variable
        if var.size == 0:
            return "none"
        ends = var[[0, -1]]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shown = conventions.decode_cf_variable(name, ends).values
            suffix = ""
        except Exception:  # shown raw instead; the units say what the numbers mean
            shown = ends.values
            suffix = f" {self.units(name)}" if self.units(name) else ""
        return f"{shown[0]} .. {shown[-1]}{suffix}"


def existing_group(store: Any, group: str | None) -> zarr.Group | None:
    """The zarr group at ``group`` in ``store``, or None if there is none."""
    try:
        return zarr.open_group(store, path=group or "", mode="r", zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError, ValueError):
        return None


def open_stored(store: Any, group: str | None) -> StoredGroup | None:
    """The group at ``group`` in ``store`` read raw, or None if there is no such group."""
    if existing_group(store, group) is None:
        return None
    with comparing(group, "read the stored group"):
        raw = xr.open_zarr(
            store, group=group, consolidated=False, zarr_format=3, chunks=None, decode_cf=False
        )
    return StoredGroup(raw)


def require_dimension(
    ds: xr.Dataset, stored: StoredGroup, dim: Hashable, named: str, fix: str
) -> None:
    """Raise unless ``dim`` (the argument ``named``) is a dimension of both datasets."""
    for whose, dims, then in (
        ("the dataset being written", ds.sizes, ""),
        ("the stored dataset", stored.sizes, fix),
    ):
        if dim not in dims:
            raise InvalidArgumentError(
                f"{named} is not a dimension of {whose} "
                f"(its dimensions: {sorted(map(str, dims))}){then}"
            )


def is_time_like(var: xr.Variable) -> bool:
    """Datetimes, timedeltas or cftime dates: values xarray encodes with units."""
    if var.dtype.kind in "Mm":
        return True
    if var.dtype.kind != "O" or var.size == 0:
        return False
    return type(first_value(var)).__module__.startswith("cftime")


def first_value(var: xr.Variable) -> Any:
    """The first element, computing no more of a dask-backed variable than its first chunk."""
    return np.ravel(var[(0,) * var.ndim].values)[0]


def same_units(new: str, old: str) -> bool:
    """Equal, or time units with the same step and reference instant in other words
    (xarray writes "days since 1800-01-01" for "days since 1800-01-01 00:00:0.0")."""
    if new.strip() == old.strip():
        return True
    if " since " not in new or " since " not in old:
        return False
    (step, ref), (old_step, old_ref) = new.split(" since ", 1), old.split(" since ", 1)
    if step.strip().lower().rstrip("s") != old_step.strip().lower().rstrip("s"):
        return False
    try:
        return bool(pd.Timestamp(ref.strip()) == pd.Timestamp(old_ref.strip()))
    except (ValueError, TypeError, OverflowError):  # a reference pandas cannot read
        return False


def span(var: xr.Variable | xr.DataArray) -> str:
    """'first .. last' of a 1-D variable of the dataset being written."""
    values = np.ravel(var.values)
    return "none" if values.size == 0 else f"{values[0]} .. {values[-1]}"


@contextmanager
def comparing(group: str | None, what: str) -> Iterator[None]:
    """Turn an unexpected xarray, cftime or zarr error while checking into a VRepoError."""
    try:
        yield
    except VRepoError:
        raise
    except Exception as exc:
        where = f" in group {group!r}" if group else ""
        raise InvalidArgumentError(
            f"vrepo could not {what}{where} to check the write against it "
            f"({type(exc).__name__}: {exc}); nothing was written. Make the new data match "
            "the stored encoding (the same calendar, opened with the same decode_times), or "
            "write with mode='w' to replace what is stored"
        ) from exc
