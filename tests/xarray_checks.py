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
