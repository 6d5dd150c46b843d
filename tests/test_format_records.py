"""Chunk refs, snapshots, transaction logs, ref records and repo info: round trips and damage."""

from __future__ import annotations

import json
import struct

import msgspec
import numpy as np
import pytest

from vrepo.errors import FormatError, InvalidArgumentError, InvalidRefNameError
from vrepo.format import (
    FORMAT_VERSION,
    MAX_SEQ,
    REPO_INFO_KEY,
    ArrayChunkChanges,
    ChunkRef,
    FileType,
    LooseObject,
    Manifest,
    ManifestRef,
    NodeSnapshot,
    RefRecord,
    RepoConfig,
    RepoInfo,
    Snapshot,
    TransactionLog,
    decode_ref_record,
    decode_repo_info,
    decode_snapshot,
    decode_transaction_log,
    encode_json_record,
    encode_ref_record,
    encode_repo_info,
    encode_snapshot,
    encode_transaction_log,
    new_id,
    parse_ref,
    ref_dir,
    ref_record_key,
    seq_from_record_key,
    validate_ref_name,
)
from vrepo.format.envelope import HEADER_SIZE, NEWEST_VERSION, seal_binary

# --- ChunkRef ----------------------------------------------------------------------------


def test_chunk_ref_constructors() -> None:
    cid = new_id()
    ext = ChunkRef.external(cid, 100, offset=7)
    assert (ext.chunk_id, ext.offset, ext.length, ext.inline, ext.is_inline) == (
        cid,
        7,
        100,
        None,
        False,
    )
    inl = ChunkRef.inlined(b"abc")
    assert (inl.chunk_id, inl.offset, inl.length, inl.inline, inl.is_inline) == (
        None,
        0,
        3,
        b"abc",
        True,
    )
    for ref in (ext, inl):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(ref), type=ChunkRef) == ref
    assert isinstance(hash(ext), int)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ChunkRef.external("not an id", 10),
        lambda: ChunkRef.external("0" * 20, 10),
        lambda: ChunkRef.external(new_id(), -1),
        lambda: ChunkRef.external(new_id(), 10, offset=-1),
        lambda: ChunkRef.external(new_id(), 2**32),
        lambda: ChunkRef(new_id(), 0, 3, b"abc"),
        lambda: ChunkRef(None, 0, 3, None),
        lambda: ChunkRef(None, 0, 4, b"abc"),
        lambda: ChunkRef.external(new_id(), 10, checksum=-1),
        lambda: ChunkRef.external(new_id(), 10, checksum=2**32),
        lambda: ChunkRef.external(new_id(), 10, checksum=1.0),
        lambda: ChunkRef.external(new_id(), 10, checksum=True),
        lambda: ChunkRef(None, 0, 3, b"abc", 7),  # inline bytes carry no checksum
    ],
)
def test_chunk_ref_invalid(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        make()


def test_chunk_ref_checksum() -> None:
    ref = ChunkRef.external(new_id(), 100, checksum=2**32 - 1)
    assert ref.checksum == 2**32 - 1 and ChunkRef.external(new_id(), 1).checksum is None
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ref), type=ChunkRef) == ref
    assert ref != msgspec.structs.replace(ref, checksum=0)
    # a ref of format version 1 (four fields) decodes without one
    old = msgspec.msgpack.encode([ref.chunk_id, 0, 100, None])
    assert msgspec.msgpack.decode(old, type=ChunkRef).checksum is None


# --- snapshots ---------------------------------------------------------------------------


def _snapshot() -> Snapshot:
    return Snapshot(
        id=new_id(),
        parent_id=new_id(),
        created_at=1_700_000_000_123_456,
        message="load 1982-1992",
        metadata={"author": "me", "n": 3, "nested": {"x": [1.5, None, True]}},
        nodes=(
            NodeSnapshot("/", "group", b'{"zarr_format":3,"node_type":"group"}'),
            NodeSnapshot(
                "/a/temp",
                "array",
                b'{"zarr_format":3,"node_type":"array"}',
                (ManifestRef(new_id(), 10, 1234), ManifestRef(new_id(), 2, 20)),
            ),
        ),
        loose=(
            LooseObject("notes.txt", ChunkRef.inlined(b"hi")),
            LooseObject("big.bin", ChunkRef.external(new_id(), 10**6, checksum=12345)),
            LooseObject("old.bin", ChunkRef.external(new_id(), 10)),
        ),
    )


