"""The binary envelope and JSON records: round trips and every kind of damage."""

from __future__ import annotations

import json
import struct
import zlib

import google_crc32c
import msgspec
import pytest

from vrepo.errors import FormatError
from vrepo.format.envelope import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    NEWEST_VERSION,
    FileType,
    decode_binary,
    decode_json_record,
    encode_binary,
    encode_json_record,
)

PAYLOAD = b"some payload " * 100


def _reseal(data: bytes | bytearray) -> bytes:
    """A version-2 file with its checksum recomputed by the rule in docs/format.md: the
    CRC-32C of the 20 header bytes before the checksum and of the stored body."""
    crc = google_crc32c.value(bytes(data[:20]) + bytes(data[HEADER_SIZE:]))
    return bytes(data[:20]) + struct.pack("<I", crc) + bytes(data[HEADER_SIZE:])


def _v1_binary(file_type: int, payload: bytes) -> bytes:
    """A version-1 file as vrepo wrote it until format version 2: uncompressed here, zlib
    CRC-32 of the body only."""
    return struct.pack("<8sHBBQI", MAGIC, 1, file_type, 0, len(payload), zlib.crc32(payload)) + (
        payload
    )


def test_binary_round_trip() -> None:
    data = encode_binary(FileType.SNAPSHOT, PAYLOAD)
    assert data.startswith(MAGIC)
    assert len(data) < len(PAYLOAD)  # compressed
    assert decode_binary(data, FileType.SNAPSHOT, what="snapshot X") == PAYLOAD


@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 40])
def test_binary_round_trip_sizes(payload: bytes) -> None:
    data = encode_binary(FileType.MANIFEST, payload)
    assert decode_binary(memoryview(data), FileType.MANIFEST, what="m") == payload


def test_header_layout() -> None:
    data = encode_binary(FileType.TRANSACTION_LOG, PAYLOAD)
    magic, version, ftype, comp, length, _crc = struct.unpack_from("<8sHBBQI", data)
    assert (magic, version, ftype, comp, length) == (MAGIC, FORMAT_VERSION, 3, 1, len(PAYLOAD))
    assert HEADER_SIZE == 24
    assert _reseal(data) == data  # the checksum covers the header and the body


@pytest.mark.parametrize("offset", range(8, 20))  # every header byte after the magic
@pytest.mark.parametrize("bit", [0, 1, 7])
def test_flipped_header_bit_is_corrupt(offset: int, bit: int) -> None:
    data = bytearray(encode_binary(FileType.SNAPSHOT, PAYLOAD))
    data[offset] ^= 1 << bit
    with pytest.raises(FormatError, match="checksum") as e:
        decode_binary(bytes(data), FileType.SNAPSHOT, what="snapshot X")
    assert "newer" not in str(e.value) and "restore" in str(e.value)


def test_version_1_files_still_read() -> None:
    data = _v1_binary(FileType.MANIFEST, PAYLOAD)
    assert decode_binary(data, FileType.MANIFEST, what="m") == PAYLOAD
    compressed = bytearray(encode_binary(FileType.MANIFEST, PAYLOAD))  # v1 with zstd, too
    struct.pack_into("<H", compressed, 8, 1)
    struct.pack_into("<I", compressed, 20, zlib.crc32(compressed[HEADER_SIZE:]))
    assert decode_binary(bytes(compressed), FileType.MANIFEST, what="m") == PAYLOAD


@pytest.mark.parametrize("bit", range(16))
def test_version_1_file_with_a_flipped_version_bit_is_corrupt_not_newer(bit: int) -> None:
    data = bytearray(_v1_binary(FileType.SNAPSHOT, PAYLOAD))
    version = struct.unpack_from("<H", data, 8)[0] ^ (1 << bit)
    struct.pack_into("<H", data, 8, version)
    with pytest.raises(FormatError, match=r"checksum|invalid format version") as e:
        decode_binary(bytes(data), FileType.SNAPSHOT, what="snapshot X")
    assert "newer" not in str(e.value)


def test_version_1_body_damage_is_still_caught() -> None:
    data = bytearray(_v1_binary(FileType.SNAPSHOT, PAYLOAD))
    data[HEADER_SIZE + 3] ^= 0x10
    with pytest.raises(FormatError, match=r"checksum \(crc32 stored"):
        decode_binary(bytes(data), FileType.SNAPSHOT, what="snapshot X")


