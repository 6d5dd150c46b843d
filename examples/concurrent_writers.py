"""Concurrent writers: independent processes commit to one branch, with no coordinator.

Four processes each open the repository themselves and write 60 years of the A1B air
temperature dataset into the same arrays, released at the same instant so their commits race.
Commits that touch different chunks are rebased automatically: all four land, in some
order, and main ends up holding all 240 years. Then two processes both "fix" the same
decade: one wins, the other gets a `ConflictError` naming the chunks both wrote, and
decides what to do (here: rebase keeping its own values, and commit again).

Run:  python examples/concurrent_writers.py [REPO_PATH]
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import iris_sample_data
import numpy as np
import xarray as xr

import vrepo

SAMPLE = Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"


def open_sample() -> xr.Dataset:
    raw = xr.open_dataset(SAMPLE, decode_cf=False)
    # int64 first: decoding int32 hours to timedeltas overflows on numpy < 2
    return xr.decode_cf(raw.assign(forecast_period=raw.forecast_period.astype("int64")))


def along_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars([n for n, v in ds.variables.items() if "time" not in v.dims])


def write_years(repo_path: str, start: int, barrier) -> tuple[int, str, int]:
    """One writer: its own repository handle and session, 60 years, one commit."""
    repo = vrepo.Repository.open(repo_path)
    session = repo.writable_session("main")
    years = along_time(open_sample()).isel(time=slice(start, start + 60))
    years.load().vrepo.to_repo(session, region={"time": slice(start, start + 60)})
    barrier.wait()  # every writer commits at the same moment
    snapshot = session.commit(f"years {start}-{start + 59}")
    return start, snapshot, session.commit_attempts


def fix_first_decade(repo_path: str, offset: float, barrier) -> str:
    """Two of these race on the same chunks: one commits, the other must decide."""
    repo = vrepo.Repository.open(repo_path)
    session = repo.writable_session("main")
    air = open_sample().air_temperature.isel(time=slice(0, 10)).load() + offset
    decade = air.to_dataset().drop_vars([n for n in air.coords])  # the data only
    decade.vrepo.to_repo(session, region={"time": slice(0, 10)})
    barrier.wait()
    try:
        session.commit(f"first decade {offset:+}")
        return f"offset {offset:+}: committed"
    except vrepo.ConflictError as err:
        conflicts = "; ".join(str(c) for c in err.conflicts)
        session.rebase("ours")  # keep this writer's values for the conflicting chunks
        session.commit(f"first decade {offset:+} (after a conflict)")
        return f"offset {offset:+}: ConflictError on {conflicts}; rebased keeping ours"


def main(repo_path: Path) -> None:
    started = time.perf_counter()
    source = open_sample().load()
    repo = vrepo.Repository.create(repo_path)
    session = repo.writable_session("main")
    source.chunk({"time": 12}).assign(time_bnds=source.time_bnds).to_zarr(
        session.store,
        compute=False,
        zarr_format=3,
        consolidated=False,
        encoding={"time_bnds": {"chunks": (12, 2)}},
    )
    session.commit("empty A1B dataset: metadata and coordinates")

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        barrier = manager.Barrier(4)
        jobs = [(str(repo_path), start, barrier) for start in range(0, 240, 60)]
        results = pool.starmap(write_years, jobs)
    order = [info.id for info in repo.ancestry()][::-1]
    for start, snapshot, attempts in sorted(results, key=lambda r: order.index(r[1])):
        print(f"writer {start:3d}-{start + 59:3d}: {snapshot} after {attempts} attempt(s)")
    stored = xr.open_dataset(repo, engine="vrepo")
    np.testing.assert_array_equal(stored.air_temperature.values, source.air_temperature.values)
    print(f"main holds all {stored.sizes['time']} years, each from its writer")

    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        outcomes = pool.starmap(fix_first_decade, [(str(repo_path), o, barrier) for o in (1, 2)])
    print("\n".join(outcomes))
    last = 1 if "ConflictError" in outcomes[0] else 2  # the one that rebased committed last
    decade = xr.open_dataset(repo, engine="vrepo").air_temperature[:10].values
    np.testing.assert_allclose(decade, source.air_temperature[:10].values + last)
    print(f"main's first decade carries offset {last:+}, from the writer that committed last")
    print("\nlog of main:")
    for info in repo.ancestry():
        print(f"  {info.id}  {info.message}")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="vrepo-concurrent-"))
        try:
            main(workdir / "a1b.vrepo")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
