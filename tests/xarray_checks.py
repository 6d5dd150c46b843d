"""Assertions shared by the xarray tests."""

from __future__ import annotations

import xarray as xr

ENCODING_KEYS = ("dtype", "units", "calendar", "chunks", "preferred_chunks", "compressors")


def assert_same_as_plain_zarr(got: xr.Dataset, reference: xr.Dataset) -> None:
    """Values, attributes and the encoding that matters equal what plain zarr gives."""
    xr.testing.assert_identical(got.load(), reference.load())
    for name in reference.variables:
        ref_enc, got_enc = reference[name].encoding, got[name].encoding
        for key in ENCODING_KEYS:
            assert str(got_enc.get(key)) == str(ref_enc.get(key)), (name, key)


def failing_from_block(ds: xr.Dataset, name: str, first_bad: int, message: str) -> xr.Dataset:
    """``ds`` whose variable ``name`` raises RuntimeError(message) computing time blocks
    ``first_bad`` and later: a job that fails part way through."""

    def fail(block, block_info=None):
        if block_info is not None and block_info[0]["chunk-location"][0] >= first_bad:
            raise RuntimeError(message)
        return block

    var = ds[name]
    return ds.assign({name: var.copy(data=var.data.map_blocks(fail))})
