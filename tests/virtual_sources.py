"""Test helpers for virtual refs: where the chunks of an HDF5 (NetCDF4) file are, and a
repository defining a file's variables with its chunks referenced in place."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import xarray as xr

import vrepo


def url(path: Path | str) -> str:
    return f"file://{path}"


def chunk_table(path: Path | str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coords, offsets, lengths) of every stored chunk of an uncompressed HDF5 dataset."""
    with h5py.File(path) as f:
        dset = f[name]
        if dset.chunks is None:  # contiguous: one chunk, the whole array
            offsets = np.array([dset.id.get_offset()])
            return np.zeros((1, dset.ndim), int), offsets, np.array([dset.id.get_storage_size()])
        assert dset.compression is None
        shape = np.array(dset.chunks)
        infos = [dset.id.get_chunk_info(i) for i in range(dset.id.get_num_chunks())]
    coords = np.array([np.array(i.chunk_offset) // shape for i in infos])
    return coords, np.array([i.byte_offset for i in infos]), np.array([i.size for i in infos])


def referencable(path: Path | str) -> dict[str, tuple[int, ...]]:
    """The variables of a NetCDF4 file that can be referenced in place (numeric, uncompressed,
    written), with their chunk shape (the whole shape when contiguous)."""
    out = {}
    with xr.open_dataset(path, decode_cf=False) as ds, h5py.File(path) as f:
        for name in ds.variables:
            h = f.get(str(name))
            if (
                isinstance(h, h5py.Dataset)
                and h.shape == ds[name].shape != ()
                and h.dtype.kind in "iuf"
                and h.compression is None
                and h.id.get_storage_size()
            ):
                out[str(name)] = h.chunks or h.shape
    return out


def reference_netcdf(session: vrepo.Session, path: Path | str) -> dict[str, int]:
    """Define every variable of a NetCDF4 file in ``session``, the referencable ones without
    data and their chunks set as virtual refs (the others stored); refs set per variable.

    The variables are written undecoded (``decode_cf=False``), so their attributes are the
    file's own and xarray decodes the repository as it decodes the file."""
    virtual = referencable(path)
    with xr.open_dataset(path, decode_cf=False) as ds:
        encoding = {v: {"chunks": c, "compressors": None} for v, c in virtual.items()}
        lazy = ds.assign({v: ds[v].chunk() for v in virtual})  # only dask arrays wait
        lazy.to_zarr(
            session.store, compute=False, encoding=encoding, zarr_format=3, consolidated=False
        )
    counts = {}
    for name in virtual:
        coords, offsets, lengths = chunk_table(path, name)
        counts[name] = session.set_virtual_refs(
            name, coords, [url(path)] * len(coords), offsets, lengths
        )
    return counts
