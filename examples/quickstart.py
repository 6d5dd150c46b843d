"""vrepo quickstart: version a real climate dataset like source code.

Writes 120 years of North-American air temperature (iris-sample-data's A1B scenario) into a
local repository, appends the next 120 years as a second commit, tags the first version,
tries an experimental change on a branch, and travels back in time.

Run:  python examples/quickstart.py [REPO_PATH]
"""

from __future__ import annotations

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


def load_dataset() -> xr.Dataset:
    ds = xr.open_dataset(SAMPLE).load()
    for name in ds.variables:
        kept = ("units", "calendar", "dtype", "_FillValue")
        ds[name].encoding = {k: v for k, v in ds[name].encoding.items() if k in kept}
    return ds.chunk({"time": 24})


def main(repo_path: Path) -> None:
    started = time.perf_counter()
    ds = load_dataset()
    first, rest = ds.isel(time=slice(0, 120)), ds.isel(time=slice(120, None))

    repo = vrepo.Repository.create(repo_path)
    print(f"created {repo}")

    session = repo.writable_session("main")
    first.to_zarr(session.store, mode="w", zarr_format=3, consolidated=False)
    print(f"\nuncommitted:\n{session.status()}")
    v1 = session.commit("air temperature 1860-1979", metadata={"source": SAMPLE.name})
    repo.create_tag("v1", v1)
    print(f"\ncommitted {v1} and tagged it v1")

    session = repo.writable_session("main")
    rest.to_zarr(session.store, append_dim="time", zarr_format=3, consolidated=False)
    v2 = session.commit("append 1980-2099")
    print(f"committed {v2}: appended {rest.sizes['time']} time steps")

    repo.create_branch("experiment", v2)
    session = repo.writable_session("experiment")
    trial = xr.open_zarr(session.store, consolidated=False)
    patch = trial[["air_temperature"]].isel(time=slice(0, 24)) - 0.5
    patch = patch.drop_vars([n for n in patch.coords if "time" not in patch[n].dims])
    patch.to_zarr(session.store, region={"time": slice(0, 24)}, consolidated=False)
    session.commit("experiment: bias-correct the first two decades")

    print("\nhistory of main:")
    for info in repo.ancestry(branch="main"):
        print(f"  {info.id}  {info.written_at:%Y-%m-%d %H:%M:%S}  {info.message}")

    latest = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    tagged = xr.open_zarr(repo.readonly_session(tag="v1").store, consolidated=False)
    trial = xr.open_zarr(repo.readonly_session("experiment").store, consolidated=False)
    print(f"\nmain has {latest.sizes['time']} time steps; tag v1 has {tagged.sizes['time']}")
    xr.testing.assert_identical(tagged.load(), first.load())
    xr.testing.assert_identical(latest.load(), ds.load())
    shift = float((latest.air_temperature - trial.air_temperature).isel(time=slice(0, 24)).mean())
    print(f"experiment differs from main by {shift:.2f} K over 1860-1879; main is untouched")
    assert np.isclose(shift, 0.5)
    print(f"\nbranches: {repo.list_branches()}  tags: {repo.list_tags()}")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="vrepo-quickstart-"))
        try:
            main(workdir / "air_temperature.vrepo")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
