"""What is specific to each storage backend: files, fsync, pickling, factories, fsspec.

The behaviour every backend shares is the conformance suite `vrepo.testing.StorageTests`,
run against each backend in test_storage_conformance.py.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

import vrepo.storage._files as files_module
import vrepo.storage._syncfs as syncfs_module
import vrepo.storage.local as local_module
from vrepo.errors import InvalidArgumentError, InvalidKeyError, ObjectNotFoundError, StorageError
from vrepo.storage import (
    FsspecStorage,
    LocalStorage,
    MemoryStorage,
    S3Storage,
    as_storage,
    fsspec_storage,
    local_storage,
    memory_storage,
)
from vrepo.storage._keys import validate_key, validate_prefix


def _all_files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# --- list -----------------------------------------------------------------------------


async def test_list_never_shows_temp_or_hidden_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("refs/branch.main/1.json", b"x")
    (tmp_path / "refs" / "branch.main" / ".1.json.0123abcd.tmp").write_bytes(b"partial")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "k").write_bytes(b"x")
    (tmp_path / ".top.tmp").write_bytes(b"x")
    assert await storage.list("") == ["refs/branch.main/1.json"]
    assert await storage.list("refs/branch.main/") == ["refs/branch.main/1.json"]


async def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("a/b", b"1")
    await storage.put("a/b", b"2")
    await storage.put_if_absent("a/c", b"3")
    await storage.put_if_absent("a/c", b"4")
    assert _all_files(tmp_path) == {"a", "a/b", "a/c"}


# --- make_durable ---------------------------------------------------------------------


async def test_make_durable_syncs_new_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    await storage.put("x/y/z", b"1")
    assert storage._unsynced_dirs  # the new directories still need their parents fsynced
    await storage.make_durable(["x/y/z"])
    assert not storage._unsynced_dirs


needs_syncfs = pytest.mark.skipif(
    syncfs_module.syncfs is None, reason="syncfs that reports errors needs Linux 5.8 or newer"
)


@pytest.fixture
def sync_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str | int]]:
    """Count syncfs and per-file fsync calls; the filesystem counts as a trusted one."""
    calls: dict[str, list[str | int]] = {"syncfs": [], "fsync": []}
    real_syncfs, real_fsync = syncfs_module.syncfs, files_module.fsync_path
    assert real_syncfs is not None
    monkeypatch.setattr(
        syncfs_module, "syncfs", lambda fd: (calls["syncfs"].append(fd), real_syncfs(fd))
    )
    monkeypatch.setattr(
        files_module, "fsync_path", lambda path: (calls["fsync"].append(path), real_fsync(path))
    )
    monkeypatch.setattr(syncfs_module, "filesystem_type", lambda device: "ext4")
    return calls


async def _put_all(storage: LocalStorage, keys: list[str]) -> None:
    for key in keys:
        await storage.put(key, key.encode())


@needs_syncfs
async def test_make_durable_many_objects_syncs_each_filesystem_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_calls: dict[str, list[str | int]]
) -> None:
    monkeypatch.setattr(syncfs_module, "dirty_bytes", lambda: 1 << 40)  # a busy machine
    storage = LocalStorage(tmp_path / "root")
    keys = [f"chunks/{i:04d}" for i in range(1000)] + [f"deep/new/{i:04d}" for i in range(100)]
    await _put_all(storage, keys)
    await storage.make_durable(keys)
    assert len(sync_calls["syncfs"]) == 1 and not storage._unsynced_dirs
    with pytest.raises(ObjectNotFoundError) as info:
        await storage.make_durable([*keys, "chunks/missing"])
    assert info.value.key == "chunks/missing"


@needs_syncfs
async def test_make_durable_few_objects_uses_syncfs_only_on_a_quiet_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_calls: dict[str, list[str | int]]
) -> None:
    storage = LocalStorage(tmp_path / "root")
    keys = [f"chunks/{i:02d}" for i in range(20)]
    await _put_all(storage, keys)
    monkeypatch.setattr(syncfs_module, "dirty_bytes", lambda: 1 << 20)
    await storage.make_durable(keys)
    assert len(sync_calls["syncfs"]) == 1 and not sync_calls["fsync"]
    # Much dirty data elsewhere: syncfs would wait for it, so each file is fsynced instead.
    monkeypatch.setattr(syncfs_module, "dirty_bytes", lambda: 1 << 30)
    await storage.make_durable(keys)
    assert len(sync_calls["syncfs"]) == 1 and len(sync_calls["fsync"]) == len(keys) + 1
    monkeypatch.setattr(syncfs_module, "dirty_bytes", lambda: None)  # no /proc/meminfo
    await storage.make_durable(keys)
    assert len(sync_calls["syncfs"]) == 1


@needs_syncfs
@pytest.mark.parametrize("fs_type", ["nfs4", "fuse.sshfs", "cifs", None])
async def test_make_durable_fsyncs_each_file_where_syncfs_is_not_trusted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sync_calls: dict[str, list[str | int]],
    fs_type: str | None,
) -> None:
    monkeypatch.setattr(syncfs_module, "filesystem_type", lambda device: fs_type)
    monkeypatch.setattr(syncfs_module, "dirty_bytes", lambda: 0)
    storage = LocalStorage(tmp_path / "root")
    keys = [f"chunks/{i:04d}" for i in range(1100)]
    await _put_all(storage, keys)
    await storage.make_durable(keys)
    assert not sync_calls["syncfs"] and len(sync_calls["fsync"]) > len(keys)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_filesystem_type_reads_the_mount_table(tmp_path: Path) -> None:
    found = syncfs_module.filesystem_type(os.stat(tmp_path).st_dev)
    with Path("/proc/self/mountinfo").open() as mounts:
        mount_types = {line.partition(" - ")[2].split()[0] for line in mounts}
    assert found in mount_types
    assert syncfs_module.filesystem_type(os.makedev(4095, 1048575)) is None
    assert syncfs_module.dirty_bytes() is not None


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.18.44-fc-v669", (6, 18)),
        ("5.4.0-150-generic", (5, 4)),
        ("5.8rc1", (5, 8)),
        ("x", (0, 0)),
    ],
)
def test_kernel_version_decides_whether_syncfs_is_trusted(
    monkeypatch: pytest.MonkeyPatch, release: str, version: tuple[int, int]
) -> None:
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", release, "", "")))
    assert syncfs_module._kernel_version() == version
    loaded = syncfs_module._load()
    if version < (5, 8):
        assert loaded is None  # older kernels' syncfs does not report writeback errors
    elif sys.platform.startswith("linux"):
        assert loaded is not None


async def test_put_if_absent_syncs_new_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    assert await storage.put_if_absent("refs/branch.main/1.json", b"1")
    assert not storage._unsynced_dirs


# --- key validation -------------------------------------------------------------------


def test_valid_keys_accepted() -> None:
    for key in ["a", "a/b", "refs/branch.main/1.json", "x" * 1024, "a.b/c..d/e.", "a/b:c"]:
        assert validate_key(key) == key


def test_invalid_key_message_explains() -> None:
    with pytest.raises(InvalidKeyError, match=r"'\.\./x'.*'\.'.*valid key is a relative"):
        validate_key("../x")
    with pytest.raises(InvalidKeyError, match="must be a str"):
        validate_key(b"a")  # type: ignore[arg-type]


def test_valid_prefixes_accepted() -> None:
    for prefix in ["", "a", "a/", "refs/branch.ma", "refs/branch.main/"]:
        assert validate_prefix(prefix) == prefix


# --- identity, pickling, repr ---------------------------------------------------------


def test_local_pickle_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    clone = pickle.loads(pickle.dumps(storage))
    assert clone == storage
    assert hash(clone) == hash(storage)
    assert clone is not storage
    assert clone.root == storage.root


def test_local_equality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LocalStorage(tmp_path) == LocalStorage(str(tmp_path))
    assert LocalStorage(tmp_path / "a") != LocalStorage(tmp_path / "b")
    assert LocalStorage(tmp_path) != MemoryStorage()
    monkeypatch.chdir(tmp_path)
    relative = LocalStorage("repo")
    assert relative.root == str(tmp_path / "repo")
    assert relative == LocalStorage(tmp_path / "repo")


async def test_local_root_created_lazily(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    storage = LocalStorage(root)
    assert not root.exists()
    assert await storage.list("") == []
    assert not await storage.exists("a")
    assert not root.exists()
    await storage.put("a", b"1")
    assert (root / "a").read_bytes() == b"1"


async def test_memory_pickle_same_process() -> None:
    storage = MemoryStorage()
    await storage.put("a", b"1")
    clone = pickle.loads(pickle.dumps(storage))
    assert clone is storage
    assert await clone.get("a") == b"1"
    assert MemoryStorage() != storage


def test_memory_pickle_after_garbage_collection() -> None:
    blob = pickle.dumps(MemoryStorage())
    gc.collect()
    with pytest.raises(StorageError, match="only inside the process that created it"):
        pickle.loads(blob)


def test_memory_pickle_other_process() -> None:
    storage = MemoryStorage()
    script = (
        "import pickle, sys\n"
        "from vrepo.errors import StorageError\n"
        "try:\n"
        "    pickle.loads(sys.stdin.buffer.read())\n"
        "except StorageError as exc:\n"
        "    print('StorageError:', exc)\n"
        "else:\n"
        "    print('loaded')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(storage),
        capture_output=True,
        check=True,
        timeout=120,
    )
    out = result.stdout.decode()
    assert out.startswith("StorageError:"), out + result.stderr.decode()
    assert "use local or S3 storage" in out


def test_repr_and_url(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path)
    assert local.url == f"file://{tmp_path}"
    assert repr(local) == f"LocalStorage('file://{tmp_path}')"
    memory = MemoryStorage()
    assert memory.url.startswith("memory://")
    assert len(memory.url) == len("memory://") + 8
    assert repr(memory) == f"MemoryStorage({memory.url!r})"


# --- factories ------------------------------------------------------------------------


def test_factories(tmp_path: Path) -> None:
    assert local_storage(tmp_path) == LocalStorage(tmp_path)
    assert isinstance(memory_storage(), MemoryStorage)
    memory = MemoryStorage()
    assert as_storage(memory) is memory
    assert as_storage(tmp_path) == LocalStorage(tmp_path)
    assert as_storage(str(tmp_path)) == LocalStorage(tmp_path)
    assert as_storage(f"file://{tmp_path}") == LocalStorage(tmp_path)
    assert as_storage("s3://bucket/repo/x") == S3Storage("bucket", "repo/x")
    assert as_storage("s3://bucket") == S3Storage("bucket")
    options = {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1"}
    assert as_storage("s3://bucket/repo", options) == S3Storage(
        "bucket", "repo", endpoint_url="http://127.0.0.1:9000", region="eu-west-1"
    )
    with pytest.raises(StorageError, match=r"'gs'.*file://.*s3://"):
        as_storage("gs://bucket/repo")
    with pytest.raises(InvalidArgumentError, match="storage_options apply only to s3://"):
        as_storage(tmp_path, {"region": "x"})
    with pytest.raises(InvalidArgumentError, match="storage_options apply only to s3://"):
        as_storage(memory, {"region": "x"})
    with pytest.raises(InvalidArgumentError, match="got int"):
        as_storage(42)  # type: ignore[arg-type]


# --- local failure paths --------------------------------------------------------------


async def test_failed_put_leaves_no_temp_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("a/b/c", b"1")
    with pytest.raises(StorageError, match="'a/b'"):
        await storage.put("a/b", b"cannot replace a directory")
    assert _all_files(tmp_path) == {"a", "a/b", "a/b/c"}


async def test_put_recreates_directory_removed_behind_its_back(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("a/b", b"1")
    os.unlink(tmp_path / "a" / "b")
    os.rmdir(tmp_path / "a")
    await storage.put("a/b", b"2")
    assert await storage.get("a/b") == b"2"


async def test_put_new_never_replaces_and_recreates_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put_new("chunks/a", b"first")
    with pytest.raises(StorageError):
        await storage.put_new("chunks/a", b"second")  # in place, but never over an object
    assert await storage.get("chunks/a") == b"first"
    shutil.rmtree(tmp_path / "chunks")
    await storage.put_new("chunks/b", b"again")
    assert await storage.get("chunks/b") == b"again"


async def test_put_if_absent_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(local_module.os, "link", no_links)
    storage = LocalStorage(tmp_path)
    assert await storage.put_if_absent("refs/1", b"first")
    assert not await storage.put_if_absent("refs/1", b"second")
    assert await storage.get("refs/1") == b"first"
    assert not storage._links_supported
    assert await storage.put_if_absent("refs/2", b"third")
    assert _all_files(tmp_path) == {"refs", "refs/1", "refs/2"}


# --- fsspec ---------------------------------------------------------------------------


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://vrepo-test-{uuid.uuid4().hex}"
    yield root
    with contextlib.suppress(FileNotFoundError):
        fsspec.filesystem("memory").rm(root, recursive=True)


async def test_fsspec_refuses_put_if_absent_without_single_writer(memory_root: str) -> None:
    storage = fsspec_storage(memory_root)
    assert not storage.supports_atomic_create
    with pytest.raises(StorageError) as info:
        await storage.put_if_absent("refs/branch.main/1.json", b"x")
    message = str(info.value)
    assert "'refs/branch.main/1.json'" in message
    assert "cannot create" in message and "atomically" in message
    assert "overwrite each other" in message
    assert "local storage" in message and "S3 storage" in message
    assert "single_writer=True" in message
    assert not await storage.exists("refs/branch.main/1.json")


async def test_fsspec_with_a_filesystem_object(memory_root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    storage = fsspec_storage(fs, memory_root)
    assert storage == FsspecStorage(fs, memory_root)
    assert storage == fsspec_storage(memory_root)
    assert storage != fsspec_storage(memory_root, single_writer=True)
    assert storage.url == memory_root.replace("memory://", "memory:///")
    await storage.put("a/b", b"x")
    assert await fsspec_storage(memory_root).get("a/b") == b"x"
    local = fsspec_storage(f"file://{tmp_path}/repo", single_writer=True)
    await local.put("chunks/deep/c", b"local")
    assert (tmp_path / "repo" / "chunks" / "deep" / "c").read_bytes() == b"local"
    assert await local.list("chunks/") == ["chunks/deep/c"]
    with pytest.raises(InvalidArgumentError, match="root only with a filesystem"):
        fsspec_storage(memory_root, root="x")
    with pytest.raises(InvalidArgumentError, match="storage options apply only to a URL"):
        fsspec_storage(fs, memory_root, auto_mkdir=True)


def test_fsspec_pickle(memory_root: str) -> None:
    storage = fsspec_storage(memory_root, single_writer=True)
    clone = pickle.loads(pickle.dumps(storage))
    assert clone == storage
    assert hash(clone) == hash(storage)
    assert clone.single_writer


def test_fsspec_rejects_async_mode_filesystem() -> None:
    fs = fsspec.filesystem("http", asynchronous=True, skip_instance_cache=True)
    with pytest.raises(InvalidArgumentError, match="synchronous mode"):
        FsspecStorage(fs, "http://example.invalid/")
