"""`vrepo.xarray.to_repo` and ``ds.vrepo``: xarray's write modes, regions and appends, checked."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import vrepo
import vrepo.xarray._append_stored
from vrepo.xarray import to_repo
from xarray_checks import assert_same_as_plain_zarr, failing_from_block


@pytest.fixture(scope="module")
def dataset(a1b_dataset: xr.Dataset) -> xr.Dataset:
    return a1b_dataset.chunk({"time": 24})


@pytest.fixture
def repo(tmp_path) -> vrepo.Repository:
    return vrepo.Repository.create(tmp_path / "repo.vrepo")


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


def read(repo: vrepo.Repository, **ref) -> xr.Dataset:
    return xr.open_dataset(repo, engine="vrepo", chunks=None, **ref)


def head(repo: vrepo.Repository) -> str:
    return repo.lookup_branch("main")


def test_write_then_append_equals_plain_zarr(tmp_path, repo, dataset):
    first, rest = dataset.isel(time=slice(0, 120)), dataset.isel(time=slice(120, None))
    plain = zarr.storage.LocalStore(tmp_path / "plain.zarr")
    first.to_zarr(plain, mode="w", zarr_format=3, consolidated=False)
    rest.to_zarr(plain, append_dim="time", zarr_format=3, consolidated=False)

    v1 = first.vrepo.to_repo(repo, message="first 120 years")
    v2 = rest.vrepo.to_repo(repo, mode="a")  # appends along the CF time axis by default
    assert [s.id for s in repo.ancestry()][:2] == [v2, v1]
    assert next(repo.ancestry()).message == "Append 120 time step(s) of " + ", ".join(
        dataset.data_vars
    )
    assert_same_as_plain_zarr(
        xr.open_dataset(repo, engine="vrepo", chunks={}),
        xr.open_zarr(plain, consolidated=False),
    )
    xr.testing.assert_identical(read(repo, snapshot_id=v1), first.compute())


def test_session_target_leaves_the_commit_to_the_caller(repo, dataset):
    session = repo.writable_session("main")
    assert to_repo(dataset, session) is None
    assert head(repo) == session.snapshot_id  # nothing published yet
    assert session.status().chunks_written["/air_temperature"] == 10
    snapshot = session.commit("mine")
    xr.testing.assert_identical(read(repo, snapshot_id=snapshot), dataset.compute())


def test_data_arrays_named_and_unnamed(repo, dataset):
    air = dataset.air_temperature
    air.vrepo.to_repo(repo, group="named")
    air.rename(None).vrepo.to_repo(repo, group="unnamed")
    for group in ("named", "unnamed"):
        got = xr.open_dataarray(repo, engine="vrepo", group=group)
        xr.testing.assert_identical(got.compute(), air.compute().rename(got.name))
    assert xr.open_dataarray(repo, engine="vrepo", group="named").name == "air_temperature"


def test_modes(repo, dataset):
    dataset.vrepo.to_repo(repo)
    before = head(repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="already contains data"):
        dataset.vrepo.to_repo(repo)  # w- (the default) refuses to overwrite
    assert head(repo) == before

    doubled = dataset.air_temperature * 2
    dataset.assign(doubled=doubled).vrepo.to_repo(repo, mode="a")  # same times: adds a variable
    got = read(repo)
    assert got.sizes["time"] == 240
    np.testing.assert_array_equal(got.doubled.values, doubled.values)

    small = dataset.isel(time=slice(0, 12))
    small.vrepo.to_repo(repo, mode="w")
    assert read(repo).sizes["time"] == 12 and "doubled" not in read(repo)

    later = dataset.isel(time=slice(12, 24))
    # np.int32(1): numpy < 2 makes 0-d int32 + 1 an int64, which would no longer append
    changed = later.assign(latitude_longitude=later.latitude_longitude + np.int32(1))
    changed.vrepo.to_repo(repo, mode="a-", append_dim="time", message="only what runs on time")
    got = read(repo)
    assert got.sizes["time"] == 24
    assert int(got.latitude_longitude) == int(dataset.latitude_longitude)  # "a-" skipped it
    changed.isel(time=slice(0, 0)).vrepo.to_repo(repo, mode="a", append_dim="time")
    assert int(read(repo).latitude_longitude) == int(dataset.latitude_longitude) + 1


def along_time(ds: xr.Dataset) -> xr.Dataset:
    """The part of ``ds`` a region write along time may write (xarray's rule)."""
    return ds.drop_vars([n for n, v in ds.variables.items() if "time" not in v.dims])


def test_region_writes(repo, dataset):
    dataset.vrepo.to_repo(repo)
    piece = along_time(dataset).isel(time=slice(48, 72))
    piece.assign(air_temperature=piece.air_temperature + 1).vrepo.to_repo(
        repo, region="auto", message="warmer"
    )
    piece.assign(air_temperature=piece.air_temperature - 1).vrepo.to_repo(
        repo, region={"time": slice(72, 96)}, mode="r+"
    )
    got = read(repo).air_temperature.values
    expected = dataset.air_temperature.values.copy()
    expected[48:72] += 1
    expected[72:96] = dataset.air_temperature.values[48:72] - 1
    np.testing.assert_array_equal(got, expected)
    assert len(list(repo.ancestry())) == 4


def test_append_loop_starts_from_nothing(repo, dataset):
    for start in range(0, 240, 48):
        dataset.isel(time=slice(start, start + 48)).vrepo.to_repo(repo, append_dim="time")
    xr.testing.assert_identical(read(repo), dataset.compute())
    assert len(list(repo.ancestry())) == 6


def _later(ds: xr.Dataset) -> xr.Dataset:
    return ds.isel(time=slice(120, None))


def _earlier(ds: xr.Dataset) -> xr.Dataset:
    shift = ds.time.values[120] - ds.time.values[0]
    return ds.isel(time=slice(0, 5)).assign_coords(time=ds.time.values[:5] - shift)


BAD_APPENDS = {
    "overlap": (lambda ds: ds.isel(time=slice(100, 140)), "overlap the stored"),
    "repeat": (lambda ds: ds.isel(time=slice(0, 10)), "overlap the stored"),
    "precede": (_earlier, "precede the stored"),
    "unsorted": (lambda ds: ds.isel(time=[130, 125]), "not strictly increasing"),
    "coordinate": (
        lambda ds: _later(ds).assign_coords(latitude=ds.latitude + 1),
        "coordinate 'latitude'",
    ),
    "scalar-coordinate": (lambda ds: _later(ds).assign_coords(height=5.0), "'height' differs"),
    "size": (lambda ds: _later(ds).isel(longitude=slice(0, 10)), "'longitude' has size 10"),
    "dtype": (
        lambda ds: _later(ds).assign(air_temperature=ds.air_temperature.astype("f8")),
        "is float64 but stored as float32",
    ),
    "bounds": (lambda ds: _later(ds).drop_vars("time_bnds"), "the bounds of 'time'"),
    "new-variable": (
        lambda ds: _later(ds).assign(extra=ds.air_temperature),
        "'extra' along 'time' are not",
    ),
    "units": (
        lambda ds: _later(ds).assign(
            air_temperature=_later(ds).air_temperature.assign_attrs(units="degC")
        ),
        "units 'degC' but the stored ones are in 'K'",
    ),
    "calendar": (
        lambda ds: _later(ds).assign_coords(
            time=xr.date_range("1980-06-01", periods=120, freq="YS-JUN", calendar="noleap")
        ),
        "'time' dates are in the '365_day' calendar but the stored ones in '360_day'",
    ),
}


@pytest.mark.parametrize("case", BAD_APPENDS)
def test_bad_appends_fail_before_writing(repo, dataset, case):
    change, message = BAD_APPENDS[case]
    dataset.isel(time=slice(0, 120)).vrepo.to_repo(repo)
    before = head(repo)
    session = repo.writable_session("main")
    with pytest.raises(vrepo.InvalidArgumentError, match=message):
        to_repo(change(dataset), session, append_dim="time")
    assert not session.has_uncommitted_changes
    assert head(repo) == before


def test_failed_write_leaves_the_session_as_it_was(repo, dataset):
    session = repo.writable_session("main")
    dataset.isel(time=slice(0, 120)).vrepo.to_repo(session)
    status = session.status()

    rest = dataset.isel(time=slice(120, None))
    broken = failing_from_block(rest, "air_temperature", 3, "disk on fire")
    with pytest.raises(RuntimeError, match="disk on fire"):
        to_repo(broken, session, append_dim="time")
    assert session.status() == status
    assert zarr.open_array(session.store, path="air_temperature").shape[0] == 120
    to_repo(rest, session, append_dim="time")  # the session is still usable
    xr.testing.assert_identical(read(repo, snapshot_id=session.commit("all")), dataset.compute())


def test_chunk_alignment(repo, dataset):
    misaligned = dataset.chunk({"time": 24}).isel(time=slice(0, 120)).chunk({"time": 10})
    with pytest.raises(vrepo.InvalidArgumentError, match="align_chunks=True"):
        misaligned.vrepo.to_repo(repo, encoding={"air_temperature": {"chunks": (24, 37, 49)}})
    session = repo.writable_session("main")
    with pytest.raises(vrepo.ChunkConflictError, match="/air_temperature chunk"):
        to_repo(
            misaligned,
            session,
            encoding={"air_temperature": {"chunks": (24, 37, 49)}},
            safe_chunks=False,  # vrepo still refuses to let two blocks race on one chunk
        )
    assert not session.has_uncommitted_changes
    misaligned.vrepo.to_repo(
        repo, encoding={"air_temperature": {"chunks": (24, 37, 49)}}, align_chunks=True
    )
    xr.testing.assert_identical(read(repo), dataset.isel(time=slice(0, 120)).compute())


def test_consolidated_metadata_stays_current(repo, dataset):
    session = repo.writable_session("main")
    dataset.isel(time=slice(0, 120)).to_zarr(session.store, zarr_format=3)  # consolidates
    to_repo(dataset.isel(time=slice(120, None)), session, mode="a")
    session.commit("both")
    consolidated = xr.open_zarr(repo.readonly_session().store, consolidated=True)
    assert consolidated.sizes["time"] == 240


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_schedulers(repo, dataset, scheduler):
    with dask.config.set(scheduler=scheduler):
        snapshot = dataset.vrepo.to_repo(repo, split_every=2)
    xr.testing.assert_identical(read(repo, snapshot_id=snapshot), dataset.compute())


def test_fork_target_for_workers(repo, dataset):
    session = repo.writable_session("main")
    template = dataset.assign(time_bnds=dataset.time_bnds.compute())  # decodable when empty
    template.to_zarr(session.store, compute=False, zarr_format=3, consolidated=False)
    fork = session.fork()
    to_repo(along_time(template).isel(time=slice(0, 120)), fork, region="auto")  # some dask
    to_repo(along_time(template).isel(time=slice(120, None)).compute(), fork, region="auto")
    session.merge(fork)
    xr.testing.assert_identical(read(repo, snapshot_id=session.commit("forked")), dataset.compute())


def test_bad_targets_and_arguments(repo, dataset):
    with pytest.raises(vrepo.InvalidArgumentError, match=r"Repository\.open_or_create"):
        dataset.vrepo.to_repo("some/path")
    with pytest.raises(vrepo.InvalidArgumentError, match="writable session"):
        dataset.vrepo.to_repo(repo.readonly_session())
    with pytest.raises(vrepo.InvalidArgumentError, match="Dataset or DataArray"):
        to_repo(np.zeros(3), repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="append_dim"):
        dataset.vrepo.to_repo(repo, mode="w", append_dim="time")
    with pytest.raises(vrepo.InvalidArgumentError, match="mode"):
        dataset.vrepo.to_repo(repo, mode="x")
    assert len(list(repo.ancestry())) == 1


def test_dask_backed_coordinates_and_empty_variables(repo):
    ds = xr.Dataset(
        {"v": (("t", "x"), da.ones((6, 4), chunks=(2, 4))), "empty": (("e",), np.zeros(0))},
        coords={"t": np.arange(6)},
    )
    ds.vrepo.to_repo(repo)
    xr.testing.assert_identical(read(repo), ds.compute())


def daily(start: str, n: int) -> xr.Dataset:
    times = pd.date_range(start, periods=n, freq="D").astype("datetime64[us]")
    return xr.Dataset({"v": (("time",), np.arange(n, dtype="f4"))}, coords={"time": times})


def test_append_with_other_datetime_units(repo):
    daily("2000-01-01", 31).vrepo.to_repo(repo)
    daily("2000-02-01", 29).vrepo.to_repo(repo, mode="a")  # stored as [ns] by xarray: fine
    assert read(repo).sizes["time"] == 60
    with pytest.raises(vrepo.InvalidArgumentError, match="float64 but stored as float32"):
        daily("2000-03-01", 3).astype({"v": "f8"}).vrepo.to_repo(repo, mode="a")


def test_append_strings(repo):
    """Object strings append to what zarr reads back (numpy's StringDType on newer zarr)."""
    names = daily("2000-01-01", 4).assign(name=("time", np.array(["a", "bb", "c", "dd"], "O")))
    names = names.assign(code=names.name.astype("U2"))
    names.isel(time=slice(0, 2)).vrepo.to_repo(repo)
    names.isel(time=slice(2, 3)).vrepo.to_repo(repo, mode="a")
    with pytest.raises(vrepo.InvalidArgumentError, match=r"strings of <U3 .* the same length"):
        names.assign(code=names.name.astype("U3")).isel(time=[3]).vrepo.to_repo(repo, mode="a")
    assert list(read(repo).name.values) == list(read(repo).code.values) == ["a", "bb", "c"]


def test_append_refuses_times_the_stored_units_cannot_hold(repo):
    daily("2000-01-01", 31).vrepo.to_repo(repo)  # stored as int64 "days since 2000-01-01"
    before = head(repo)
    noon = daily("2000-02-01", 3).assign_coords(time=lambda d: d.time + np.timedelta64(12, "h"))
    with pytest.raises(vrepo.InvalidArgumentError, match="cannot be stored exactly in the stored"):
        noon.vrepo.to_repo(repo, mode="a")  # xarray would write hours under the "days" attribute
    assert head(repo) == before


# --- mode="a" without append_dim: append along time, write in place, or refuse ----------------


def profile(dim: str, values: np.ndarray, attrs: dict) -> xr.Dataset:
    """One variable along one dimension coordinate, as ocean profiles or forecasts come."""
    return xr.Dataset(
        {"v": ((dim,), np.asarray(values, dtype="f4") * 2)}, coords={dim: (dim, values, attrs)}
    )


NOT_TIME_AXES = {
    "depth": ("depth", np.arange(0.0, 50.0, 10.0), {"units": "m", "positive": "down"}),
    "unidentified-time": ("time", np.arange(5), {}),  # plain integers: no time axis to cf_xarray
    "float-days": ("lead", np.arange(5.0), {"units": "days"}),
}


@pytest.mark.parametrize("case", NOT_TIME_AXES)
def test_mode_a_refuses_to_overwrite_other_coordinates(repo, case):
    dim, values, attrs = NOT_TIME_AXES[case]
    first, later = profile(dim, values, attrs), profile(dim, values + 100, attrs)
    first.vrepo.to_repo(repo)
    before = head(repo)
    session = repo.writable_session("main")
    with pytest.raises(
        vrepo.InvalidArgumentError,
        match=rf"'{dim}' values \(100.* 5 steps\) differ from the stored ones \(0.* 5 steps\):"
        rf" pass append_dim='{dim}' to append along '{dim}', or mode='r\+' or region=",
    ):
        to_repo(later, session, mode="a")
    with pytest.raises(vrepo.InvalidArgumentError, match=r"\(100.* 3 steps\) differ .*append_dim"):
        to_repo(later.isel({dim: slice(0, 3)}), session, mode="a-")
    assert not session.has_uncommitted_changes
    assert head(repo) == before

    later.vrepo.to_repo(repo, append_dim=dim)  # appending, on purpose
    both = xr.concat([first, later], dim)
    xr.testing.assert_identical(read(repo, decode_timedelta=False), both)
    replaced = profile(dim, np.concatenate([values, values + 100]) + 1, attrs)
    replaced.vrepo.to_repo(repo, mode="r+")  # overwriting the coordinate, on purpose
    xr.testing.assert_identical(read(repo, decode_timedelta=False), replaced)


def test_mode_a_with_the_stored_steps_writes_in_place(repo, dataset):
    """Equal steps keep xarray's "a": overwrite and add variables, but keep dtypes and units."""
    dataset.vrepo.to_repo(repo)
    air = dataset.air_temperature
    warmer = dataset.assign(air_temperature=air.copy(data=air.data + 1), zero=air * 0)
    warmer.vrepo.to_repo(repo, mode="a")
    xr.testing.assert_identical(read(repo), warmer.compute())
    before = head(repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="is float64 but stored as float32"):
        warmer.assign(zero=air.astype("f8")).vrepo.to_repo(repo, mode="a")
    with pytest.raises(vrepo.InvalidArgumentError, match="units 'degC' but the stored ones"):
        warmer.assign(air_temperature=air.assign_attrs(units="degC")).vrepo.to_repo(repo, mode="a")
    assert head(repo) == before


# --- stored data xarray cannot decode, and errors while checking -----------------------------


def hours_since_year_zero(n: int) -> xr.Dataset:
    """What a file opened with decode_times=False writes: ``TIME`` in a unit with year 0 and
    no calendar, which xarray's default decoding rejects."""
    units = {"units": "hour since 0000-01-01 00:00:00", "axis": "T"}
    return xr.Dataset(
        {"v": (("TIME",), np.arange(n, dtype="f4"))},
        coords={"TIME": ("TIME", 17_000_000.0 + np.arange(n), units)},
    )


def test_stored_times_xarray_cannot_decode(repo):
    whole = hours_since_year_zero(8)
    whole.isel(TIME=slice(0, 3)).vrepo.to_repo(repo)
    with pytest.raises(ValueError, match="unable to decode time units"):
        read(repo)  # xarray itself cannot decode what is stored
    whole.isel(TIME=slice(3, 5)).vrepo.to_repo(repo, mode="a")  # TIME is the T axis
    whole.isel(TIME=slice(5, 8)).vrepo.to_repo(repo, append_dim="TIME")
    xr.testing.assert_identical(read(repo, decode_times=False), whole)

    with pytest.raises(vrepo.InvalidArgumentError, match="overlap the stored ones"):
        whole.isel(TIME=slice(6, 8)).vrepo.to_repo(repo, mode="a")
    fix = whole.isel(TIME=slice(2, 4))
    fix.assign(v=fix.v * 10).vrepo.to_repo(repo, region="auto")
    whole.assign(v=whole.v + 1).vrepo.to_repo(repo, mode="a")  # the stored TIME: in place
    np.testing.assert_array_equal(read(repo, decode_times=False).v, whole.v + 1)
    dates = whole.assign_coords(TIME=pd.date_range("2000-01-01", periods=8, freq="h"))
    with pytest.raises(vrepo.InvalidArgumentError, match=r"'TIME'.*cannot be decoded by xarray"):
        dates.vrepo.to_repo(repo, mode="a")
    xr.testing.assert_identical(read(repo, decode_times=False), whole.assign(v=whole.v + 1))


def test_unexpected_errors_while_checking_are_vrepo_errors(repo, dataset, monkeypatch):
    dataset.isel(time=slice(0, 120)).vrepo.to_repo(repo)

    def broken(*args, **kwargs):
        raise OverflowError("cftime cannot count that far")

    monkeypatch.setattr(vrepo.xarray._append_stored, "encode_zarr_variable", broken)
    with pytest.raises(
        vrepo.InvalidArgumentError,
        match=r"could not compare .* \(OverflowError: cftime cannot count that far\)",
    ) as raised:
        dataset.isel(time=slice(120, None)).vrepo.to_repo(repo, mode="a")
    assert isinstance(raised.value.__cause__, OverflowError)
    assert len(list(repo.ancestry())) == 2


# --- regions ---------------------------------------------------------------------------------


def _shifted(ds: xr.Dataset, steps: int) -> xr.Dataset:
    """``ds`` moved ``steps`` years later: times that are not stored."""
    return ds.assign_coords(time=[t.replace(year=t.year + steps) for t in ds.time.values])


def _first_30(ds: xr.Dataset) -> xr.Dataset:
    return ds.isel(time=slice(0, 30)).drop_vars("time")


BAD_REGIONS = {
    "past-the-end": (
        {"time": slice(230, 260)},
        _first_30,
        r"region=\{'time': slice\(230, 260\)\} reaches outside the stored 'time', which has "
        r"240 steps \(slice\(0, 240\)\).*append_dim='time'",
    ),
    "before-the-start": ({"time": slice(-300, -270)}, _first_30, r"-270\)\} reaches outside"),
    "wrong-length": (
        {"time": slice(0, 10)},
        _first_30,
        r"covers 10 'time' steps but the dataset has 30: pass region=\{'time': slice\(0, 30\)\}",
    ),
    "not-stored-dimension": (
        {"depth": slice(0, 1)},
        lambda ds: ds.isel(time=slice(0, 1)).expand_dims("depth"),
        r"'depth' \(in region\) is not a dimension of the stored dataset",
    ),
    "auto-not-found": (
        "auto",
        lambda ds: _shifted(ds.isel(time=slice(210, None)), 240),
        r"region='auto': 30 of the 30 'time' values \(2310-06-01.*\) are not stored \(stored: "
        r"1860-06-01.* .. 2099-06-01.*\).*append_dim='time'",
    ),
    "auto-partly-found": (
        {"time": "auto"},
        lambda ds: _shifted(ds.isel(time=slice(210, None)), 10),
        r"10 of the 30 'time' values .* are not stored .*first missing: 2100-06-01",
    ),
    "auto-unsorted": ("auto", lambda ds: ds.isel(time=[5, 3]), "not as one run in the same order"),
}


@pytest.mark.parametrize("case", BAD_REGIONS)
def test_bad_regions_fail_before_writing(repo, dataset, case):
    region, piece, message = BAD_REGIONS[case]
    dataset.vrepo.to_repo(repo)
    session = repo.writable_session("main")
    with pytest.raises(vrepo.InvalidArgumentError, match=message):
        to_repo(piece(along_time(dataset)), session, region=region)
    assert not session.has_uncommitted_changes


def test_regions_counted_from_the_end(repo, dataset):
    dataset.vrepo.to_repo(repo)
    last = along_time(dataset).isel(time=slice(-24, None))
    last.assign(air_temperature=last.air_temperature * 0).vrepo.to_repo(
        repo, region={"time": slice(-24, None)}
    )
    got = read(repo).air_temperature.values
    assert (got[-24:] == 0).all()
    np.testing.assert_array_equal(got[:-24], dataset.air_temperature.values[:-24])
