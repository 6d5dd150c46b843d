"""Writing a block that is exactly one whole chunk of a zarr array, without zarr's indexing.

`vrepo.dask.store` writes one dask block per task, and blocks usually match the target's
chunks. For those, zarr's ``Array.__setitem__`` spends about 1.5 ms a 2 MiB chunk beyond the
compression itself (selection indexing, a merge step, and two thread hops: to zarr's event
loop and from there to a thread for the compressor). This module encodes such a block in the
calling thread with the array's own codecs, applies zarr's own empty-chunk rule and chunk key,
and hops to the event loop once to store the bytes, so what lands is byte for byte what zarr
would have written. Anything else (partial or misaligned blocks, sharding, non-numeric dtypes,
codecs that cannot encode synchronously, other array types) goes through zarr unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from zarr.core.array_spec import ArrayConfig
from zarr.core.buffer import Buffer, NDBuffer, default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.codec_pipeline import BatchedCodecPipeline, fill_value_or_default
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync

try:  # zarr >= 3.1.6: codecs that can encode without an event loop say so
    from zarr.abc.codec import SupportsSyncCodec
except ImportError:  # pragma: no cover - older zarr encodes through its pipeline
    SupportsSyncCodec = None  # type: ignore[assignment,misc]

_NUMERIC_KINDS = frozenset("biufc")

Region = tuple[slice, ...]


def write_block(array: zarr.Array, region: Region, block: Any) -> None:
    """``array[region] = block``, skipping zarr's indexing when the block is one whole chunk."""
    coords = _whole_chunk(array, region, block)
    if coords is None:
        array[region] = block
    else:
        _write_chunk(array, coords, block)


def array_config(array: zarr.Array) -> ArrayConfig:
    """The array's runtime configuration (write_empty_chunks, order) as it was opened with.

    zarr 3.1.6 renamed the attribute from ``AsyncArray._config`` to ``AsyncArray.config``.
    """
    async_array = array._async_array
    config = getattr(async_array, "config", None)
    return config if isinstance(config, ArrayConfig) else async_array._config


def _whole_chunk(array: zarr.Array, region: Region, block: Any) -> tuple[int, ...] | None:
    """The chunk coordinates ``region`` covers exactly, if the fast path applies to it."""
    metadata = array.metadata
    if not (
        type(block) is np.ndarray
        and block.dtype.kind in _NUMERIC_KINDS
        and isinstance(metadata, ArrayV3Metadata)
        and isinstance(metadata.chunk_grid, RegularChunkGrid)
        and metadata.data_type.to_native_dtype().kind in _NUMERIC_KINDS
        and not array._async_array.codec_pipeline.supports_partial_encode  # sharding
    ):
        return None
    chunk_shape = metadata.chunk_grid.chunk_shape
    if block.shape != chunk_shape or len(region) != len(chunk_shape):
        return None
    coords = []
    for where, size, extent in zip(region, chunk_shape, metadata.shape, strict=True):
        if not isinstance(where, slice):
            return None
        start = where.start or 0
        if where.step not in (None, 1) or start < 0 or start % size or start + size > extent:
            return None  # misaligned, strided, from the end or out of bounds: zarr decides
        if where.stop is not None and where.stop != start + size:
            return None
        coords.append(start // size)
    return tuple(coords)


def _write_chunk(array: zarr.Array, coords: tuple[int, ...], block: np.ndarray) -> None:
    """Encode and store one whole chunk as zarr's codec pipeline would."""
    async_array = array._async_array
    metadata = async_array.metadata
    dtype = metadata.data_type.to_native_dtype()
    if block.dtype.name != dtype.name:  # zarr's own cast rule in _set_selection
        block = block.astype(dtype=dtype, order="A")
    prototype = default_buffer_prototype()
    spec = metadata.get_chunk_spec(coords, array_config(array), prototype)
    chunk = prototype.nd_buffer.from_ndarray_like(block)
    encoded: Buffer | None = None
    if spec.config.write_empty_chunks or not chunk.all_equal(fill_value_or_default(spec)):
        encoded = _encode(async_array.codec_pipeline, chunk, spec)
    key = async_array.store_path / metadata.encode_chunk_key(coords)
    sync(key.delete() if encoded is None else key.set(encoded))


def _encode(pipeline: Any, chunk: NDBuffer, spec: Any) -> Buffer | None:
    """The chunk's stored bytes: in this thread when every codec can encode synchronously."""
    codecs = _sync_codecs(pipeline)
    if codecs is None:
        (encoded,) = sync(pipeline.encode([(chunk, spec)]))
        return encoded
    data: NDBuffer | Buffer | None = chunk
    for codec in codecs:  # the order and spec resolution of BatchedCodecPipeline.encode_batch
        if data is None:
            return None
        data = codec._encode_sync(data, spec)
        spec = codec.resolve_metadata(spec)
    return data  # type: ignore[return-value]


def _sync_codecs(pipeline: Any) -> tuple[Any, ...] | None:
    if SupportsSyncCodec is None or not isinstance(pipeline, BatchedCodecPipeline):
        return None
    codecs = (
        *pipeline.array_array_codecs,
        pipeline.array_bytes_codec,
        *pipeline.bytes_bytes_codecs,
    )
    return codecs if all(isinstance(codec, SupportsSyncCodec) for codec in codecs) else None
