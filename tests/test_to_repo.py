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
    changed = later.assign(latitude_longitude=later.latitude_longitude + 1)
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


def test_append_with_other_datetime_units(repo):
    def month(start: str, n: int) -> xr.Dataset:
        times = pd.date_range(start, periods=n, freq="D").astype("datetime64[us]")
        return xr.Dataset({"v": (("time",), np.arange(n, dtype="f4"))}, coords={"time": times})

    month("2000-01-01", 31).vrepo.to_repo(repo)
    month("2000-02-01", 29).vrepo.to_repo(repo, mode="a")  # stored as [ns] by xarray: fine
    assert read(repo).sizes["time"] == 60
    with pytest.raises(vrepo.InvalidArgumentError, match="float64 but stored as float32"):
        month("2000-03-01", 3).astype({"v": "f8"}).vrepo.to_repo(repo, mode="a")
