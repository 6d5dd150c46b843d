"""The store being imported: opened read-only, and listed into metadata and data keys.

A source is a local path, a ``file://`` or ``s3://`` URL (any fsspec URL, in fact: zarr's
`FsspecStore`, configured by fsspec ``storage_options`` such as ``endpoint_url``, ``key``
and ``secret``), or a zarr store object. Everything but metadata is copied as it is, so the
listing sorts keys in two: the metadata documents (read here, they are small) and the rest.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vrepo.errors import InvalidArgumentError, UnsupportedZarrFormatError
from vrepo.importing._v2 import V2_NAMES, ZARR_JSON, ZARRAY, ZGROUP

if TYPE_CHECKING:
    from zarr.abc.store import Store

_METADATA_READS = 32  # metadata documents read at once


@dataclass(frozen=True)
class Listing:
    """What a source holds: its format, its metadata documents by key, its other keys."""

    zarr_format: int
    metadata: dict[str, bytes]
    data_keys: list[str]


def open_source(source: Any, options: dict[str, Any] | None) -> Store:
    """A read-only zarr store over ``source`` (a path, a URL, or a zarr store)."""
    from zarr.abc.store import Store
    from zarr.storage import FsspecStore, LocalStore

    if isinstance(source, Store):
        if options:
            raise InvalidArgumentError(
                "source_options apply only to a URL; configure the store object instead"
            )
        return source
    if not isinstance(source, str | os.PathLike):
        raise InvalidArgumentError(
            "source must be a path, a URL such as 's3://bucket/data.zarr', or a zarr store, "
            f"not {type(source).__name__}"
        )
    text = os.fspath(source)
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() != "file":
        return FsspecStore.from_url(text, storage_options=options, read_only=True)
    if options:
        raise InvalidArgumentError("source_options apply only to a URL, not to a local path")
    path = rest if sep else text
    if not os.path.isdir(path):
        raise InvalidArgumentError(f"no Zarr store at {text!r}: it is not a directory")
    return LocalStore(path, read_only=True)


async def list_source(store: Store, described: str) -> Listing:
    """Every key of ``store`` sorted into metadata and data; its format from the root."""
    from zarr.core.buffer import default_buffer_prototype

    keys = sorted([key async for key in store.list()])
    names = set(keys)
    if ZARR_JSON in names:
        zarr_format = 3
        is_metadata = _is_v3_metadata
    elif ZGROUP in names or ZARRAY in names:
        zarr_format = 2
        is_metadata = _is_v2_metadata
    else:
        raise UnsupportedZarrFormatError(
            f"{described} is not a Zarr store: it has no zarr.json, .zgroup or .zarray at its root"
        )
    metadata_keys = [key for key in keys if is_metadata(key)]
    prototype = default_buffer_prototype()
    limit = asyncio.Semaphore(_METADATA_READS)

    async def read(key: str) -> bytes:
        async with limit:
            buffer = await store.get(key, prototype)
        if buffer is None:
            raise UnsupportedZarrFormatError(f"{key!r} vanished from {described} while listed")
        return buffer.to_bytes()

    documents = await asyncio.gather(*(read(key) for key in metadata_keys))
    data_keys = [key for key in keys if not _is_v3_metadata(key) and not _is_v2_metadata(key)]
    return Listing(zarr_format, dict(zip(metadata_keys, documents, strict=True)), data_keys)


def _is_v3_metadata(key: str) -> bool:
    return key.rpartition("/")[2] == ZARR_JSON


def _is_v2_metadata(key: str) -> bool:
    return key.rpartition("/")[2] in V2_NAMES
