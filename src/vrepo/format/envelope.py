"""The envelope of every metadata file: header, compression and integrity checksum.

Binary files (snapshots, manifests, transaction logs) are a fixed little-endian header
followed by a zstd-compressed body::

    magic b"VREPO\\x00\\r\\n" | version u16 | file type u8 | compression u8 |
    uncompressed length u64 | checksum u32 | body

From format version 2 on, the checksum is the CRC-32C of the 20 header bytes before it and
the stored body, so a damaged header (its version included) reads as corrupt; every later
version keeps that rule, which is how a file is known to be genuinely newer. Version 1 files
(still read) carry the zlib CRC-32 of the stored body only.

Refs and ``repo.json`` are tiny and meant to be read by people, so they are JSON records with
the same information (format version, file type, a checksum: from version 2 on, of the whole
record but the checksum itself; in version 1, ``crc32:`` of the body only).

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
from vrepo.format.checksum import crc32c

FORMAT_VERSION = 3  # 3: split manifests (ManifestRef.piece, .split) and the history index
VIRTUAL_FORMAT_VERSION = 4  # 4: virtual chunk refs; only manifests holding one are version 4
NEWEST_VERSION = VIRTUAL_FORMAT_VERSION  # the newest version this vrepo reads
LEGACY_VERSION = 1  # checksum of the body only (binary: zlib CRC-32; JSON: "crc32:")
MAGIC = b"VREPO\x00\r\n"
COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
ZSTD_LEVEL = 3

_HEADER = struct.Struct("<8sHBBQI")
HEADER_SIZE = _HEADER.size  # 24 bytes
_SEALED = HEADER_SIZE - 4  # the header bytes the checksum covers (all but itself)

_CORRUPT = "the file is corrupt; restore it from a copy"


class FileType(enum.IntEnum):
    """What a metadata file holds; stored in its header so a mix-up is caught on read."""

    SNAPSHOT = 1
    MANIFEST = 2
    TRANSACTION_LOG = 3
    HISTORY_PAGE = 4
    GC_STATE = 5
    REF = 10
    REPO_INFO = 11
    TURN = 12
    EXPIRY = 13

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
    """Refuse an invalid version, or one newer than this vrepo reads (checksum already valid)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{what} has an invalid format version {version!r}; {_CORRUPT}")
    if version > NEWEST_VERSION:
        raise FormatError(
            f"{what} was written by a newer vrepo (format version {version}; this vrepo reads "
            f"up to {NEWEST_VERSION}); upgrade vrepo to read it"
        )


# --- binary files ----------------------------------------------------------------------


def encode_binary(
    file_type: FileType,
    payload: bytes | bytearray | memoryview,
    *,
    compress: bool = True,
    version: int = FORMAT_VERSION,
) -> bytes:
    """Wrap `payload` in the binary envelope: header, (zstd) body, CRC-32C of both.

    ``compress=False`` is for payloads that are mostly compressed already; ``version`` is
    raised above `FORMAT_VERSION` only for files an older vrepo must refuse.
    """
    body = compress_bytes(payload) if compress else payload
    method = COMPRESSION_ZSTD if compress else COMPRESSION_NONE
    header = _HEADER.pack(MAGIC, version, int(file_type), method, len(payload), 0)
    return seal_binary(header + body)


def seal_binary(data: bytes | bytearray) -> bytes:
    """``data`` (a version-2+ file) with its checksum recomputed: what `encode_binary` writes."""
    crc = crc32c(memoryview(data)[HEADER_SIZE:], crc32c(data[:_SEALED]))
    return bytes(data[:_SEALED]) + crc.to_bytes(4, "little") + bytes(data[HEADER_SIZE:])


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

    `what` names the file in error messages, e.g. ``"snapshot 0ABC..."``. The checksum is
    verified before any other header field is believed (version 1: right after the magic,
    version and file type, as version 1 always did).
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
    body = memoryview(data)[HEADER_SIZE:]
    if version != LEGACY_VERSION:  # 2 and later: the checksum covers the header too
        actual = crc32c(body, crc32c(memoryview(data)[:_SEALED]))
        _check_crc(what, "crc32c", crc, actual)
    _check_version(version, what)
    if ftype != expected_type:
        raise FormatError(
            f"{what} holds a {_type_label(ftype)}, not a {expected_type.label}; the repository "
            f"is inconsistent or {_CORRUPT}"
        )
    if version == LEGACY_VERSION:
        _check_crc(what, "crc32", crc, zlib.crc32(body))
    if compression == COMPRESSION_ZSTD:
        return decompress_bytes(body, length, what=what)
    if compression != COMPRESSION_NONE:
        raise FormatError(f"{what} uses unknown compression {compression}; {_CORRUPT}")
    if len(body) != length:
        raise FormatError(
            f"{what} has {len(body)} body bytes, its header says {length}; {_CORRUPT}"
        )
    return body


