"""Shared fixtures: real S3 servers (moto and SeaweedFS), fresh buckets, S3 storage objects.

Servers are session-scoped, started on first use by each pytest-xdist worker for itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import iris_sample_data
import pytest
import xarray as xr
from distributed import Client, LocalCluster

import vrepo
from s3_servers import S3Server, s3_server_named, start_moto, start_seaweedfs
from vrepo.storage import S3Storage

S3_SERVERS = ["moto", "seaweedfs"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    with start_moto() as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with start_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(params=S3_SERVERS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn."""
    return s3_server_named(request, request.param)


@pytest.fixture(params=["local", *S3_SERVERS])
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> vrepo.Storage:
    """A storage every writer process reaches: local disk, or a real S3 server on 127.0.0.1."""
    if request.param == "local":
        return vrepo.local_storage(tmp_path / "shared.vrepo")
    server = s3_server_named(request, request.param)
    return server.storage(server.pool.take(), "shared")


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the server, for this test only."""
    return s3_server.pool.take()


@pytest.fixture
async def s3(s3_server: S3Server, s3_bucket: str) -> AsyncIterator[S3Storage]:
    """`S3Storage` below the prefix 'repo' of a fresh bucket; its client is closed after."""
    storage = s3_server.storage(s3_bucket, "repo")
    yield storage
    await storage.close()


A1B_SAMPLE = Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"


def open_a1b(**decode: object) -> xr.Dataset:
    """A1B decoded as ``xr.decode_cf(..., **decode)``, its int32 ``forecast_period`` widened first.

    xarray decodes hours to timedeltas (by default in releases that decode by units, as 2025.6
    does) as ``hours * np.int64(3600)``, which numpy < 2 computes in int32 (value-based
    casting): past 596523 h, in A1B's later years, they wrap around. As int64 they come out right.
    """
    raw = xr.open_dataset(A1B_SAMPLE, decode_cf=False)
    raw["forecast_period"] = raw.forecast_period.astype("int64")
    return xr.decode_cf(raw, **decode)


@pytest.fixture(scope="session")
def a1b_dataset() -> xr.Dataset:
    """Real data: iris-sample-data's A1B air temperature (240 years x 37 x 49), in memory.

    Encodings are trimmed to what survives any zarr round trip (units, calendar, dtype).
    """
    ds = open_a1b().load()
    for name in ds.variables:
        ds[name].encoding = {
            k: v for k, v in ds[name].encoding.items() if k in ("units", "calendar", "dtype")
        }
    return ds


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[LocalCluster]:
    """A real distributed cluster: 2 worker processes x 1 thread, shared by this xdist worker."""
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster: LocalCluster) -> Iterator[Client]:
    """A client of `dask_cluster`, dask's default scheduler for the duration of one test."""
    with Client(dask_cluster) as client:
        yield client