def test_flipped_body_byte_fails_checksum() -> None:
    data = bytearray(encode_binary(FileType.SNAPSHOT, PAYLOAD))
    data[HEADER_SIZE + 5] ^= 0x01
    with pytest.raises(FormatError, match="checksum") as e:
        decode_binary(bytes(data), FileType.SNAPSHOT, what="snapshot 1A2B")
    assert "snapshot 1A2B" in str(e.value) and "restore" in str(e.value)


@pytest.mark.parametrize("keep", [0, 5, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3, -1])
def test_truncated(keep: int) -> None:
    data = encode_binary(FileType.SNAPSHOT, PAYLOAD)
    with pytest.raises(FormatError, match="snapshot 1A2B"):
        decode_binary(data[:keep], FileType.SNAPSHOT, what="snapshot 1A2B")


def test_wrong_magic() -> None:
    data = b"NOTVREPO" + encode_binary(FileType.SNAPSHOT, PAYLOAD)[8:]
    with pytest.raises(FormatError, match="not a vrepo file"):
        decode_binary(data, FileType.SNAPSHOT, what="snapshot X")


def test_wrong_file_type() -> None:
    data = encode_binary(FileType.MANIFEST, PAYLOAD)
    with pytest.raises(FormatError, match="holds a manifest, not a snapshot"):
        decode_binary(data, FileType.SNAPSHOT, what="snapshot X")


def test_unknown_file_type() -> None:
    data = bytearray(encode_binary(FileType.MANIFEST, PAYLOAD))
    data[10] = 99
    with pytest.raises(FormatError, match="unknown file type 99"):
        decode_binary(_reseal(data), FileType.MANIFEST, what="manifest X")


def test_newer_version() -> None:
    data = bytearray(encode_binary(FileType.SNAPSHOT, PAYLOAD))
    struct.pack_into("<H", data, 8, NEWEST_VERSION + 1)  # a newer file, checksum and all
    with pytest.raises(FormatError, match=r"newer vrepo.*upgrade vrepo"):
        decode_binary(_reseal(data), FileType.SNAPSHOT, what="snapshot X")


def test_version_zero() -> None:
    data = bytearray(encode_binary(FileType.SNAPSHOT, PAYLOAD))
    struct.pack_into("<H", data, 8, 0)
    with pytest.raises(FormatError, match="invalid format version"):
        decode_binary(_reseal(data), FileType.SNAPSHOT, what="snapshot X")


def test_wrong_length_in_header() -> None:
    data = bytearray(encode_binary(FileType.SNAPSHOT, PAYLOAD))
    struct.pack_into("<Q", data, 12, len(PAYLOAD) - 1)
    with pytest.raises(FormatError, match="snapshot X"):
        decode_binary(_reseal(data), FileType.SNAPSHOT, what="snapshot X")


def test_unknown_compression() -> None:
    data = bytearray(encode_binary(FileType.SNAPSHOT, PAYLOAD))
    data[11] = 7
    with pytest.raises(FormatError, match="compression"):
        decode_binary(_reseal(data), FileType.SNAPSHOT, what="snapshot X")


def test_threads_share_nothing() -> None:
    from concurrent.futures import ThreadPoolExecutor

    payloads = [bytes([i]) * (1000 + i) for i in range(64)]

    def work(p: bytes) -> bool:
        return decode_binary(encode_binary(FileType.MANIFEST, p), FileType.MANIFEST, what="m") == p

    with ThreadPoolExecutor(8) as ex:
        assert all(ex.map(work, payloads))


# --- JSON records ----------------------------------------------------------------------

BODY = {"ref": "branch.main", "seq": 3, "nested": {"b": [1, 2], "a": "é"}, "none": None}


def test_json_round_trip_and_shape() -> None:
    data = encode_json_record(FileType.REF, BODY)
    assert data.endswith(b"\n") and b"\n  " in data  # readable
    record = json.loads(data)
    assert record["vrepo_format"] == FORMAT_VERSION and record["file_type"] == "ref"
    assert record["checksum"].startswith("crc32c:") and len(record["checksum"]) == 15
    assert list(record) == sorted(record)
    assert decode_json_record(data, FileType.REF, what="ref X") == BODY
    assert _edit(data, seal=True) == _edit(data)  # the checksum is the documented one


