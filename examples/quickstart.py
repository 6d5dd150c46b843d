"""vrepo quickstart: version a real climate dataset like source code, written by a Dask cluster.

Starts a local Dask cluster (2 worker processes), writes 120 years of North-American air
temperature (iris-sample-data's A1B scenario) into a local repository with
``ds.vrepo.to_repo``, appends the next 120 years as a second commit, tags the first version,
tries an experimental change on a branch, travels back in time, and prints a diff and the log.

Run:  python examples/quickstart.py [REPO_PATH]

The repository stays at REPO_PATH (default: data/air.vrepo, where the README's ``vrepo``
lines look) for you to explore. Run again, the quickstart starts over: it replaces the
repository an earlier run left there, and nothing else (any other directory that is not
empty is refused, untouched).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import iris_sample_data
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster

import vrepo

SAMPLE = Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"
DEFAULT_PATH = Path("data") / "air.vrepo"
MADE_BY = {"made by": "examples/quickstart.py"}  # the first commit's metadata: ours to replace


def make_room(repo_path: Path) -> None:
    """Start over at ``repo_path``: remove the repository an earlier run left there; refuse
    (exit status 1) anything else but a new or empty directory."""
    if not repo_path.exists() or (repo_path.is_dir() and not any(repo_path.iterdir())):
        return
    ours = False
    if vrepo.Repository.exists(repo_path):
        repo = vrepo.Repository.open(repo_path)
        ours = any(info.metadata == MADE_BY for info in repo.ancestry())
    if not ours:
        sys.exit(
            f"quickstart: {repo_path} exists and is not a repository an earlier quickstart "
            "made; remove it, or give another path (python examples/quickstart.py PATH)"
        )
    print(f"-> {repo_path} holds the repository of an earlier run: starting over")
    shutil.rmtree(repo_path)


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Show progress: what is happening, then how long it took."""
    print(f"-> {what} ...", end="", flush=True)
    started = time.perf_counter()
    yield
    print(f" done ({time.perf_counter() - started:.1f} s)", flush=True)


def load_dataset() -> xr.Dataset:
    raw = xr.open_dataset(SAMPLE, decode_cf=False)
    # int64 first: decoding int32 hours to timedeltas overflows on numpy < 2
    ds = xr.decode_cf(raw.assign(forecast_period=raw.forecast_period.astype("int64"))).load()
    for name in ds.variables:
        kept = ("units", "calendar", "dtype", "_FillValue")
        ds[name].encoding = {k: v for k, v in ds[name].encoding.items() if k in kept}
    return ds.chunk({"time": 24})


def main(repo_path: Path) -> None:
    make_room(repo_path)
    started = time.perf_counter()
    with step("starting a Dask cluster of 2 worker processes"):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    with cluster, client:
        ds = load_dataset()
        first, rest = ds.isel(time=slice(0, 120)), ds.isel(time=slice(120, None))
        repo = vrepo.Repository.create(repo_path)
        print(f"   created the repository {repo_path}")

        with step("workers write 1860-1979 (10 chunks), one atomic commit"):
            v1 = first.vrepo.to_repo(repo, message="air temperature 1860-1979", metadata=MADE_BY)
        repo.create_tag("v1", v1)
        print(f"   committed {v1} and tagged it v1")

        with step("workers append 1980-2099 along the time axis"):
            v2 = rest.vrepo.to_repo(repo, mode="a", message="append 1980-2099")
        print(f"   committed {v2}")

        with step("bias-correcting 1860-1879 on a branch 'experiment'"):
            repo.create_branch("experiment", v2)
            session = repo.writable_session("experiment")
            patch = ds[["air_temperature"]].isel(time=slice(0, 24)) - 0.5
            patch = patch.drop_vars([n for n in patch.coords if "time" not in patch[n].dims])
            patch.vrepo.to_repo(session, region="auto")
            session.commit("experiment: bias-correct the first two decades")

        with step("reading back main, the tag v1 and the branch"):
            latest = xr.open_dataset(f"{repo_path}@main", engine="vrepo")
            tagged = xr.open_dataset(f"{repo_path}@v1", engine="vrepo")  # time travel
            trial = xr.open_dataset(repo, engine="vrepo", branch="experiment")
            xr.testing.assert_identical(tagged, first.compute())
            xr.testing.assert_identical(latest, ds.compute())
    print(f"\nmain has {latest.sizes['time']} time steps; tag v1 has {tagged.sizes['time']}")
    shift = float((latest.air_temperature - trial.air_temperature).isel(time=slice(0, 24)).mean())
    print(f"experiment differs from main by {shift:.2f} K over 1860-1879; main is untouched")
    assert np.isclose(shift, 0.5)

    print("\ndiff main -> experiment:")
    print("  " + str(repo.diff("main", "experiment")).replace("\n", "\n  "))
    print("\nlog of experiment:")
    labels = {repo.lookup_tag(t): f" (tag: {t})" for t in repo.list_tags()}
    for info in repo.ancestry(branch="experiment"):
        label = labels.get(info.id, "")
        print(f"  {info.id}  {info.written_at:%Y-%m-%d %H:%M:%S}  {info.message}{label}")
    print(f"\nbranches: {repo.list_branches()}  tags: {repo.list_tags()}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    print(f"\nthe repository stays in {repo_path}; look at it with `vrepo log --graph {repo_path}`")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH)
