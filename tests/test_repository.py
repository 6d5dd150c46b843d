"""Repository API: creation, branches, tags, history, time travel, config, errors."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest
import zarr

import vrepo
from vrepo._sync import run_sync
from vrepo.engine.refs import history


@pytest.fixture(params=["local", "memory"])
def storage(request, tmp_path) -> vrepo.Storage:
    if request.param == "local":
        return vrepo.local_storage(tmp_path / "repo.vrepo")
    return vrepo.memory_storage()


@pytest.fixture
def repo(storage) -> vrepo.Repository:
    return vrepo.Repository.create(storage)


def write_commit(repo: vrepo.Repository, value: float, branch: str = "main") -> str:
    session = repo.writable_session(branch)
    arr = zarr.open_array(session.store, path="x", mode="a", shape=(4,), chunks=(2,), dtype="f8")
    arr[:] = value
    return session.commit(f"x = {value}")


def read_x(session: vrepo.Session) -> np.ndarray:
    return zarr.open_array(session.store, path="x", mode="r")[:]


def test_create_open_exists(tmp_path):
    path = tmp_path / "r.vrepo"
    assert not vrepo.Repository.exists(path)
    with pytest.raises(vrepo.RepositoryNotFoundError, match=r"Repository\.create"):
        vrepo.Repository.open(path)
    repo = vrepo.Repository.create(path)
    assert vrepo.Repository.exists(path) and vrepo.Repository.exists(str(path))
    with pytest.raises(vrepo.RepositoryExistsError, match=r"Repository\.open"):
        vrepo.Repository.create(path)
    reopened = vrepo.Repository.open(path)
    assert reopened.list_branches() == ["main"]
    assert reopened.lookup_branch("main") == repo.lookup_branch("main")
    assert vrepo.Repository.open_or_create(path).lookup_branch("main") == repo.lookup_branch("main")
    [first] = list(repo.ancestry(branch="main"))
    assert first.parent_id is None and first.message == "Repository initialized"


def test_open_or_create_creates(tmp_path):
    repo = vrepo.Repository.open_or_create(tmp_path / "new.vrepo")
    assert repo.list_branches() == ["main"]


def test_config_is_persisted(tmp_path):
    path = tmp_path / "r.vrepo"
    vrepo.Repository.create(path, config=vrepo.RepoConfig(inline_threshold_bytes=0))
    repo = vrepo.Repository.open(path)
    assert repo.config.inline_threshold_bytes == 0
    repo.save_config(vrepo.RepoConfig(inline_threshold_bytes=64))
    assert vrepo.Repository.open(path).config.inline_threshold_bytes == 64


def test_commit_and_time_travel(repo):
    s1 = write_commit(repo, 1.0)
    t_between = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    s2 = write_commit(repo, 2.0)
    assert repo.lookup_branch("main") == s2
    assert [i.id for i in repo.ancestry(branch="main")][:2] == [s2, s1]
    np.testing.assert_array_equal(read_x(repo.readonly_session("main")), [2.0] * 4)
    np.testing.assert_array_equal(read_x(repo.readonly_session(snapshot_id=s1)), [1.0] * 4)
    np.testing.assert_array_equal(read_x(repo.readonly_session(as_of=t_between)), [1.0] * 4)
    with pytest.raises(vrepo.RefNotFoundError, match="at or before"):
        repo.readonly_session(as_of=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(vrepo.InvalidArgumentError, match="timezone-aware"):
        repo.readonly_session(as_of=dt.datetime(2000, 1, 1))
    info = repo.lookup_snapshot(s2)
    assert info.parent_id == s1 and info.message == "x = 2.0"


def test_branches(repo):
    s1 = write_commit(repo, 1.0)
    repo.create_branch("dev", s1)
    assert repo.list_branches() == ["dev", "main"]
    s2 = write_commit(repo, 2.0, branch="dev")
    assert repo.lookup_branch("dev") == s2 and repo.lookup_branch("main") == s1
    np.testing.assert_array_equal(read_x(repo.readonly_session("main")), [1.0] * 4)
    with pytest.raises(vrepo.RefExistsError):
        repo.create_branch("dev", s1)
    repo.reset_branch("dev", s1)
    assert repo.lookup_branch("dev") == s1
    repo.delete_branch("dev")
    assert repo.list_branches() == ["main"]
    with pytest.raises(vrepo.RefNotFoundError, match="deleted"):
        repo.lookup_branch("dev")
    repo.create_branch("dev", s2)  # a deleted branch name can be reused, like git
    assert [r.action for r in repo.branch_history("dev")] == [
        "create",
        "delete",
        "reset",
        "commit",
        "create",
    ]
    with pytest.raises(vrepo.InvalidArgumentError, match="main"):
        repo.delete_branch("main")
    with pytest.raises(vrepo.SnapshotNotFoundError):
        repo.create_branch("x", "0" * 20)
    with pytest.raises(vrepo.InvalidRefNameError):
        repo.create_branch("../escape", s1)
    with pytest.raises(vrepo.RefNotFoundError, match="existing branches: dev, main"):
        repo.writable_session("nope")


def test_tags_never_move_and_names_are_not_reused(repo):
    s1 = write_commit(repo, 1.0)
    s2 = write_commit(repo, 2.0)
    repo.create_tag("v1", s1)
    assert repo.lookup_tag("v1") == s1 and repo.list_tags() == ["v1"]
    with pytest.raises(vrepo.RefExistsError, match="never move"):
        repo.create_tag("v1", s2)
    np.testing.assert_array_equal(read_x(repo.readonly_session(tag="v1")), [1.0] * 4)
    repo.delete_tag("v1")
    assert repo.list_tags() == []
    with pytest.raises(vrepo.RefExistsError, match="deleted"):
        repo.create_tag("v1", s2)
    with pytest.raises(vrepo.RefNotFoundError):
        repo.lookup_tag("v1")
    repo.delete_tag("v1")  # deleted already: a retry is harmless
    assert [r.action for r in run_sync(history(repo.storage, "tag", "v1"))] == ["delete", "create"]
    with pytest.raises(vrepo.RefNotFoundError):
        repo.delete_tag("v0")


def test_readonly_session_refuses_writes(repo):
    write_commit(repo, 1.0)
    session = repo.readonly_session("main")
    assert session.read_only and session.store.read_only
    with pytest.raises(vrepo.ReadOnlyError, match="writable_session"):
        session.commit("nope")
    arr = zarr.open_array(session.store, path="x", mode="r")
    with pytest.raises(ValueError, match="read-only"):
        arr[:] = 5.0
    with pytest.raises(vrepo.InvalidArgumentError, match="only one"):
        repo.readonly_session("main", tag="v1")


def test_status_discard_and_empty_commit(repo):
    session = repo.writable_session("main")
    assert not session.has_uncommitted_changes
    with pytest.raises(vrepo.NoChangesError, match="allow_empty"):
        session.commit("nothing")
    zarr.open_group(session.store, mode="a").create_array("a", shape=(3,), dtype="i4")[:] = 1
    status = session.status()
    assert status.new_arrays == ("/a",) and status.new_groups == ("/",)
    assert "new arrays: /a" in str(status)
    session.discard_changes()
    assert not session.has_uncommitted_changes
    assert str(session.status()) == "no uncommitted changes"
    empty = session.commit("marker", allow_empty=True)
    assert repo.lookup_branch("main") == empty


def test_commit_metadata_and_continuing_session(repo):
    session = repo.writable_session("main")
    with pytest.raises(vrepo.InvalidArgumentError, match="JSON"):
        session.commit("m", metadata={"bad": object()})
    arr = zarr.open_array(session.store, path="x", mode="w", shape=(2,), dtype="i2")
    arr[:] = 3
    s1 = session.commit("first", metadata={"author": "ana", "n": 3})
    assert repo.lookup_snapshot(s1).metadata == {"author": "ana", "n": 3}
    # the session continues on the new head
    assert session.snapshot_id == s1 and not session.has_uncommitted_changes
    arr[:] = 4
    s2 = session.commit("second")
    assert repo.lookup_snapshot(s2).parent_id == s1


def test_session_repr_and_properties(repo):
    session = repo.writable_session("main")
    assert session.branch == "main" and not session.read_only
    assert "writable" in repr(session) and "main" in repr(session)
    ro = repo.readonly_session(snapshot_id=session.snapshot_id)
    assert ro.read_only and ro.branch is None
