"""Every NetCDF4 (HDF5) file of iris-sample-data, its variables referenced in place, reads
back through ``engine="vrepo"`` identical to ``xr.open_dataset(file)``."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest
import xarray as xr

import vrepo
from conftest import A1B_SAMPLE
from virtual_sources import reference_netcdf, url

SAMPLES = sorted(p for p in A1B_SAMPLE.parent.glob("*.nc") if h5py.is_hdf5(p))


def test_the_samples_are_there():
    assert len(SAMPLES) >= 10 and A1B_SAMPLE in SAMPLES


@pytest.mark.filterwarnings("ignore:The data type")  # zarr: string dtypes are "unstable" in v3
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_referenced_in_place_reads_back_identical(tmp_path: Path, sample: Path):
    folder = tmp_path / "sources"
    folder.mkdir()
    source = Path(shutil.copy(sample, folder))
    config = vrepo.RepoConfig(manifest_split_refs=64)  # several pieces for the bigger arrays
    repo = vrepo.Repository.create(tmp_path / "repo.vrepo", config)
    repo.add_virtual_chunk_container(url(folder) + "/")
    session = repo.writable_session()
    counts = reference_netcdf(session, source)
    assert counts and all(counts.values())
    session.commit(f"{sample.name}, referenced in place")
    with (
        xr.open_dataset(tmp_path / "repo.vrepo", engine="vrepo") as back,
        xr.open_dataset(source) as expected,
    ):
        xr.testing.assert_identical(back.load(), expected.load())
