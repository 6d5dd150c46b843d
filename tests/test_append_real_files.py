"""Real NetCDF files, written with to_repo in three parts, read back identical to the source.

The files: every NetCDF file of iris-sample-data, and from esmvaltool-sample-data (326 small
CMIP6 files) the smallest file of each calendar and frequency, so every time encoding it
holds is covered in a few seconds. Each file is cut in three (unequal) parts along its first
dimension with at least three steps, in the file's own order; the first part is written,
the others appended with ``mode="a"`` alone where that dimension is the time axis cf_xarray
finds, else with ``append_dim``. The repository, opened with ``engine="vrepo"``, must equal
``xr.open_dataset`` of the file (values and attributes, decoded) and keep its encoding (dtype,
units, calendar, fill value, packing), and equal plain ``to_zarr`` written the same way.

That plain round trip runs first: where xarray itself cannot round-trip a file through zarr,
the case is listed in XARRAY_CANNOT with the reason and is a strict xfail, never a skip.
"""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from collections.abc import Hashable
from pathlib import Path

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import cftime
import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
from conftest import open_a1b
from xarray_checks import assert_same_as_plain_zarr

ENCODING_KEYS = ("dtype", "units", "calendar", "_FillValue", "scale_factor", "add_offset")


def _xarray_wraps_int32_hours() -> bool:
    """Whether xarray, decoding by default, turns int32 hours past 596523 into wrong timedeltas."""
    hours = xr.Dataset({"h": ("t", np.array([600_000], "int32"), {"units": "hours"})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray 2025.x's FutureWarning on decoding by units
        decoded = xr.decode_cf(hours)["h"].values
    return decoded.dtype.kind == "m" and decoded[0] != np.timedelta64(600_000, "h")


# case id -> why xarray's own zarr round trip of that file fails
XARRAY_CANNOT: dict[str, str] = {}
if _xarray_wraps_int32_hours():
    XARRAY_CANNOT |= dict.fromkeys(
        ["iris:A1B_north_america.nc", "iris:E1_north_america.nc"],
        "numpy < 2 multiplies int32 by np.int64(3600) in int32 (value-based casting), so xarray "
        "decodes forecast_period (int32 hours) past 596523 h to wrapped-around timedeltas",
    )


def _package_dir(name: str) -> Path:
    """Where a data package lies, found without importing it (esmvaltool's imports iris)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def _iris_files() -> dict[str, Path]:
    root = _package_dir("iris_sample_data") / "sample_data"
    return {f"iris:{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*.nc"))}


def _esmvaltool_files() -> dict[str, Path]:
    """The smallest file of each (calendar, frequency) pair; ties go to the first path."""
    smallest: dict[tuple[str, str], tuple[int, Path]] = {}
    for path in sorted((_package_dir("esmvaltool_sample_data") / "data").rglob("*.nc")):
        with netCDF4.Dataset(path) as nc:
            calendar = str(getattr(nc.variables["time"], "calendar", "standard"))
        key = (calendar, path.name.split("_")[1])  # ta_<frequency>_<model>_...
        candidate = (path.stat().st_size, path)
        if key not in smallest or candidate < smallest[key]:
            smallest[key] = candidate
    return {
        f"esmvaltool:{calendar}/{path.name}": path
        for (calendar, _), (_, path) in sorted(smallest.items())
    }


FILES = {**_iris_files(), **_esmvaltool_files()}


def _case(case_id: str) -> object:
    if case_id in XARRAY_CANNOT:
        return pytest.param(
            case_id, marks=pytest.mark.xfail(strict=True, reason=XARRAY_CANNOT[case_id])
        )
    return case_id


def _split_dimension(path: Path) -> str:
    """The file's first dimension with at least three steps, so no part is empty."""
    with netCDF4.Dataset(path) as nc:
        dims = [name for name, dim in nc.dimensions.items() if len(dim) >= 3]
    assert dims, f"{path.name} has no dimension of three or more steps to split along"
    return dims[0]


def _parts(ds: xr.Dataset, dim: str) -> list[xr.Dataset]:
    n = ds.sizes[dim]
    cuts = [0, n // 4, (2 * n) // 3, n]
    return [ds.isel({dim: slice(a, b)}) for a, b in itertools.pairwise(cuts)]


def _plain_round_trip(parts: list[xr.Dataset], dim: Hashable, path: Path) -> xr.Dataset:
    """xarray's own zarr writer, in the same three parts; fails saying so if xarray cannot."""
    store = zarr.storage.LocalStore(path)
    try:
        for i, part in enumerate(parts):
            extra = {"append_dim": dim} if i else {"mode": "w-"}
            part.to_zarr(store, zarr_format=3, consolidated=False, **extra)
        plain = xr.open_zarr(store, consolidated=False, chunks=None).load()
        xr.testing.assert_identical(plain, xr.concat(parts, dim, data_vars="minimal"))
    except Exception as exc:
        pytest.fail(
            f"xarray itself cannot round-trip this file through zarr ({type(exc).__name__}: "
            f"{exc}); list it in XARRAY_CANNOT with that reason"
        )
    return plain


def _same_encoding(key: str, got: dict, want: dict) -> bool:
    """Equal in meaning: time units that name the same instants in other words (xarray
    writes "days since 1800-01-01" for "days since 1800-01-01 00:00:0.0"), fill values equal
    in the variable's own dtype (zarr attributes keep them as float64)."""
    if key not in got:
        return False
    a, b = got[key], want[key]
    if key == "units" and " since " in str(b):
        calendar = str(want.get("calendar", "standard"))
        return list(cftime.num2date([0, 1], a, calendar)) == list(
            cftime.num2date([0, 1], b, calendar)
        )
    if key == "_FillValue":
        a, b = np.asarray(a, want["dtype"]), np.asarray(b, want["dtype"])
        return bool(a == b or (np.isnan(a) and np.isnan(b)))
    return str(a) == str(b)


@pytest.mark.parametrize("case_id", [_case(c) for c in FILES])
def test_three_part_write_reads_back_identical(tmp_path: Path, case_id: str) -> None:
    path = FILES[case_id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray's notes on these files' own encodings
        with xr.open_dataset(path) as opened:
            source = opened.load()
    dim = _split_dimension(path)
    parts = _parts(source, dim)
    plain = _plain_round_trip(parts, dim, tmp_path / "plain.zarr")

    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    along = {"mode": "a"} if dim in source.cf.axes.get("T", []) else {"append_dim": dim}
    for i, part in enumerate(parts):
        part.vrepo.to_repo(repo, message=f"part {i}", **(along if i else {}))

    got = xr.open_dataset(tmp_path / "repo.vrepo", engine="vrepo", chunks=None).load()
    xr.testing.assert_identical(got, source)
    assert_same_as_plain_zarr(got, plain)
    for name, var in source.variables.items():
        for key in ENCODING_KEYS:
            if key in var.encoding:
                assert _same_encoding(key, got[name].encoding, var.encoding), (name, key)
    assert [s.message for s in repo.ancestry()][:3] == ["part 2", "part 1", "part 0"]


def test_appends_mix_decoded_and_raw_times(tmp_path: Path, a1b_dataset: xr.Dataset) -> None:
    """Numbers in the stored units (in other words) append to dates; other calendars do not."""
    with open_a1b(decode_times=False) as opened:
        raw = opened.load()  # time in "hours since 1970-01-01 00:00:00"; stored: "... 1970-01-01"
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    a1b_dataset.isel(time=slice(0, 100)).vrepo.to_repo(repo)
    raw.isel(time=slice(100, 200)).vrepo.to_repo(repo, append_dim="time")
    a1b_dataset.isel(time=slice(200, None)).vrepo.to_repo(repo, mode="a")
    xr.testing.assert_identical(xr.open_dataset(repo, engine="vrepo").load(), a1b_dataset)

    other = raw.isel(time=slice(200, None))
    other.time.attrs["calendar"] = "standard"
    with pytest.raises(vrepo.InvalidArgumentError, match="calendar but the stored ones are in"):
        other.vrepo.to_repo(repo, mode="a")
    assert len(list(repo.ancestry())) == 4