def test_snapshot_round_trip() -> None:
    s = _snapshot()
    assert decode_snapshot(encode_snapshot(s), what="snapshot X") == s
    root = Snapshot(new_id(), None, 0, "", {}, ())
    assert decode_snapshot(encode_snapshot(root), what="snapshot X") == root


def test_snapshot_node_lookup() -> None:
    s = _snapshot()
    assert s.node("/a/temp") is s.nodes[1]
    assert s.node("/") is s.nodes[0]
    assert s.node("/a") is None


def test_snapshot_validation() -> None:
    node = NodeSnapshot("/", "group", b"{}")
    with pytest.raises(ValueError, match="sorted"):
        Snapshot(new_id(), None, 0, "", {}, (node, node))
    with pytest.raises(ValueError, match="kind"):
        NodeSnapshot("/", "folder", b"{}")
    with pytest.raises(ValueError, match="path"):
        NodeSnapshot("a/b", "group", b"{}")


def test_snapshot_corrupt() -> None:
    data = bytearray(encode_snapshot(_snapshot()))
    data[-1] ^= 0xFF
    with pytest.raises(FormatError, match="checksum"):
        decode_snapshot(bytes(data), what="snapshot 1A2B")
    with pytest.raises(FormatError, match=r"truncated|checksum"):
        decode_snapshot(bytes(data[: HEADER_SIZE + 2]), what="snapshot 1A2B")


def test_snapshot_wrong_type_and_newer() -> None:
    log = encode_transaction_log(TransactionLog(new_id()))
    with pytest.raises(FormatError, match="not a snapshot"):
        decode_snapshot(log, what="snapshot X")
    data = bytearray(encode_snapshot(_snapshot()))
    struct.pack_into("<H", data, 8, NEWEST_VERSION + 1)
    with pytest.raises(FormatError, match="checksum"):  # a damaged version byte
        decode_snapshot(bytes(data), what="snapshot X")
    with pytest.raises(FormatError, match="upgrade"):  # a genuinely newer file
        decode_snapshot(seal_binary(data), what="snapshot X")


def _manifest_file() -> bytes:
    refs = [ChunkRef.external(new_id(), 10, checksum=5), ChunkRef.inlined(b"abc")]
    return Manifest.from_refs(1, [[0], [1]], refs).encode()


_FILES = {
    "snapshot": (lambda: encode_snapshot(_snapshot()), decode_snapshot),
    "transaction log": (
        lambda: encode_transaction_log(TransactionLog(new_id(), new_arrays=("/a",))),
        decode_transaction_log,
    ),
    "manifest": (_manifest_file, lambda data, what: Manifest.decode(data, what=what)),
}


@pytest.mark.parametrize("kind", list(_FILES))
@pytest.mark.parametrize("offset", range(8, HEADER_SIZE))  # version, type, ..., checksum
def test_header_bit_flips_read_as_corrupt(kind: str, offset: int) -> None:
    encode, decode = _FILES[kind]
    good = encode()
    for bit in range(8):
        data = bytearray(good)
        data[offset] ^= 1 << bit
        with pytest.raises(FormatError, match="checksum") as e:
            decode(bytes(data), what=f"{kind} X")
        assert f"{kind} X" in str(e.value) and "newer" not in str(e.value)


def test_snapshot_bad_body() -> None:
    from vrepo.format.envelope import encode_binary

    data = encode_binary(FileType.SNAPSHOT, msgspec.msgpack.encode({"id": 1}))
    with pytest.raises(FormatError, match="invalid snapshot body"):
        decode_snapshot(data, what="snapshot X")


