"""`import vrepo` is cheap, yet everything it promises is there when used."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_vrepo_and_the_cli_load_neither_xarray_nor_zarr_nor_dask():
    loaded = run(
        "import sys, vrepo, vrepo.cli; "
        "print(sorted(m for m in ('xarray', 'zarr', 'dask') if m in sys.modules))"
    )
    assert loaded == "[]"


@pytest.mark.parametrize("first", ["vrepo", "xarray"])
def test_the_accessor_exists_whichever_is_imported_first(first):
    second = "xarray" if first == "vrepo" else "vrepo"
    out = run(
        f"import {first}, {second}; import xarray as xr; "
        "print(type(xr.Dataset().vrepo).__name__, type(xr.DataArray([1]).vrepo).__name__)"
    )
    assert out == "VRepoAccessor VRepoAccessor"


def test_lazy_names_resolve():
    out = run(
        "import vrepo; from vrepo import VRepoStore; "
        "print(VRepoStore.__module__, vrepo.xarray.to_repo.__name__, vrepo.dask.store.__name__)"
    )
    assert out == "vrepo.zarr.store to_repo store"
    failed = subprocess.run(
        [sys.executable, "-c", "import vrepo; vrepo.nothing_here"], capture_output=True, text=True
    )
    assert "has no attribute 'nothing_here'" in failed.stderr
