"""Distributed writes on a real `distributed.LocalCluster` with worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
from conftest import open_a1b
from vrepo.xarray import to_repo
from xarray_checks import assert_same_as_plain_zarr, failing_from_block


@pytest.fixture(scope="module")
def dataset(a1b_dataset: xr.Dataset) -> xr.Dataset:
    return a1b_dataset.chunk({"time": 24})


def test_a1b_written_and_appended_by_a_cluster(tmp_path, dataset, dask_client):
    first, rest = dataset.isel(time=slice(0, 120)), dataset.isel(time=slice(120, None))
    plain = zarr.storage.LocalStore(tmp_path / "plain.zarr")
    first.to_zarr(plain, mode="w", zarr_format=3, consolidated=False)
    rest.to_zarr(plain, append_dim="time", zarr_format=3, consolidated=False)

    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    v1 = first.vrepo.to_repo(repo, message="1860-1979")
    v2 = rest.vrepo.to_repo(repo, mode="a", message="1980-2099")
    assert [s.id for s in repo.ancestry()][:2] == [v2, v1]
    reference = xr.open_zarr(plain, consolidated=False)
    assert_same_as_plain_zarr(xr.open_dataset(repo, engine="vrepo", chunks={}), reference)
    assert_same_as_plain_zarr(
        xr.open_dataset(repo, engine="vrepo", snapshot_id=v1, chunks={}),
        reference.isel(time=slice(0, 120)),
    )
    assert dask_client.run(lambda: 1)  # the cluster's workers were up throughout


def _write_year(year: int, fork: vrepo.ForkSession) -> vrepo.ForkSession:
    """A worker's share of a batch ingest: read one year from the source file, write it."""
    ds = open_a1b().isel(time=[year])
    ds = ds.drop_vars([n for n, v in ds.variables.items() if "time" not in v.dims])
    to_repo(ds, fork, region="auto")
    return fork


def test_240_region_writes_from_client_map_land_as_one_commit(tmp_path, a1b_dataset, dask_client):
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    session = repo.writable_session("main")
    template = a1b_dataset.chunk({"time": 1})
    template = template.assign(time_bnds=a1b_dataset.time_bnds)  # in memory: written now
    template.to_zarr(
        session.store,
        compute=False,
        zarr_format=3,
        consolidated=False,
        encoding={"time_bnds": {"chunks": (1, 2)}},  # one chunk per worker, as for the data
    )
    session.commit("empty template")  # readers may see the template; the data comes at once
    before = repo.lookup_branch("main")

    session = repo.writable_session("main")
    fork = session.fork()
    futures = dask_client.map(_write_year, range(240), fork=fork)
    forks = dask_client.gather(futures)
    assert len({f._id for f in forks}) == 1  # the same fork, unpickled by each task
    assert repo.lookup_branch("main") == before  # the workers published nothing
    session.merge(*forks)
    assert session.status().chunks_written["/air_temperature"] == 240
    snapshot = session.commit("240 years, one commit")

    assert [s.id for s in repo.ancestry()][:2] == [snapshot, before]
    got = xr.open_dataset(repo, engine="vrepo")
    xr.testing.assert_identical(got, a1b_dataset)


def test_a_job_failing_half_way_leaves_the_branch_untouched(tmp_path, dataset, dask_client):
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo")
    dataset.isel(time=slice(0, 120)).vrepo.to_repo(repo)
    history = [s.id for s in repo.ancestry()]

    rest = dataset.isel(time=slice(120, None))
    broken = failing_from_block(rest, "air_temperature", 3, "node lost")
    with pytest.raises(RuntimeError, match="node lost"):
        broken.vrepo.to_repo(repo, mode="a")
    assert [s.id for s in repo.ancestry()] == history
    np.testing.assert_array_equal(
        xr.open_dataset(repo, engine="vrepo").air_temperature.values,
        dataset.air_temperature.values[:120],
    )
    rest.vrepo.to_repo(repo, mode="a")  # rerunning the job succeeds
    xr.testing.assert_identical(xr.open_dataset(repo, engine="vrepo"), dataset.compute())