# --- transaction logs --------------------------------------------------------------------


def test_array_chunk_changes() -> None:
    c = ArrayChunkChanges.from_coords("/a", np.array([[3, 1], [0, 2], [3, 1]]))
    assert (c.ndim, c.count) == (2, 2)
    assert c.coords_array().tolist() == [[0, 2], [3, 1]]
    zero = ArrayChunkChanges.from_coords("/s", np.empty((1, 0), dtype=int))
    assert (zero.ndim, zero.count, zero.coords_array().shape) == (0, 1, (1, 0))
    empty = ArrayChunkChanges.from_coords("/e", np.empty((0, 3), dtype=int))
    assert empty.coords_array().shape == (0, 3)
    with pytest.raises(ValueError):
        ArrayChunkChanges.from_coords("/a", np.array([[-1]]))
    with pytest.raises(ValueError):
        ArrayChunkChanges("/a", 2, 3, b"\x00" * 4)


def test_transaction_log_round_trip() -> None:
    t = TransactionLog(
        snapshot_id=new_id(),
        new_groups=("/", "/g"),
        new_arrays=("/g/a",),
        updated_metadata=("/g",),
        deleted_nodes=("/old",),
        chunks=(
            ArrayChunkChanges.from_coords("/g/a", np.array([[0, 0], [1, 5]])),
            ArrayChunkChanges.from_coords("/s", np.empty((1, 0), dtype=int)),
        ),
        loose_keys=("notes.txt",),
    )
    back = decode_transaction_log(encode_transaction_log(t), what="transaction log X")
    assert back == t
    assert back.chunks[0].coords_array().tolist() == [[0, 0], [1, 5]]


def test_transaction_log_corrupt() -> None:
    data = bytearray(encode_transaction_log(TransactionLog(new_id(), new_groups=("/",))))
    data[HEADER_SIZE] ^= 0x10
    with pytest.raises(FormatError, match="checksum"):
        decode_transaction_log(bytes(data), what="transaction log X")


# --- ref records -------------------------------------------------------------------------


def test_ref_keys_sort_newest_first() -> None:
    keys = [ref_record_key("branch", "main", s) for s in (0, 1, 2, 10, 999)]
    assert keys[0] == "refs/branch.main/999999999999.json"
    assert keys[1] == "refs/branch.main/999999999998.json"
    assert sorted(keys) == keys[::-1]
    assert [seq_from_record_key(k) for k in keys] == [0, 1, 2, 10, 999]
    assert seq_from_record_key("000000000000.json") == MAX_SEQ
    assert ref_dir("tag", "v1.0") == "refs/tag.v1.0/"


@pytest.mark.parametrize(
    "junk", ["refs/branch.main/1.json", "x", "refs/branch.main/", "12345678901a.json"]
)
def test_seq_from_junk(junk: str) -> None:
    with pytest.raises(FormatError):
        seq_from_record_key(junk)


def test_ref_key_seq_range() -> None:
    with pytest.raises(ValueError):
        ref_record_key("branch", "main", MAX_SEQ + 1)
    with pytest.raises(ValueError):
        ref_record_key("branch", "main", -1)


@pytest.mark.parametrize("name", ["main", "v1.0", "feature_x-2", "A", "a" * 128, "1.2.3"])
def test_valid_ref_names(name: str) -> None:
    assert validate_ref_name("branch", name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "-x", "a/b", "a..b", "x.json", "a" * 129, "sp ace", "é", "a\n", "_x"],
)
def test_invalid_ref_names(name: str) -> None:
    with pytest.raises(InvalidRefNameError, match="A-Z, a-z, 0-9"):
        validate_ref_name("tag", name)
    with pytest.raises(InvalidRefNameError):
        ref_record_key("tag", name, 0)


def test_parse_ref() -> None:
    assert parse_ref("branch.main") == ("branch", "main")
    assert parse_ref("tag.v1.0") == ("tag", "v1.0")
    with pytest.raises(InvalidRefNameError):
        parse_ref("remote.main")