def _check_crc(what: str, kind: str, stored: int, actual: int) -> None:
    if actual != stored:
        raise FormatError(
            f"{what} failed its checksum ({kind} stored {stored:08x}, computed {actual:08x}): "
            f"it is truncated or {_CORRUPT}"
        )


# --- JSON records ----------------------------------------------------------------------

_json_decoder = msgspec.json.Decoder()
_RECORD_FIELDS = ("vrepo_format", "file_type", "checksum", "body")


def _body_checksum(body: dict[str, Any]) -> str:
    """Version 1: the zlib CRC-32 of the body alone."""
    return f"crc32:{zlib.crc32(msgspec.json.encode(body, order='sorted')):08x}"


def _record_checksum(record: dict[str, Any]) -> str:
    """Version 2 and later: the CRC-32C of every field of the record but ``checksum``."""
    sealed = {k: v for k, v in record.items() if k != "checksum"}
    return f"crc32c:{crc32c(msgspec.json.encode(sealed, order='sorted')):08x}"


def encode_json_record(file_type: FileType, body: dict[str, Any]) -> bytes:
    """Encode a small human-readable JSON record with version, type and checksum."""
    record = {"vrepo_format": FORMAT_VERSION, "file_type": file_type.label, "body": body}
    record["checksum"] = _record_checksum(record)
    return msgspec.json.format(msgspec.json.encode(record, order="sorted"), indent=2) + b"\n"


def decode_json_record(
    data: bytes | bytearray | memoryview, expected_type: FileType, *, what: str
) -> dict[str, Any]:
    """Verify a JSON record (checksum, version, type) and return its body."""
    try:
        record = _json_decoder.decode(data)
    except msgspec.DecodeError as e:
        raise FormatError(f"{what} is not valid JSON ({e}); {_CORRUPT}") from e
    if not isinstance(record, dict):
        raise FormatError(f"{what} is not a vrepo JSON record (not an object); {_CORRUPT}")
    missing = [k for k in _RECORD_FIELDS if k not in record]
    if missing:
        raise FormatError(f"{what} lacks the field(s) {', '.join(missing)}; {_CORRUPT}")
    body, stored = record["body"], record["checksum"]
    legacy = isinstance(stored, str) and stored.startswith("crc32:")
    if legacy and record["vrepo_format"] != LEGACY_VERSION:
        raise FormatError(
            f"{what} claims format version {record['vrepo_format']!r} but has a version-1 "
            f"checksum: its header was damaged or edited; {_CORRUPT}"
        )
    if not legacy:  # 2 and later: checked before the version or type is believed
        _check_record_checksum(what, stored, _record_checksum(record))
    _check_version(record["vrepo_format"], what)
    if record["file_type"] != expected_type.label:
        raise FormatError(
            f"{what} holds a {record['file_type']!r} record, not a {expected_type.label!r}; the "
            f"repository is inconsistent or {_CORRUPT}"
        )
    if not isinstance(body, dict):
        raise FormatError(f"{what} has a body that is not a JSON object; {_CORRUPT}")
    if legacy:
        _check_record_checksum(what, stored, _body_checksum(body))
    return body


def _check_record_checksum(what: str, stored: object, expected: str) -> None:
    if stored != expected:
        raise FormatError(
            f"{what} failed its checksum (stored {stored!r}, computed {expected!r}): it was "
            f"edited or {_CORRUPT}"
        )


T = TypeVar("T")
R = TypeVar("R")


class StructFile(Generic[T]):
    """One msgspec Struct type stored as a binary vrepo file of one type (MessagePack body)."""

    def __init__(self, file_type: FileType, struct_type: type[T], *, compress: bool = True) -> None:
        self._file_type = file_type
        self._compress = compress
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(struct_type)

    def encode(self, obj: T, *, version: int = FORMAT_VERSION) -> bytes:
        payload = self._encoder.encode(obj)
        return encode_binary(self._file_type, payload, compress=self._compress, version=version)

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


class RecordFile(Generic[T]):
    """One msgspec Struct type stored as a JSON record of one type (`encode_json_record`);
    ``name`` is what messages call it ("ref record")."""

    def __init__(self, file_type: FileType, struct_type: type[T], name: str) -> None:
        self._file_type, self._type, self._name = file_type, struct_type, name

    def encode(self, obj: T) -> bytes:
        return encode_json_record(self._file_type, msgspec.to_builtins(obj))

    def decode(self, data: bytes | bytearray | memoryview, *, what: str) -> T:
        """Verify and decode a record; `FormatError` if it is corrupt or invalid."""
        body = decode_json_record(data, self._file_type, what=what)
        try:
            return msgspec.convert(body, self._type)
        except (msgspec.ValidationError, ValueError) as e:
            raise FormatError(f"{what} has an invalid {self._name} ({e}); {_CORRUPT}") from e
