"""Zarr format 2 metadata as Zarr format 3 documents, by zarr's own migration code.

`zarr.metadata.migrate_v3.migrate_to_v3` (public since zarr 3.1, below vrepo's floor) turns
``.zarray`` / ``.zgroup`` / ``.zattrs`` into ``zarr.json``: ``compressor`` and ``filters``
become v3 codecs, and the chunk key encoding becomes ``v2`` with the array's separator, so the
chunk objects keep their keys and their bytes. It runs here on an in-memory copy of the
metadata only: nothing is read from or written to the source.

Two conventions of xarray follow the metadata, so that xarray reads the result as it reads
the source: the ``_ARRAY_DIMENSIONS`` attribute becomes ``dimension_names`` (xarray reads
dimensions from there in format 3), and a fill value, which xarray uses as the missing-value
mask in format 2, becomes the ``_FillValue`` attribute it reads in format 3.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from vrepo.errors import UnsupportedZarrFormatError

ZARRAY, ZGROUP, ZATTRS, ZMETADATA = ".zarray", ".zgroup", ".zattrs", ".zmetadata"
V2_NAMES = frozenset({ZARRAY, ZGROUP, ZATTRS, ZMETADATA})
DIMENSION_KEY = "_ARRAY_DIMENSIONS"  # xarray's attribute for dimension names in format 2
ZARR_JSON = "zarr.json"


def to_v3(documents: Mapping[str, bytes]) -> dict[str, bytes]:
    """``zarr.json`` documents by key for the format 2 metadata ``documents`` (by key)."""
    import zarr
    from zarr.core.buffer import default_buffer_prototype
    from zarr.metadata.migrate_v3 import migrate_to_v3
    from zarr.storage import MemoryStore, StorePath

    prepared = {key: _prepared(key, data) for key, data in documents.items() if key != ZMETADATA}
    buffer = default_buffer_prototype().buffer
    source = MemoryStore({k: buffer.from_bytes(v) for k, v in prepared.items()}, read_only=True)
    migrated: dict[str, Any] = {}
    try:
        if ZGROUP in documents:
            node: Any = zarr.open_group(source, mode="r", zarr_format=2, use_consolidated=False)
        elif ZARRAY in documents:
            node = zarr.open_array(source, mode="r", zarr_format=2)
        else:
            raise UnsupportedZarrFormatError("the source has no .zgroup or .zarray at its root")
        migrate_to_v3(node, StorePath(MemoryStore(migrated)))
    except (TypeError, ValueError, NotImplementedError, KeyError) as exc:
        raise UnsupportedZarrFormatError(
            f"zarr cannot convert this Zarr format 2 metadata to format 3 ({exc}); convert it "
            "with zarr's own `zarr migrate v3` first, or rewrite the data with zarr_format=3"
        ) from exc
    return {
        key: _with_xarray_conventions(value.to_bytes(), documents, key)
        for key, value in migrated.items()
    }


def _prepared(key: str, data: bytes) -> bytes:
    """``data`` as zarr's migration accepts it: an array's null fill value (\"chunks not
    written are undefined\" in format 2) becomes the data type's zero, which zarr reads anyway."""
    if not key.endswith(ZARRAY):
        return data
    doc = json.loads(data)
    if doc.get("fill_value") is None:
        doc["fill_value"] = _zero(doc.get("dtype"))
        return json.dumps(doc).encode()
    return data


def _zero(dtype: Any) -> Any:
    """The format 2 JSON of a zero of ``dtype`` (0, 0.0, false, an empty string, ...)."""
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return None  # structured data types: zarr's migration says what it thinks of them
    return {"b": False, "i": 0, "u": 0, "f": 0.0, "c": [0.0, 0.0], "m": 0, "M": 0}.get(kind, "")


def _with_xarray_conventions(data: bytes, v2: Mapping[str, bytes], key: str) -> bytes:
    """``data`` (an array's ``zarr.json``) with xarray's dimension names and fill value moved
    where xarray reads them in format 3; groups and other arrays unchanged."""
    doc = json.loads(data)
    attributes = doc.get("attributes") or {}
    dims = attributes.get(DIMENSION_KEY)
    if doc.get("node_type") != "array" or not _are_dimensions(dims, len(doc["shape"])):
        return data
    doc["dimension_names"] = dims
    attributes = {k: v for k, v in attributes.items() if k != DIMENSION_KEY}
    zarray = json.loads(v2[key[: -len(ZARR_JSON)] + ZARRAY])
    fill = zarray.get("fill_value")
    if fill is not None and "_FillValue" not in attributes:
        encoded = _xarray_fill_value(fill, zarray["dtype"])
        if encoded is not None:
            attributes["_FillValue"] = encoded
    doc["attributes"] = attributes
    return json.dumps(doc).encode()


def _are_dimensions(dims: Any, ndim: int) -> bool:
    return isinstance(dims, list) and len(dims) == ndim and all(isinstance(d, str) for d in dims)


def _xarray_fill_value(fill: Any, dtype: Any) -> Any:
    """A format 2 fill value as xarray writes ``_FillValue`` in format 3 (floats as the
    base64 of a little-endian double, bytes as base64), None where it has no such form."""
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return None
    if kind == "f":
        return base64.standard_b64encode(struct.pack("<d", float(fill))).decode()
    if kind in "iu":
        return int(fill)
    if kind == "b":
        return bool(fill)
    if kind == "S":
        return fill  # format 2 keeps bytes as base64 already
    return None