def _record(**kw: object) -> RefRecord:
    fields: dict[str, object] = {
        "ref": "branch.main",
        "seq": 4,
        "action": "commit",
        "snapshot_id": new_id(),
        "previous_snapshot_id": new_id(),
        "written_at": 1_700_000_000_000_000,
    }
    fields.update(kw)
    return RefRecord(**fields)  # type: ignore[arg-type]


def test_ref_record_round_trip() -> None:
    for r in (
        _record(),
        _record(action="delete", snapshot_id=None),
        _record(action="create", previous_snapshot_id=None),
        _record(operation=new_id()),
    ):
        data = encode_ref_record(r)
        assert json.loads(data)["body"]["ref"] == "branch.main"
        assert decode_ref_record(data, what="ref X") == r


def test_ref_record_written_before_operations_were_recorded_reads() -> None:
    record = _record(operation=new_id())
    envelope = json.loads(encode_ref_record(record))
    del envelope["body"]["operation"]
    old_file = encode_json_record(FileType.REF, envelope["body"])
    assert decode_ref_record(old_file, what="ref X") == msgspec.structs.replace(
        record, operation=None
    )


def test_ref_record_validation() -> None:
    with pytest.raises(ValueError):
        _record(action="merge")
    with pytest.raises(ValueError):
        _record(seq=-1)


def test_ref_record_tampered() -> None:
    data = encode_ref_record(_record())
    record = json.loads(data)
    record["body"]["seq"] = 5
    with pytest.raises(FormatError, match="checksum"):
        decode_ref_record(json.dumps(record).encode(), what="ref X")


def test_ref_record_invalid_body() -> None:
    data = encode_json_record(FileType.REF, {"ref": "branch.main", "seq": "x"})
    with pytest.raises(FormatError, match="invalid ref record"):
        decode_ref_record(data, what="ref X")


# --- repo info ---------------------------------------------------------------------------


def test_repo_info_round_trip() -> None:
    info = RepoInfo(FORMAT_VERSION, 1_700_000_000_000_000, RepoConfig(inline_threshold_bytes=100))
    data = encode_repo_info(info)
    assert decode_repo_info(data, what=REPO_INFO_KEY) == info
    assert RepoInfo(1, 0).config == RepoConfig()


def test_repo_config_validation() -> None:
    with pytest.raises(ValueError, match="inline_threshold_bytes"):
        RepoConfig(inline_threshold_bytes=70000)
    with pytest.raises(ValueError):
        RepoConfig(inline_threshold_bytes=-1)
    for field in ("commit_retries", "commit_backoff_ms", "commit_backoff_max_ms"):
        with pytest.raises(InvalidArgumentError, match=field):
            RepoConfig(**{field: -1})


def test_repo_config_unknown_fields_ignored() -> None:
    body = {"format_version": 1, "created_at": 5, "config": {"future_option": True}}
    data = encode_json_record(FileType.REPO_INFO, body)
    assert decode_repo_info(data, what="repo.json") == RepoInfo(1, 5, RepoConfig())


def test_repo_info_newer_format() -> None:
    body = {"format_version": NEWEST_VERSION + 1, "created_at": 5, "config": {}}
    data = encode_json_record(FileType.REPO_INFO, body)
    with pytest.raises(FormatError, match="upgrade vrepo"):
        decode_repo_info(data, what="repo.json")


def test_repo_info_bad_config_value() -> None:
    body = {"format_version": 1, "created_at": 5, "config": {"inline_threshold_bytes": -5}}
    data = encode_json_record(FileType.REPO_INFO, body)
    with pytest.raises(FormatError, match=r"repo\.json"):
        decode_repo_info(data, what="repo.json")


def test_repo_info_is_not_a_ref() -> None:
    data = encode_repo_info(RepoInfo(1, 0))
    with pytest.raises(FormatError, match="not a 'ref'"):
        decode_ref_record(data, what="ref X")
