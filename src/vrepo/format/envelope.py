"""The envelope of every metadata file: header, compression and integrity checksum.

Binary files (snapshots, manifests, transaction logs) are a fixed little-endian header
followed by a zstd-compressed body::

    magic b"VREPO\\x00\\r\\n" | version u16 | file type u8 | compression u8 |
    uncompressed length u64 | crc32 of the compressed body u32 | body

Refs and ``repo.json`` are tiny and meant to be read by people, so they are JSON records with
the same information (format version, file type, crc32 of the canonical body).

Decoding checks everything and raises `FormatError` naming the file: a reader never gets
wrong data back from a corrupt, truncated, foreign or newer file.
"""

from __future__ import annotations

import enum
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
import zstandard

from vrepo.errors import FormatError

FORMAT_VERSION = 1
MAGIC = b"VREPO\x00\r\n"
COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
ZSTD_LEVEL = 3

_HEADER = struct.Struct("<8sHBBQI")
HEADER_SIZE = _HEADER.size  # 24 bytes

_CORRUPT = "the file is corrupt; restore it from a copy"


class FileType(enum.IntEnum):
    """What a metadata file holds; stored in its header so a mix-up is caught on read."""

    SNAPSHOT = 1
    MANIFEST = 2
    TRANSACTION_LOG = 3
    REF = 10
    REPO_INFO = 11
    TURN = 12

    @property
    def label(self) -> str:
        """The lowercase name used in JSON records and messages ("ref", "repo_info", ...)."""
        return self.name.lower()


# zstd contexts are not safe for concurrent use: each thread gets its own, created once.
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "cctx", None)
    if c is None:
        c = _local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = zstandard.ZstdDecompressor()
    return d


def _type_label(value: int) -> str:
    try:
        return FileType(value).label
    except ValueError:
        return f"unknown file type {value}"


def _check_version(version: object, what: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{what} has an invalid format version {version!r}; {_CORRUPT}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{what} was written by a newer vrepo (format version {version}; this vrepo reads "
            f"up to {FORMAT_VERSION}); upgrade vrepo to read it"
        )


# --- binary files ----------------------------------------------------------------------


def encode_binary(
    file_type: FileType, payload: bytes | bytearray | memoryview, *, compress: bool = True
) -> bytes:
    """Wrap `payload` in the binary envelope: header, (zstd) body, crc32 of the body.

    ``compress=False`` is for payloads that are mostly compressed already.
    """
    body = compress_bytes(payload) if compress else payload
    method = COMPRESSION_ZSTD if compress else COMPRESSION_NONE
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, int(file_type), method, len(payload), zlib.crc32(body)
    )
    return header + body


def compress_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """zstd-compress (this thread's compressor) for payloads that compress their own parts."""
    return _compressor().compress(data)


def decompress_bytes(data: bytes | bytearray | memoryview, size: int, *, what: str) -> bytes:
    """Inverse of `compress_bytes`; `FormatError` unless exactly ``size`` bytes come out."""
    try:
        out = _decompressor().decompress(data, max_output_size=size)
    except zstandard.ZstdError as e:
        raise FormatError(f"{what} could not be decompressed ({e}); {_CORRUPT}") from e
    if len(out) != size:
        raise FormatError(f"{what} decompressed to {len(out)} bytes, not {size}; {_CORRUPT}")
    return out