def _edit(data: bytes, *, seal: bool = False, **changes: object) -> bytes:
    """``data`` with fields changed; ``seal``: with the version-2 checksum recomputed (the
    CRC-32C of the record without ``checksum``, as compact JSON with sorted keys)."""
    record = json.loads(data)
    record.update(changes)
    if seal:
        sealed = {k: v for k, v in record.items() if k != "checksum"}
        crc = google_crc32c.value(msgspec.json.encode(sealed, order="sorted"))
        record["checksum"] = f"crc32c:{crc:08x}"
    return json.dumps(record).encode()


def _v1_record(file_type: str, body: dict) -> bytes:
    """A JSON record as vrepo wrote it until format version 2: CRC-32 of the body only."""
    crc = zlib.crc32(msgspec.json.encode(body, order="sorted"))
    record = {"body": body, "checksum": f"crc32:{crc:08x}", "file_type": file_type}
    return json.dumps({**record, "vrepo_format": 1}).encode()


def test_json_version_1_records_still_read() -> None:
    data = _v1_record("ref", BODY)
    assert decode_json_record(data, FileType.REF, what="ref X") == BODY
    with pytest.raises(FormatError, match="checksum"):
        decode_json_record(_edit(data, body={**BODY, "seq": 9}), FileType.REF, what="ref X")


@pytest.mark.parametrize("version", [0, 2, 3, 5, 9, 17, 33, 65, 129, 257, "1", None, True])
def test_json_version_1_record_with_a_damaged_version_is_corrupt(version: object) -> None:
    data = _edit(_v1_record("ref", BODY), vrepo_format=version)
    with pytest.raises(FormatError, match="corrupt") as e:
        decode_json_record(data, FileType.REF, what="ref X")
    assert "newer" not in str(e.value)


@pytest.mark.parametrize(
    "changes",
    [{"vrepo_format": 2}, {"vrepo_format": 1}, {"file_type": "repo_info"}, {"extra": 1}],
)
def test_json_header_fields_are_covered_by_the_checksum(changes: dict) -> None:
    data = _edit(encode_json_record(FileType.REF, BODY), **changes)
    with pytest.raises(FormatError, match="checksum") as e:
        decode_json_record(data, FileType.REF, what="ref X")
    assert "newer" not in str(e.value)


def test_json_unknown_checksum_scheme() -> None:
    data = _edit(encode_json_record(FileType.REF, BODY), checksum="sha1:00")
    with pytest.raises(FormatError, match="checksum"):
        decode_json_record(data, FileType.REF, what="ref X")


def test_json_edited_body_fails_checksum() -> None:
    data = encode_json_record(FileType.REF, BODY)
    edited = _edit(data, body={**BODY, "seq": 4})
    with pytest.raises(FormatError, match="checksum") as e:
        decode_json_record(edited, FileType.REF, what="ref record refs/branch.main/1.json")
    assert "refs/branch.main/1.json" in str(e.value)


def test_json_reformatted_is_fine() -> None:
    data = encode_json_record(FileType.REF, BODY)
    compact = json.dumps(json.loads(data), separators=(",", ":")).encode()
    assert decode_json_record(compact, FileType.REF, what="ref X") == BODY


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"vrepo_format": 1}', "lacks"),
    ],
)
def test_json_garbage(data: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        decode_json_record(data, FileType.REF, what="ref X")


def test_json_wrong_type() -> None:
    data = encode_json_record(FileType.REPO_INFO, BODY)
    with pytest.raises(FormatError, match="'repo_info' record, not a 'ref'"):
        decode_json_record(data, FileType.REF, what="ref X")


def test_json_newer_version() -> None:
    data = _edit(encode_json_record(FileType.REF, BODY), seal=True, vrepo_format=NEWEST_VERSION + 1)
    with pytest.raises(FormatError, match="upgrade vrepo"):
        decode_json_record(data, FileType.REF, what="ref X")


def test_json_body_not_object() -> None:
    data = _edit(encode_json_record(FileType.REF, BODY), seal=True, body=[1])
    with pytest.raises(FormatError, match="not a JSON object"):
        decode_json_record(data, FileType.REF, what="ref X")


def test_json_truncated() -> None:
    data = encode_json_record(FileType.REF, BODY)
    with pytest.raises(FormatError):
        decode_json_record(data[: len(data) // 2], FileType.REF, what="ref X")
