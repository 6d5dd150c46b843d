"""Repositories in on-storage format version 1 stay readable, and writable.

``tests/data/format_v1/`` was written by vrepo before format version 2 (see
``tests/data/make_format_v1.py``): its snapshots, manifests and transaction logs carry the
zlib CRC-32 of their body only, its JSON records a ``crc32:`` body checksum, and its chunk
refs no checksum (such chunks are checked for length only).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype

import vrepo
from vrepo._sync import run_sync

FIXTURE = Path(__file__).parent / "data" / "format_v1"
TEMP = np.arange(64 * 64, dtype="float32").reshape(64, 64) / 7


@pytest.fixture
def v1_repo(tmp_path: Path) -> Path:
    """A copy of the fixture (tests may write to it)."""
    path = tmp_path / "v1.vrepo"
    shutil.copytree(FIXTURE, path)
    return path


def _version(path: Path) -> int:
    return struct.unpack_from("<H", path.read_bytes(), 8)[0]


def test_the_fixture_is_version_1() -> None:
    for folder in ("snapshots", "manifests", "transactions"):
        assert {_version(p) for p in (FIXTURE / folder).iterdir()} == {1}
    for record in [FIXTURE / "repo.json", *FIXTURE.glob("refs/*/*.json")]:
        doc = json.loads(record.read_text())
        assert doc["vrepo_format"] == 1 and doc["checksum"].startswith("crc32:")


def test_version_1_repository_reads(v1_repo: Path) -> None:
    repo = vrepo.Repository.open(v1_repo)
    assert [s.message for s in repo.ancestry(branch="main")][:2] == ["second", "first"]
    latest = zarr.open_group(repo.readonly_session("main").store, mode="r")
    expected = TEMP.copy()
    expected[32:, 32:] = -1.0
    np.testing.assert_array_equal(latest["temp"][...], expected)
    np.testing.assert_array_equal(latest["small"][...], [1, 2, 3, 4])
    first = zarr.open_group(repo.readonly_session(tag="v1").store, mode="r")
    np.testing.assert_array_equal(first["temp"][...], TEMP)
    blob = run_sync(repo.readonly_session("main").store.get("extra/blob"))
    assert blob.to_bytes() == bytes(range(250)) * 4


def _temp_chunk(repo: vrepo.Repository, coords: tuple[int, ...]) -> Path:
    content = run_sync(repo.readonly_session("main")._ensure_content())
    ref = run_sync(content.chunk_ref("/temp", coords))
    assert ref.checksum is None  # written before chunk checksums were recorded
    return Path(repo.storage.url.removeprefix("file://")) / "chunks" / ref.chunk_id


def test_version_1_chunks_are_checked_for_length(v1_repo: Path) -> None:
    repo = vrepo.Repository.open(v1_repo)
    path = _temp_chunk(repo, (0, 1))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(vrepo.FormatError, match=r"chunk \(0, 1\) of array /temp .*returned"):
        zarr.open_array(repo.readonly_session("main").store, path="temp")[...]


def test_committing_to_a_version_1_repository(v1_repo: Path) -> None:
    repo = vrepo.Repository.open(v1_repo)
    session = repo.writable_session("main")
    temp = zarr.open_array(session.store, path="temp", mode="r+")
    temp[:32, :32] = 5.0
    snapshot_id = session.commit("third, by format version 2")
    assert _version(v1_repo / "snapshots" / snapshot_id) == vrepo.format.FORMAT_VERSION
    content = run_sync(repo.readonly_session("main")._ensure_content())
    new, kept = (run_sync(content.chunk_ref("/temp", c)) for c in [(0, 0), (1, 1)])
    assert new.checksum is not None and kept.checksum is None  # one manifest, both kinds
    reopened = vrepo.Repository.open(v1_repo)
    got = zarr.open_array(reopened.readonly_session("main").store, path="temp")[...]
    assert (got[:32, :32] == 5.0).all() and (got[32:, 32:] == -1.0).all()
    first = zarr.open_array(reopened.readonly_session(tag="v1").store, path="temp")[...]
    np.testing.assert_array_equal(first, TEMP)
    assert next(iter(reopened.ancestry(branch="main"))).message == "third, by format version 2"
    # a new chunk is verified, an old one only for length
    path = Path(str(v1_repo)) / "chunks" / new.chunk_id
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(vrepo.FormatError, match=r"chunk \(0, 0\) of array /temp .*CRC-32C"):
        zarr.open_array(reopened.readonly_session("main").store, path="temp")[...]


@pytest.mark.parametrize("folder", ["snapshots", "manifests", "transactions"])
@pytest.mark.parametrize("bit", range(16))
def test_a_flipped_version_bit_in_a_version_1_file_is_corrupt_not_newer(
    v1_repo: Path, folder: str, bit: int
) -> None:
    target = sorted((v1_repo / folder).iterdir())[0]
    data = bytearray(target.read_bytes())
    struct.pack_into("<H", data, 8, 1 ^ (1 << bit))
    target.write_bytes(bytes(data))
    repo = vrepo.Repository.open(v1_repo)
    objects = repo.readonly_session("main")._objects
    read = {
        "snapshots": objects.get_snapshot,
        "manifests": objects.get_manifest,
        "transactions": objects.get_transaction_log,
    }[folder]
    with pytest.raises(vrepo.FormatError, match=r"corrupt|checksum") as e:
        run_sync(read(target.name))
    assert "newer" not in str(e.value) and target.name in str(e.value)


@pytest.mark.parametrize("version", [0, 2, 3, 5, 9, 17, 33, 65, 129, 257])
def test_a_damaged_version_in_a_version_1_record_is_corrupt_not_newer(
    v1_repo: Path, version: int
) -> None:
    for record in (v1_repo / "repo.json", v1_repo / "refs/branch.main/999999999997.json"):
        original = record.read_text()
        doc = json.loads(original)
        doc["vrepo_format"] = version
        record.write_text(json.dumps(doc))
        with pytest.raises(vrepo.FormatError, match="corrupt") as e:
            vrepo.Repository.open(v1_repo).lookup_branch("main")
        assert "newer" not in str(e.value)
        record.write_text(original)


def test_a_version_1_opaque_object_reads_through_zarr_buffers(v1_repo: Path) -> None:
    store = vrepo.Repository.open(v1_repo).readonly_session("main").store
    got = run_sync(store.get("extra/blob", default_buffer_prototype()))
    assert len(got) == 1000