def decode_binary(
    data: bytes | bytearray | memoryview, expected_type: FileType, *, what: str
) -> bytes | memoryview:
    """Verify a binary envelope and return its uncompressed payload.

    `what` names the file in error messages, e.g. ``"snapshot 0ABC..."``.
    """
    if len(data) < HEADER_SIZE:
        if bytes(data[: len(MAGIC)]) != MAGIC[: len(data)]:
            raise FormatError(f"{what} is not a vrepo file (bad magic bytes); {_CORRUPT}")
        raise FormatError(
            f"{what} is truncated ({len(data)} bytes, shorter than the {HEADER_SIZE}-byte "
            f"header); {_CORRUPT}"
        )
    magic, version, ftype, compression, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"{what} is not a vrepo file (bad magic bytes); {_CORRUPT}")
    _check_version(version, what)
    if ftype != expected_type:
        raise FormatError(
            f"{what} holds a {_type_label(ftype)}, not a {expected_type.label}; the repository "
            f"is inconsistent or {_CORRUPT}"
        )
    body = memoryview(data)[HEADER_SIZE:]
    actual_crc = zlib.crc32(body)
    if actual_crc != crc:
        raise FormatError(
            f"{what} failed its checksum (crc32 stored {crc:08x}, computed {actual_crc:08x}): "
            f"it is truncated or {_CORRUPT}"
        )
    if compression == COMPRESSION_ZSTD:
        return decompress_bytes(body, length, what=what)
    if compression != COMPRESSION_NONE:
        raise FormatError(f"{what} uses unknown compression {compression}; {_CORRUPT}")
    if len(body) != length:
        raise FormatError(
            f"{what} has {len(body)} body bytes, its header says {length}; {_CORRUPT}"
        )
    return body


# --- JSON records ----------------------------------------------------------------------

_json_decoder = msgspec.json.Decoder()


def _body_checksum(body: dict[str, Any]) -> str:
    return f"crc32:{zlib.crc32(msgspec.json.encode(body, order='sorted')):08x}"


def encode_json_record(file_type: FileType, body: dict[str, Any]) -> bytes:
    """Encode a small human-readable JSON record with version, type and body checksum."""
    record = {
        "vrepo_format": FORMAT_VERSION,
        "file_type": file_type.label,
        "checksum": _body_checksum(body),
        "body": body,
    }
    return msgspec.json.format(msgspec.json.encode(record, order="sorted"), indent=2) + b"\n"


def decode_json_record(
    data: bytes | bytearray | memoryview, expected_type: FileType, *, what: str
) -> dict[str, Any]:
    """Verify a JSON record (version, type, checksum) and return its body."""
    try:
        record = _json_decoder.decode(data)
    except msgspec.DecodeError as e:
        raise FormatError(f"{what} is not valid JSON ({e}); {_CORRUPT}") from e
    if not isinstance(record, dict):
        raise FormatError(f"{what} is not a vrepo JSON record (not an object); {_CORRUPT}")
    missing = [k for k in ("vrepo_format", "file_type", "checksum", "body") if k not in record]
    if missing:
        raise FormatError(f"{what} lacks the field(s) {', '.join(missing)}; {_CORRUPT}")
    _check_version(record["vrepo_format"], what)
    if record["file_type"] != expected_type.label:
        raise FormatError(
            f"{what} holds a {record['file_type']!r} record, not a {expected_type.label!r}; the "
            f"repository is inconsistent or {_CORRUPT}"
        )
    body = record["body"]
    if not isinstance(body, dict):
        raise FormatError(f"{what} has a body that is not a JSON object; {_CORRUPT}")
    expected = _body_checksum(body)
    if record["checksum"] != expected:
        raise FormatError(
            f"{what} failed its checksum (stored {record['checksum']!r}, computed "
            f"{expected!r}): it was edited or {_CORRUPT}"
        )
    return body


T = TypeVar("T")
R = TypeVar("R")


class StructFile(Generic[T]):
    """One msgspec Struct type stored as a binary vrepo file of one type (MessagePack body)."""

    def __init__(self, file_type: FileType, struct_type: type[T], *, compress: bool = True) -> None:
        self._file_type = file_type
        self._compress = compress
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(struct_type)

    def encode(self, obj: T) -> bytes:
        return encode_binary(self._file_type, self._encoder.encode(obj), compress=self._compress)

    def decode(
        self,
        data: bytes | bytearray | memoryview,
        *,
        what: str,
        then: Callable[[T], R] = lambda obj: obj,
    ) -> R:
        """Verify and decode a file, then apply ``then`` (whose ValueErrors also mean corrupt)."""
        payload = decode_binary(data, self._file_type, what=what)
        try:
            return then(self._decoder.decode(payload))
        except (msgspec.DecodeError, ValueError) as e:
            kind = self._file_type.label.replace("_", " ")
            raise FormatError(f"{what} has an invalid {kind} body ({e}); {_CORRUPT}") from e
