"""Writing a block that is exactly one whole chunk of a zarr array, without zarr's indexing.

`vrepo.dask.store` writes one dask block per task, and blocks usually match the target's
chunks. For those, zarr's ``Array.__setitem__`` spends about 1.5 ms a 2 MiB chunk beyond the
compression itself (selection indexing, a merge step, and two thread hops: to zarr's event
loop and from there to a thread for the compressor). This module encodes such a block in the
calling thread with the array's own codecs, applies zarr's own empty-chunk rule and chunk key,
and hops to the event loop once to store the bytes, so what lands is byte for byte what zarr
would have written (codecs that cannot encode synchronously are left to the pipeline's own
encode). Anything else (partial or misaligned blocks, sharding, non-numeric dtypes, other array
types or codec pipelines) goes through zarr unchanged, and so does every block when the
installed zarr lacks one of the internals this needs (`_zarr_internals` looks them up) or they
fail a one-time self-check: `fast_path_reason` says which path is taken.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.storage import MemoryStore

from vrepo.dask import _zarr_internals as _zi

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

_NUMERIC_KINDS = frozenset("biufc")

Region = tuple[slice, ...]


def write_block(array: zarr.Array, region: Region, block: Any) -> None:
    """``array[region] = block``, skipping zarr's indexing when the block is one whole chunk."""
    coords = _whole_chunk(array, region, block) if fast_path_available() else None
    if coords is None:
        array[region] = block
    else:
        _write_chunk(array, coords, block)


def fast_path_available() -> bool:
    """Whether whole chunks bypass ``Array.__setitem__`` on the installed zarr."""
    return _fast_path_problem() is None


def fast_path_reason() -> str:
    """Which path whole chunks take on the installed zarr, and why."""
    version = f"zarr {zarr.__version__}"
    problem = _fast_path_problem()
    if problem is not None:
        return f"{version}: every block goes through Array.__setitem__, because {problem}"
    how = "in the calling thread" if _zi.codec_supports_sync else "by zarr's codec pipeline"
    return f"{version}: whole chunks bypass Array.__setitem__ and are encoded {how}"


def array_config(array: zarr.Array) -> ArrayConfig | None:
    """The array's runtime configuration (write_empty_chunks, order) as it was opened with.

    Public as ``zarr.Array.config`` since zarr 3.1.6; ``AsyncArray._config`` before.
    """
    config = getattr(array, "config", None)
    return config if config is not None else getattr(array._async_array, "_config", None)


@functools.cache
def _fast_path_problem() -> str | None:
    """What keeps the fast path off (a missing internal, a failed self-check), or None."""
    needed = {
        "zarr.core.sync.sync": _zi.sync,
        "zarr.core.buffer.default_buffer_prototype": _zi.default_buffer_prototype,
        "zarr.core.array_spec.ArraySpec": _zi.ArraySpec,
        "a regular chunk grid class": _zi.REGULAR_GRIDS,
        "a known codec pipeline class": _zi.PIPELINES,
        "zarr's empty-chunk rule": _zi.chunk_is_empty,
        "zarr.codecs.ShardingCodec": _zi.ShardingCodec,
    }
    missing = [name for name, found in needed.items() if not found]
    if missing:
        return "zarr has no " + ", ".join(missing)
    return _self_check()


def _self_check() -> str | None:
    """Write chunks both ways on memory stores; different bytes mean zarr changed shape.

    Covers what finding the internals cannot: that they are still called the same way.
    """
    data = np.linspace(-1, 1, 8, dtype="f4").reshape(2, 4)
    writes = (((slice(2, 4), slice(0, 4)), data), ((slice(0, 2), slice(0, 4)), np.zeros_like(data)))
    stored: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    try:
        by_zarr, by_vrepo = (_filled_array(MemoryStore(store_dict=d)) for d in stored)
        for region, block in writes:
            by_zarr[region] = block
            coords = _whole_chunk(by_vrepo, region, block)
            if coords is None:
                return f"the fast path's self-check did not find the whole chunk {region}"
            _write_chunk(by_vrepo, coords, block)
        by_zarr_bytes, by_vrepo_bytes = ({k: v.to_bytes() for k, v in d.items()} for d in stored)
    except Exception as exc:  # whatever an internal's new shape raises means: do not use it
        return f"the fast path's self-check raised {exc!r}"
    if by_vrepo_bytes != by_zarr_bytes:
        return "the fast path's self-check stored other bytes than zarr"
    return None


