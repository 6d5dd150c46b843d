"""The commit protocol: durability before publication, all-or-nothing, corruption detection."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import zarr

import vrepo
import vrepo.format
from vrepo._sync import run_sync
from vrepo.storage import MemoryStorage, Storage


class RecordingStorage(Storage):
    """Memory storage that logs every call and can fail on demand."""

    def __init__(self) -> None:
        self.inner = MemoryStorage()
        self.calls: list[tuple[str, object]] = []
        self.fail_on: str | None = None  # method name whose next calls raise
        self.fail_times = 1  # how many of them

    def _log(self, op: str, arg: object) -> None:
        self.calls.append((op, arg))
        if self.fail_on == op:
            self.fail_times -= 1
            if not self.fail_times:
                self.fail_on, self.fail_times = None, 1
            raise vrepo.StorageError(f"injected failure in {op}")

    async def get(self, key, byte_range=None):
        return await self.inner.get(key, byte_range)

    async def put(self, key, data):
        self._log("put", key)
        await self.inner.put(key, data)

    async def put_if_absent(self, key, data):
        self._log("put_if_absent", key)
        return await self.inner.put_if_absent(key, data)

    async def delete(self, key):
        await self.inner.delete(key)

    async def exists(self, key):
        return await self.inner.exists(key)

    async def list(self, prefix, *, limit=None):
        return await self.inner.list(prefix, limit=limit)

    async def make_durable(self, keys: Iterable[str]):
        keys = list(keys)
        self._log("make_durable", keys)
        await self.inner.make_durable(keys)

    @property
    def url(self) -> str:
        return "recording://"


def write(session: vrepo.Session, value: int) -> None:
    arr = zarr.open_array(
        session.store, path="x", mode="a", shape=(8,), chunks=(2,), dtype="i8", fill_value=-1
    )
    arr[:] = value


def test_everything_is_durable_before_the_ref_is_published():
    storage = RecordingStorage()
    repo = vrepo.Repository.create(storage, config=vrepo.RepoConfig(inline_threshold_bytes=0))
    session = repo.writable_session()
    write(session, 5)
    storage.calls.clear()
    snapshot_id = session.commit("five")

    ref_writes = [i for i, (op, key) in enumerate(storage.calls) if op == "put_if_absent"]
    assert len(ref_writes) == 1 and storage.calls[ref_writes[0]][1].startswith("refs/branch.main/")
    before_ref = storage.calls[: ref_writes[0]]
    durable = {k for op, keys in before_ref if op == "make_durable" for k in keys}
    written = {key for op, key in storage.calls if op == "put"}
    # every object this commit wrote (and every chunk written by the session before it) is durable
    assert written <= durable
    snapshot = repo.lookup_snapshot(snapshot_id)
    assert snapshot.message == "five"
    assert {f"snapshots/{snapshot_id}", f"transactions/{snapshot_id}"} <= durable
    assert sum(k.startswith("chunks/") for k in durable) == 4
    assert sum(k.startswith("manifests/") for k in durable) == 1


def test_refs_into_one_object_make_it_durable_once():
    storage = RecordingStorage()
    repo = vrepo.Repository.create(storage, config=vrepo.RepoConfig(inline_threshold_bytes=0))
    session = repo.writable_session()
    write(session, 5)
    session.commit("five")
    session = repo.writable_session()
    content = run_sync(session._ensure_content())
    run_sync(storage.put("chunks/0" + "1" * 19, bytes(64)))
    for i in range(4):  # four refs at offsets of one stored object, as packed chunks are
        ref = vrepo.format.ChunkRef.external("0" + "1" * 19, 16, 16 * i)
        content.changes.set_chunk("/x", (i,), ref)
    storage.calls.clear()
    session.commit("packed")
    durable = [k for op, keys in storage.calls if op == "make_durable" for k in keys]
    assert durable.count("chunks/0" + "1" * 19) == 1


@pytest.mark.parametrize("failing", ["put", "make_durable", "put_if_absent"])
def test_a_failed_commit_changes_nothing_and_can_be_retried(failing):
    storage = RecordingStorage()
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session()
    write(session, 1)
    before = session.commit("one")
    write(session, 2)
    storage.fail_on = failing
    # A failed ref write is read back and tried again (tests/test_exactly_once.py): fail all.
    storage.fail_times = 3 if failing == "put_if_absent" else 1
    with pytest.raises(vrepo.StorageError, match="injected"):
        session.commit("two")
    assert repo.lookup_branch("main") == before
    reader = zarr.open_array(repo.readonly_session().store, path="x", mode="r")
    np.testing.assert_array_equal(reader[:], 1)
    assert session.has_uncommitted_changes
    after = session.commit("two, retried")
    assert repo.lookup_snapshot(after).parent_id == before
    np.testing.assert_array_equal(zarr.open_array(repo.readonly_session().store, path="x")[:], 2)


@pytest.fixture
def committed_repo(tmp_path) -> tuple[Path, str]:
    path = tmp_path / "r.vrepo"
    repo = vrepo.Repository.create(path)
    session = repo.writable_session()
    write(session, 3)
    return path, session.commit("three")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("folder", ["snapshots", "manifests"])
def test_corrupt_binary_metadata_raises_format_error(committed_repo, folder):
    path, snapshot_id = committed_repo
    files = sorted((path / folder).iterdir())
    target = path / folder / snapshot_id if folder == "snapshots" else files[0]
    _flip_last_byte(target)
    repo = vrepo.Repository.open(path)
    with pytest.raises(vrepo.FormatError, match="checksum"):
        session = repo.readonly_session()
        zarr.open_array(session.store, path="x", mode="r")[:]


def test_corrupt_ref_and_repo_info_raise_format_error(committed_repo):
    path, _ = committed_repo
    ref = sorted((path / "refs" / "branch.main").iterdir())[0]
    doc = json.loads(ref.read_text())
    doc["body"]["snapshot_id"] = "0" * 20
    ref.write_text(json.dumps(doc))
    with pytest.raises(vrepo.FormatError, match="checksum"):
        vrepo.Repository.open(path).lookup_branch("main")

    info = path / "repo.json"
    doc = json.loads(info.read_text())
    doc["vrepo_format"] = 99  # the header is covered by the checksum: damaged, not newer
    info.write_text(json.dumps(doc))
    with pytest.raises(vrepo.FormatError, match="checksum") as e:
        vrepo.Repository.open(path)
    assert "newer" not in str(e.value)


def test_truncated_chunk_index_is_not_silently_read(committed_repo):
    path, _ = committed_repo
    manifest = next((path / "manifests").iterdir())
    manifest.write_bytes(manifest.read_bytes()[:30])
    with pytest.raises(vrepo.FormatError):
        zarr.open_array(vrepo.Repository.open(path).readonly_session().store, path="x")[:]
