"""xarray writes to and reads from a session's store exactly as from a plain zarr LocalStore."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
from xarray_checks import assert_same_as_plain_zarr


@pytest.fixture(scope="module")
def dataset(a1b_dataset: xr.Dataset) -> xr.Dataset:
    return a1b_dataset.chunk({"time": 24})


def test_roundtrip_matches_local_store(tmp_path, dataset):
    plain = zarr.storage.LocalStore(tmp_path / "plain.zarr")
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    session = repo.writable_session("main")
    with dask.config.set(scheduler="threads"):
        dataset.to_zarr(plain, mode="w", zarr_format=3, consolidated=False)
        dataset.to_zarr(session.store, mode="w", zarr_format=3, consolidated=False)
        # before the commit the writer sees its own data ...
        assert_same_as_plain_zarr(
            xr.open_zarr(session.store, consolidated=False), xr.open_zarr(plain, consolidated=False)
        )
        # ... and nobody else does
        with pytest.raises((FileNotFoundError, KeyError, ValueError)):
            xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
        snapshot = session.commit("A1B air temperature")
        reread = xr.open_zarr(repo.readonly_session(snapshot_id=snapshot).store, consolidated=False)
        assert_same_as_plain_zarr(reread, xr.open_zarr(plain, consolidated=False))
        xr.testing.assert_identical(reread.load(), dataset.load())


def test_append_and_consolidated_metadata(tmp_path, dataset):
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    first, rest = dataset.isel(time=slice(0, 100)), dataset.isel(time=slice(100, None))
    session = repo.writable_session("main")
    first.to_zarr(session.store, mode="w", zarr_format=3)  # consolidated (xarray's default)
    v1 = session.commit("first 100 years")
    session = repo.writable_session("main")
    rest.to_zarr(session.store, append_dim="time", zarr_format=3)
    v2 = session.commit("the rest")
    old = xr.open_zarr(repo.readonly_session(snapshot_id=v1).store)
    new = xr.open_zarr(repo.readonly_session(snapshot_id=v2).store)
    xr.testing.assert_identical(old.load(), first.load())
    xr.testing.assert_identical(new.load(), dataset.load())
    np.testing.assert_array_equal(new.time.values, dataset.time.values)


def test_zarr_v2_is_refused_with_advice(tmp_path, dataset):
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    session = repo.writable_session("main")
    with pytest.raises(vrepo.UnsupportedZarrFormatError, match="zarr_format=3"):
        dataset.to_zarr(session.store, mode="w", zarr_format=2, consolidated=False)
    assert repo.lookup_branch("main") == next(repo.ancestry()).id
