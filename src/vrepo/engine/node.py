"""Zarr v3 node metadata as the engine needs it: node kind and an array's chunk layout.

vrepo stores each node's ``zarr.json`` verbatim and parses only what versioning needs: whether
it is a group or an array, and for arrays the number of dimensions and the chunk key encoding
(how a store key such as ``c/3/1`` maps to chunk coordinates and back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from vrepo.errors import UnsupportedZarrFormatError

NodeKind = Literal["group", "array"]

V2_METADATA_NAMES = frozenset({".zarray", ".zgroup", ".zattrs", ".zmetadata"})


@dataclass(frozen=True, slots=True)
class ArrayLayout:
    """How one array's chunks are addressed: dimensions, grid, and key encoding."""

    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    encoding: Literal["default", "v2"]
    separator: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def grid(self) -> tuple[int, ...]:
        """Chunks per dimension (the last chunk of a dimension may be partial)."""
        return tuple(
            -(-size // chunk) for size, chunk in zip(self.shape, self.chunk_shape, strict=True)
        )

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        """The key (relative to the array) zarr uses for the chunk at ``coords``."""
        if self.encoding == "default":
            return self.separator.join(("c", *map(str, coords)))
        return self.separator.join(map(str, coords)) if coords else "0"

    def parse_chunk_key(self, rest: str) -> tuple[int, ...] | None:
        """Chunk coordinates for a key relative to the array, or None if it is no chunk key."""
        if self.encoding == "default":
            if rest == "c":
                return () if self.ndim == 0 else None
            if not rest.startswith("c" + self.separator):
                return None
            parts = rest[2:].split(self.separator)
        else:
            if self.ndim == 0:
                return () if rest == "0" else None
            parts = rest.split(self.separator)
        if len(parts) != self.ndim:
            return None
        for part in parts:
            # canonical decimal only, so that exactly one key names each chunk
            if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0"):
                return None
        return tuple(map(int, parts))

    def compatible_with(self, other: ArrayLayout) -> bool:
        """Whether chunks stored under ``other`` keep their meaning under this layout."""
        return (
            self.ndim == other.ndim
            and self.chunk_shape == other.chunk_shape
            and self.encoding == other.encoding
            and self.separator == other.separator
        )


@dataclass(frozen=True, slots=True)
class NodeMetadata:
    """A parsed ``zarr.json``: the raw bytes plus what the engine needs from them."""

    kind: NodeKind
    zarr_json: bytes
    layout: ArrayLayout | None  # None for groups


def parse_node_metadata(zarr_json: bytes) -> NodeMetadata | None:
    """Parse a ``zarr.json`` document.

    Returns None when the bytes are not Zarr v3 node metadata at all (the store then keeps
    them as an opaque object). Raises `UnsupportedZarrFormatError` for Zarr v2 metadata or
    an array layout vrepo cannot version (irregular chunk grids, unknown key encodings).
    """
    try:
        doc = msgspec.json.decode(zarr_json)
    except msgspec.DecodeError:
        return None
    if not isinstance(doc, dict) or "zarr_format" not in doc:
        return None
    if doc["zarr_format"] != 3:
        raise UnsupportedZarrFormatError(
            f"zarr.json declares zarr_format={doc['zarr_format']!r}; vrepo stores Zarr format 3 "
            "only. Write with zarr_format=3 (the default in zarr-python 3)."
        )
    kind = doc.get("node_type")
    if kind == "group":
        return NodeMetadata("group", bytes(zarr_json), None)
    if kind != "array":
        return None
    return NodeMetadata("array", bytes(zarr_json), _parse_layout(doc))


def _parse_layout(doc: dict) -> ArrayLayout:
    try:
        shape = tuple(int(n) for n in doc["shape"])
        grid = doc["chunk_grid"]
        encoding = doc.get("chunk_key_encoding", {"name": "default"})
        if grid["name"] != "regular":
            raise UnsupportedZarrFormatError(
                f"chunk grid {grid['name']!r} is not supported; use a regular chunk grid"
            )
        chunk_shape = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
        name = encoding["name"]
        default_sep = "/" if name == "default" else "."
        separator = encoding.get("configuration", {}).get("separator", default_sep)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedZarrFormatError(
            f"array metadata is malformed ({exc!r}); write it through zarr-python"
        ) from exc
    if name not in ("default", "v2") or separator not in ("/", "."):
        raise UnsupportedZarrFormatError(
            f"chunk key encoding {name!r} with separator {separator!r} is not supported; "
            "use the 'default' or 'v2' encoding with '/' or '.'"
        )
    if len(chunk_shape) != len(shape):
        raise UnsupportedZarrFormatError(
            f"array metadata has shape {shape} but chunk shape {chunk_shape}; "
            "they must have the same number of dimensions"
        )
    return ArrayLayout(shape, chunk_shape, name, separator)