def _filled_array(store: MemoryStore) -> zarr.Array:
    """A small array with every chunk stored, so that an empty chunk's deletion shows."""
    array = zarr.create_array(store, shape=(4, 4), chunks=(2, 4), dtype="f4")
    array[...] = 1
    return array


def _whole_chunk(array: zarr.Array, region: Region, block: Any) -> tuple[int, ...] | None:
    """The chunk coordinates ``region`` covers exactly, if the fast path applies to it."""
    metadata = array.metadata
    pipeline = array._async_array.codec_pipeline
    if not (
        type(block) is np.ndarray
        and block.dtype.kind in _NUMERIC_KINDS
        and metadata.zarr_format == 3
        and isinstance(metadata.chunk_grid, _zi.REGULAR_GRIDS)
        and metadata.dtype.to_native_dtype().kind in _NUMERIC_KINDS
        and type(pipeline) in _zi.PIPELINES  # a subclass may write otherwise
        and not _sharded(metadata, pipeline)
    ):
        return None
    chunk_shape = tuple(metadata.chunk_grid.chunk_shape)
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


def _sharded(metadata: Any, pipeline: Any) -> bool:
    sharding = _zi.ShardingCodec
    return pipeline.supports_partial_encode or any(
        isinstance(codec, sharding) for codec in metadata.codecs
    )


def _write_chunk(array: zarr.Array, coords: tuple[int, ...], block: np.ndarray) -> None:
    """Encode and store one whole chunk as zarr's ``_set_selection`` would."""
    async_array = array._async_array
    metadata = async_array.metadata
    dtype = metadata.dtype.to_native_dtype()
    if block.dtype.name != dtype.name:  # zarr's own cast rule in _set_selection
        block = block.astype(dtype=dtype, order="A")
    prototype = _zi.default_buffer_prototype()
    spec = _zi.ArraySpec(  # the spec zarr builds for every chunk of a regular grid
        shape=tuple(metadata.chunk_grid.chunk_shape),
        dtype=metadata.dtype,
        fill_value=metadata.fill_value,
        config=array_config(array),
        prototype=prototype,
    )
    chunk = prototype.nd_buffer.from_ndarray_like(block)
    encoded = None
    if not _zi.chunk_is_empty(chunk, spec):
        encoded = _encode(async_array.codec_pipeline, chunk, spec)
    key = async_array.store_path / metadata.encode_chunk_key(coords)
    _zi.sync(key.delete() if encoded is None else key.set(encoded))


def _encode(pipeline: Any, chunk: NDBuffer, spec: ArraySpec) -> Buffer | None:
    """The chunk's stored bytes as ``pipeline.write`` encodes them, in this thread if it can."""
    encode = _sync_encoder(pipeline)
    if encode is not None:
        return encode(chunk, spec)
    (encoded,) = _zi.sync(pipeline.encode([(chunk, spec)]))
    return encoded


def _sync_encoder(pipeline: Any) -> Callable[[NDBuffer, ArraySpec], Buffer | None] | None:
    """``pipeline``'s encoding of one chunk without the event loop, if all its codecs have one."""
    if _zi.FusedCodecPipeline is not None and isinstance(pipeline, _zi.FusedCodecPipeline):
        transform = pipeline.sync_transform  # what FusedCodecPipeline.write encodes with
        return None if transform is None else transform.encode_chunk
    if _zi.codec_supports_sync is None:
        return None
    codecs = (
        *pipeline.array_array_codecs,
        pipeline.array_bytes_codec,
        *pipeline.bytes_bytes_codecs,
    )
    if not all(_zi.codec_supports_sync(codec) for codec in codecs):
        return None
    return functools.partial(_encode_in_thread, codecs)


def _encode_in_thread(codecs: tuple[Any, ...], chunk: NDBuffer, spec: ArraySpec) -> Buffer | None:
    """BatchedCodecPipeline.encode_batch for one chunk, with each codec's ``_encode_sync``."""
    data: NDBuffer | Buffer | None = chunk
    for codec in codecs:  # the order and spec resolution of encode_batch
        if data is None:
            return None
        data = codec._encode_sync(data, spec)
        spec = codec.resolve_metadata(spec)
    return data  # type: ignore[return-value]
