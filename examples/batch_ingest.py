"""Batch ingest: many files, many workers, one commit.

65 yearly CMIP6 files (AWI-CM-1-1-MR air temperature, 1950-2014, from esmvaltool-sample-data)
are ingested by a Dask cluster: the coordinator writes the dataset's metadata (a template)
into a session, each worker writes one file's year into a fork of that session with
``client.map``, and the coordinator merges the forks and commits once. Readers see either no
data or all 65 years, never some of them; a worker failure leaves the branch untouched.

Run:  python examples/batch_ingest.py [REPO_PATH]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import esmvaltool_sample_data
import xarray as xr
from distributed import Client, LocalCluster

import vrepo
from vrepo.xarray import to_repo

MODEL_DIR = (
    Path(esmvaltool_sample_data.__file__).parent
    / "data/timeseries/CMIP6/CMIP/AWI/AWI-CM-1-1-MR/historical/r1i1p1f1/Amon/ta"
)


def ingest(path: str, year_index: int, fork: vrepo.ForkSession) -> vrepo.ForkSession:
    """One task: write one file's 12 months into the worker's copy of the fork."""
    with xr.open_dataset(path) as ds:
        months = ds.drop_vars([n for n, v in ds.variables.items() if "time" not in v.dims])
        region = {"time": slice(12 * year_index, 12 * year_index + 12)}
        to_repo(months.load(), fork, region=region)
    return fork


def open_all(paths: list[str]) -> xr.Dataset:
    """All files as one lazy dataset (bounds and coordinates other than time are shared)."""
    return xr.open_mfdataset(
        paths, combine="by_coords", data_vars="minimal", coords="minimal", compat="override"
    )


def main(repo_path: Path) -> None:
    started = time.perf_counter()
    paths = sorted(str(p) for p in MODEL_DIR.rglob("*.nc"))
    print(f"{len(paths)} files: {Path(paths[0]).name} ... {Path(paths[-1]).name}")

    repo = vrepo.Repository.create(repo_path)
    session = repo.writable_session("main")
    template = open_all(paths)
    template = template.chunk({"time": 12}).assign(
        lat_bnds=template.lat_bnds.compute(), lon_bnds=template.lon_bnds.compute()
    )
    encoding = {"ta": {"chunks": (12, 2, 2, 3)}, "time_bnds": {"chunks": (12, 2)}}
    template.to_zarr(
        session.store, compute=False, zarr_format=3, consolidated=False, encoding=encoding
    )  # metadata, coordinates and the small bounds; the workers write the rest

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        fork = session.fork()
        futures = client.map(ingest, paths, range(len(paths)), fork=fork)
        forks = client.gather(futures)
    assert repo.lookup_branch("main") == session.snapshot_id  # nothing published yet
    print(f"{len(forks)} tasks' forks are back; main still points at the empty repository")
    session.merge(*forks)
    snapshot = session.commit(f"ingest {len(paths)} yearly files", {"model": "AWI-CM-1-1-MR"})
    print(f"one commit: {snapshot}")

    stored = xr.open_dataset(repo, engine="vrepo")
    source = open_all(paths).load()
    xr.testing.assert_equal(stored.ta, source.ta)
    print(
        f"main holds {stored.sizes['time']} months "
        f"({str(stored.time.values[0])[:7]} .. {str(stored.time.values[-1])[:7]}), "
        "equal to the source files"
    )
    print(f"history: {[info.message for info in repo.ancestry()]}")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="vrepo-batch-"))
        try:
            main(workdir / "cmip6.vrepo")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
