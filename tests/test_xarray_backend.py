"""xr.open_dataset(..., engine="vrepo"): any version of a dataset, opened like a file."""

from __future__ import annotations

import datetime as dt
import time

import dask.array as da
import pytest
import xarray as xr

import vrepo
import vrepo.xarray.backend
from conftest import A1B_SAMPLE
from s3_servers import REGION


@pytest.fixture(scope="module")
def dataset(a1b_dataset: xr.Dataset) -> xr.Dataset:
    return a1b_dataset


@pytest.fixture
def history(tmp_path, dataset):
    """A repository with two commits (tagged v1, then an append) and the time between them."""
    path = tmp_path / "air.vrepo"
    repo = vrepo.Repository.create(path)
    session = repo.writable_session()
    dataset.isel(time=slice(0, 100)).to_zarr(session.store, mode="w", consolidated=False)
    repo.create_tag("v1", session.commit("first 100"))
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    dataset.isel(time=slice(100, None)).to_zarr(
        session.store, append_dim="time", consolidated=False
    )
    session.commit("the rest")
    return path, repo, between


def test_open_every_version(history, dataset):
    path, repo, between = history
    first = dataset.isel(time=slice(0, 100))
    latest = xr.open_dataset(path, engine="vrepo")
    xr.testing.assert_identical(latest.load(), dataset)
    xr.testing.assert_identical(xr.open_dataset(str(path), engine="vrepo", tag="v1"), first)
    xr.testing.assert_identical(xr.open_dataset(path, engine="vrepo", as_of=between), first)
    v1 = repo.lookup_tag("v1")
    xr.testing.assert_identical(xr.open_dataset(repo, engine="vrepo", snapshot_id=v1), first)
    by_session = xr.open_dataset(repo.readonly_session(tag="v1"), engine="vrepo")
    xr.testing.assert_identical(by_session, first)
    xr.testing.assert_identical(xr.open_dataset(path, engine="vrepo", branch="main"), dataset)


def test_engine_is_guessed_and_chunks_are_dask(history, dataset):
    path, _, _ = history
    ds = xr.open_dataset(path, chunks={})  # no engine=: the repository is recognised
    assert isinstance(ds.air_temperature.data, da.Array)
    stored = ds.air_temperature.encoding["chunks"]
    assert ds.air_temperature.data.chunksize == tuple(stored)
    xr.testing.assert_identical(ds.load(), dataset)
    assert not vrepo.xarray.backend.VRepoBackendEntrypoint().guess_can_open(A1B_SAMPLE)


def test_s3_url_with_storage_options(s3_server, s3_bucket, dataset):
    repo = vrepo.Repository.create(s3_server.storage(s3_bucket, "air"))
    session = repo.writable_session()
    dataset.isel(time=slice(0, 12)).to_zarr(session.store, mode="w", consolidated=False)
    session.commit("a year")
    options = {
        "endpoint_url": s3_server.endpoint_url,
        "credentials": s3_server.credentials,
        "region": REGION,
    }
    ds = xr.open_dataset(f"s3://{s3_bucket}/air", engine="vrepo", storage_options=options)
    xr.testing.assert_identical(ds.load(), dataset.isel(time=slice(0, 12)))


def test_bad_references_say_what_exists(history, tmp_path):
    path, repo, _ = history
    with pytest.raises(vrepo.RefNotFoundError, match="existing tags: v1"):
        xr.open_dataset(path, engine="vrepo", tag="v9")
    with pytest.raises(vrepo.RepositoryNotFoundError, match=r"Repository\.create"):
        xr.open_dataset(tmp_path / "nothing", engine="vrepo")
    with pytest.raises(vrepo.InvalidArgumentError, match="Session already names"):
        xr.open_dataset(repo.readonly_session(), engine="vrepo", tag="v1")
