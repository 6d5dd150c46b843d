"""The binary manifest file: encoding manifest columns and decoding and validating them.

The file is a vrepo envelope (`envelope`, uncompressed) around a msgpack `_Payload`; the
fixed-width columns inside it are one zstd frame, and decoding hands them back as zero-copy
numpy views of the decompressed bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from vrepo.errors import FormatError
from vrepo.format.chunk_grid import MAX_COORD, check_extent, extent_of, ravel
from vrepo.format.envelope import (
    FORMAT_VERSION,
    VIRTUAL_FORMAT_VERSION,
    FileType,
    StructFile,
    compress_bytes,
    decompress_bytes,
)
from vrepo.format.ids import ID_BYTES
from vrepo.format.manifest_columns import (
    NO_CHECKSUM,
    NOT_VIRTUAL,
    ManifestColumns,
    canonical_checksums,
    canonical_locations,
)


class _Payload(msgspec.Struct):
    """The msgpack body of a manifest file.

    ``columns`` is one zstd frame holding, packed little-endian and in this order: coords
    (count x ndim uint32), ids (count x 12 bytes, present when ``has_ids``), offsets (count
    uint64), lengths (count uint32) and, when ``has_checksums`` (format version 2; absent, so
    False, in version 1), checksums (count uint32, the CRC-32C of each stored chunk) and
    ``unchecked``, a bitmap of the rows without one (ceil(count / 8) bytes, least significant
    bit first; a set bit: an inline ref, or one kept from a version-1 manifest, whose checksum
    slot is 0), then, when ``has_locations`` (format version 4), locations (count uint32: a
    virtual ref's index in ``sources``, 2**32 - 1 for the other rows). ``sources`` lists the
    distinct ``[location, validator]`` pairs of the virtual refs.
    ``inline_blob`` is stored raw: inline payloads are chunks already compressed by their zarr
    codecs, and compressing them again cost most of the time of a commit and of a cold read.
    """

    ndim: int
    count: int
    extent: list[int]
    has_ids: bool
    columns: Any
    inline_blob: Any
    has_checksums: bool = False
    has_locations: bool = False
    sources: list[tuple[str, str]] = []


class _DecodedPayload(_Payload):
    """Decoding into memoryviews keeps the inline payloads a zero-copy view of the file."""

    columns: memoryview
    inline_blob: memoryview


_file = StructFile(FileType.MANIFEST, _DecodedPayload, compress=False)


def encode_manifest(cols: ManifestColumns) -> bytes:
    """Encode manifest columns as a binary vrepo manifest file."""
    coords = cols.keys if cols.ndim == 1 else cols.coords()
    columns = [_le_bytes(coords, "<u4")]
    if cols.ids is not None:
        columns.append(_le_bytes(cols.ids, "u1"))
    columns += [_le_bytes(cols.offsets, "<u8"), _le_bytes(cols.lengths, "<u4")]
    if cols.checksums is not None:
        missing = cols.checksums == NO_CHECKSUM
        columns.append(_le_bytes(np.where(missing, 0, cols.checksums), "<u4"))
        columns.append(memoryview(np.packbits(missing, bitorder="little")))
    if cols.locations is not None:
        columns.append(_le_bytes(cols.locations, "<u4"))
    payload = _Payload(
        ndim=cols.ndim,
        count=len(cols.keys),
        extent=list(cols.extent),
        has_ids=cols.ids is not None,
        columns=compress_bytes(b"".join(columns)),
        inline_blob=cols.inline_blob,
        has_checksums=cols.checksums is not None,
        has_locations=cols.locations is not None,
        sources=list(cols.sources),
    )
    # an older vrepo would read virtual rows as inline ones: it must refuse the file instead
    version = FORMAT_VERSION if cols.locations is None else VIRTUAL_FORMAT_VERSION
    return _file.encode(payload, version=version)


def decode_manifest(data: bytes | bytearray | memoryview, *, what: str) -> ManifestColumns:
    """Decode and verify a manifest file; `FormatError` if it is corrupt or inconsistent."""
    return _file.decode(data, what=what, then=_from_payload)


def _le_bytes(a: np.ndarray, dtype: str) -> memoryview:
    """A flat byte view of `a` as `dtype` (copying only if the dtype or layout differs)."""
    return memoryview(np.ascontiguousarray(a, dtype=dtype).reshape(-1).view(np.uint8))


def _byte_view(v: memoryview) -> memoryview:
    """`v` as a flat byte view with its true length, zero-copy.

    msgspec < 0.20 gives decoded memoryviews the right `nbytes` but the shape (and so the `len`,
    slicing and equality) of the whole input buffer (msgspec#835); `cast` rebuilds the shape
    from `nbytes`.
    """
    return v.cast("B")


def _from_payload(p: _DecodedPayload) -> ManifestColumns:
    """Validate a decoded payload and return its columns (ValueError when inconsistent)."""
    ndim, n = p.ndim, p.count
    columns, inline_blob = _byte_view(p.columns), _byte_view(p.inline_blob)
    extent = tuple(p.extent)
    if ndim < 0 or n < 0 or len(extent) != ndim or (ndim == 0 and n > 1):
        raise ValueError(f"ndim {ndim}, count {n} and extent {extent} do not agree")
    if any(not 0 <= e <= MAX_COORD + 1 for e in extent):
        raise ValueError(f"extent {extent} out of range")
    check_extent(extent)
    sizes = {"coords": 4 * ndim * n, "ids": ID_BYTES * n if p.has_ids else 0, "offsets": 8 * n}
    sizes["lengths"] = 4 * n
    if p.has_checksums:
        sizes["checksums"], sizes["unchecked"] = 4 * n, (n + 7) // 8
    if p.has_locations:
        sizes["locations"] = 4 * n
    try:
        raw = memoryview(decompress_bytes(columns, sum(sizes.values()), what="columns"))
    except FormatError as e:
        raise ValueError(str(e)) from e  # reported with the file's name by StructFile
    column, start = {}, 0
    for name, size in sizes.items():
        column[name], start = raw[start : start + size], start + size
    coords = np.frombuffer(column["coords"], dtype="<u4").reshape(n, ndim)
    if extent_of(coords) != extent:
        raise ValueError(f"extent {extent} does not match the coordinates")
    keys = ravel(coords, extent)
    if not (keys[1:] > keys[:-1]).all():
        raise ValueError("chunk coordinates are not strictly sorted")
    ids = np.frombuffer(column["ids"], np.uint8).reshape(n, ID_BYTES) if p.has_ids else None
    offsets = np.frombuffer(column["offsets"], dtype="<u8")
    lengths = np.frombuffer(column["lengths"], dtype="<u4")
    locations, sources = _locations(column, p) if p.has_locations else (None, ())
    virtual = np.zeros(n, bool) if locations is None else locations != NOT_VIRTUAL
    zero_id = np.ones(n, dtype=bool) if ids is None else ~ids.any(axis=1)
    if (virtual & ~zero_id).any():
        raise ValueError("a virtual ref has a chunk id")
    inline = zero_id & ~virtual
    if ids is not None and zero_id.all():
        ids = None  # canonical form: no ids column when no ref is stored
    ends = offsets[inline] + lengths[inline].astype(np.uint64)
    if len(ends) and (int(ends.max()) > len(inline_blob) or (ends < offsets[inline]).any()):
        raise ValueError("an inline ref points past the end of the inline payloads")
    checksums = _checksums(column, zero_id) if p.has_checksums else None
    return ManifestColumns(
        ndim, extent, keys, ids, offsets, lengths, inline_blob, checksums, locations, sources
    )


def _locations(
    column: dict[str, memoryview], p: _DecodedPayload
) -> tuple[np.ndarray | None, tuple[tuple[str, str], ...]]:
    """The locations column and source table, checked (every index names a source)."""
    locations = np.frombuffer(column["locations"], dtype="<u4")
    sources = tuple((str(loc), str(val)) for loc, val in p.sources)
    virtual = locations != NOT_VIRTUAL
    if virtual.any() and int(locations[virtual].max()) >= len(sources):
        raise ValueError("a virtual ref names a source the manifest does not list")
    return canonical_locations(locations, sources)


def _checksums(column: dict[str, memoryview], inline: np.ndarray) -> np.ndarray | None:
    """The checksums column (`NO_CHECKSUM` where the bitmap says none); ``inline``: the rows
    without a chunk id (inline and virtual refs), which have none."""
    n = len(inline)
    bits = np.frombuffer(column["unchecked"], np.uint8)
    missing = np.unpackbits(bits, count=n, bitorder="little").astype(bool)
    if (inline & ~missing).any():
        raise ValueError("an inline ref has a checksum")
    sums = np.frombuffer(column["checksums"], dtype="<u4").astype(np.uint64)
    sums[missing] = NO_CHECKSUM
    return canonical_checksums(sums)
