"""The private zarr objects vrepo.dask's fast paths use, looked up so that none can fail.

zarr moves its internals between releases: by 3.4.2, ``zarr.core.chunk_grids.RegularChunkGrid``
had become ``zarr.core.metadata.v3.RegularChunkGridMetadata``, the empty-chunk rule had moved
into ``zarr.core.chunk_utils`` and ``FusedCodecPipeline`` had appeared. Every name here is the
installed zarr's object, or None (an empty tuple for the classes) where that zarr lacks it, so
a change in zarr costs vrepo a fast path, never its import. No other module of vrepo.dask
imports zarr's internals at run time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import zarr
import zarr.codecs
import zarr.storage

try:
    from zarr.core.sync import sync
except ImportError:
    sync = None

try:
    from zarr.core.buffer import default_buffer_prototype
except ImportError:
    default_buffer_prototype = None

try:
    from zarr.core.array_spec import ArraySpec
except ImportError:
    ArraySpec = None

try:  # zarr 3.1
    from zarr.core.chunk_grids import RegularChunkGrid
except ImportError:
    RegularChunkGrid = None

try:  # zarr 3.4.2
    from zarr.core.metadata.v3 import RegularChunkGridMetadata
except ImportError:
    RegularChunkGridMetadata = None

REGULAR_GRIDS: tuple[type, ...] = tuple(
    grid for grid in (RegularChunkGrid, RegularChunkGridMetadata) if isinstance(grid, type)
)
"""The classes of ``ArrayV3Metadata.chunk_grid`` that mean one chunk shape for all chunks."""

try:
    from zarr.core.codec_pipeline import BatchedCodecPipeline
except ImportError:
    BatchedCodecPipeline = None

try:  # zarr 3.4.2, opt-in
    from zarr.core.codec_pipeline import FusedCodecPipeline
except ImportError:
    FusedCodecPipeline = None

PIPELINES: tuple[type, ...] = tuple(
    cls for cls in (BatchedCodecPipeline, FusedCodecPipeline) if isinstance(cls, type)
)
"""The codec pipelines whose ``write`` vrepo knows how to reproduce for one whole chunk."""


def _empty_chunk_rule() -> Callable[[Any, Any], bool] | None:
    """zarr's ``chunk_is_empty(chunk, spec)``: the chunk is not stored, but deleted."""
    try:  # zarr 3.4.2
        from zarr.core.chunk_utils import chunk_is_empty

        return chunk_is_empty
    except ImportError:
        pass
    try:  # zarr 3.1 inlines the rule in BatchedCodecPipeline.write_batch
        from zarr.core.codec_pipeline import fill_value_or_default
    except ImportError:
        return None

    def chunk_is_empty(chunk: Any, spec: Any) -> bool:
        return not spec.config.write_empty_chunks and chunk.all_equal(fill_value_or_default(spec))

    return chunk_is_empty


chunk_is_empty = _empty_chunk_rule()


def _sync_codec_test() -> Callable[[Any], bool] | None:
    """Whether a codec can encode in the calling thread (``_encode_sync``), if zarr can say."""
    try:  # zarr 3.4.2 also asks the codec itself (a sharding codec may decline)
        from zarr.abc.codec import _codec_supports_sync

        return _codec_supports_sync
    except ImportError:
        pass
    try:  # zarr >= 3.1.6
        from zarr.abc.codec import SupportsSyncCodec
    except ImportError:
        return None
    return lambda codec: isinstance(codec, SupportsSyncCodec)


codec_supports_sync = _sync_codec_test()

ShardingCodec: type | None = getattr(zarr.codecs, "ShardingCodec", None)


def _takes(factory: Any, *names: str) -> bool:
    """Whether ``factory``'s parameters are ``names`` first, in order, and optional after."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return list(parameters)[: len(names)] == list(names) and all(
        p.default is not inspect.Parameter.empty for p in list(parameters.values())[len(names) :]
    )


def _array_from_metadata() -> Callable[[Any, Any, str, Any], zarr.Array] | None:
    """``zarr.Array`` built from metadata already read (no store read), if zarr allows it."""
    try:
        from zarr.core.array import AsyncArray
    except ImportError:
        return None
    store_path = getattr(zarr.storage, "StorePath", None)
    if not (
        store_path is not None
        and _takes(AsyncArray, "metadata", "store_path", "config")
        and _takes(zarr.Array, "_async_array")
    ):
        return None

    def array_from_metadata(metadata: Any, store: Any, path: str, config: Any) -> zarr.Array:
        return zarr.Array(AsyncArray(metadata, store_path(store, path), config=config))

    return array_from_metadata


array_from_metadata = _array_from_metadata()
