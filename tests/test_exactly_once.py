"""Exactly once: an operation whose storage call failed after it took effect is not repeated.

Storage can raise after a ref record was in fact written (a timeout, a reset connection, a 5xx
after success). Each ref record names the operation that wrote it, so the writer reads the
record back and recognises its own write, in the same call or, if the read-back fails too, in
the next commit of the same session. Retried ref operations converge on what was asked.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import zarr

import vrepo
from vrepo.format import ref_record_key
from vrepo.storage import LocalStorage, MemoryStorage
from vrepo.testing.faults import FaultyStorage, InjectedFault

STORAGE_FAILURE = (vrepo.StorageError, InjectedFault)


@pytest.fixture(params=["memory", "local"])
def storage(request, tmp_path) -> Iterator[FaultyStorage]:
    inner = MemoryStorage() if request.param == "memory" else LocalStorage(tmp_path / "r.vrepo")
    faulty = FaultyStorage(inner)
    yield faulty
    assert faulty.planned == [], "a test planned a fault that never happened"


@pytest.fixture
def repo(storage: FaultyStorage) -> vrepo.Repository:
    return vrepo.Repository.create(storage)


def write(session: vrepo.Session, value: int, where: slice = slice(None)) -> None:
    arr = zarr.open_array(
        session.store, path="x", mode="a", shape=(8,), chunks=(2,), dtype="i8", fill_value=-1
    )
    arr[where] = value


def read(repo: vrepo.Repository) -> np.ndarray:
    return zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]


def commits(repo: vrepo.Repository) -> list[str]:
    return [r.action for r in repo.branch_history("main")]


def test_records_name_the_operation_and_commit_retries_keep_one(repo: vrepo.Repository) -> None:
    session = repo.writable_session()
    write(session, 1)
    session.commit("one")
    other = repo.writable_session()
    write(other, 2, slice(0, 2))
    write(session, 3, slice(6, 8))
    other.commit("two")
    session.commit("three, rebased")  # lost one race: two attempts, one operation
    assert session.commit_attempts == 2
    operations = [r.operation for r in repo.branch_history("main")]
    assert all(op is not None for op in operations)
    assert len(set(operations)) == len(operations)


def test_commit_whose_record_landed_before_the_error_returns_normally(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    session = repo.writable_session()
    write(session, 1)
    storage.fail_next("put_if_absent", after_applying=True, key_prefix="refs/")
    snapshot = session.commit("one")
    assert storage.injected["put_if_absent", True] == 1
    assert commits(repo) == ["commit", "create"]
    assert repo.lookup_branch("main") == snapshot == session.snapshot_id
    assert not session.has_uncommitted_changes
    np.testing.assert_array_equal(read(repo), 1)


def test_commit_whose_write_failed_before_landing_is_tried_again(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    session = repo.writable_session()
    write(session, 1)
    storage.fail_next("put_if_absent", key_prefix="refs/")
    session.commit("one")
    assert storage.injected["put_if_absent", False] == 1
    assert commits(repo) == ["commit", "create"]


@pytest.mark.parametrize("rebase_with", ["fail", "ours", "theirs"])
def test_a_retried_commit_finds_its_own_unanswered_write(
    repo: vrepo.Repository, storage: FaultyStorage, rebase_with: str
) -> None:
    session = repo.writable_session()
    write(session, 1)
    # The record lands, then the answer and every read-back fail: the call cannot know.
    storage.fail_next("put_if_absent", after_applying=True, key_prefix="refs/")
    storage.fail_next("get", key_prefix="refs/")
    with pytest.raises(STORAGE_FAILURE):
        session.commit("one")
    landed = repo.lookup_branch("main")
    retried = session.commit("one, retried", rebase_with=rebase_with)
    assert retried == landed
    assert commits(repo) == ["commit", "create"]  # once, not twice
    assert repo.lookup_snapshot(landed).message == "one"
    assert not session.has_uncommitted_changes
    write(session, 2, slice(0, 2))  # the session goes on from its commit
    session.commit("two")
    np.testing.assert_array_equal(read(repo), [2, 2, 1, 1, 1, 1, 1, 1])


def test_a_retried_commit_after_a_write_that_never_landed_commits_once(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    session = repo.writable_session()
    write(session, 1)
    storage.fail_next("put_if_absent", times=3, key_prefix="refs/")
    with pytest.raises(STORAGE_FAILURE):
        session.commit("one")
    assert commits(repo) == ["create"]
    assert session.has_uncommitted_changes
    session.commit("one, retried")
    assert commits(repo) == ["commit", "create"]
    np.testing.assert_array_equal(read(repo), 1)


def test_a_retried_commit_sees_its_write_even_behind_newer_commits(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    session = repo.writable_session()
    write(session, 1, slice(0, 2))
    storage.fail_next("put_if_absent", after_applying=True, key_prefix="refs/")
    storage.fail_next("get", key_prefix="refs/")
    with pytest.raises(STORAGE_FAILURE):
        session.commit("mine")
    other = repo.writable_session()
    write(other, 2, slice(6, 8))
    other.commit("someone else's, after mine")
    mine = session.commit("mine, retried")
    assert [i.message for i in repo.ancestry()][:2] == ["someone else's, after mine", "mine"]
    assert repo.lookup_snapshot(mine).message == "mine"
    assert commits(repo) == ["commit", "commit", "create"]


def test_amend_whose_record_landed_before_the_error(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    session = repo.writable_session()
    write(session, 1)
    session.commit("one")
    write(session, 2, slice(0, 2))
    next_record = ref_record_key("branch", "main", len(commits(repo)))
    storage.fail_next("put_if_absent", after_applying=True, key_prefix=next_record)
    storage.fail_next("get", key_prefix=next_record)  # the read-back, not the head before
    with pytest.raises(STORAGE_FAILURE):
        session.amend("one, amended")
    amended = session.amend("one, amended (retried)")
    assert repo.lookup_snapshot(amended).message == "one, amended"
    assert commits(repo) == ["amend", "commit", "create"]


@pytest.mark.parametrize("kind", ["tag", "branch"])
def test_create_whose_record_landed_before_the_error(
    repo: vrepo.Repository, storage: FaultyStorage, kind: str
) -> None:
    head = repo.lookup_branch("main")
    create = repo.create_tag if kind == "tag" else repo.create_branch
    lookup = repo.lookup_tag if kind == "tag" else repo.lookup_branch
    storage.fail_next("put_if_absent", after_applying=True, key_prefix=f"refs/{kind}.v1/")
    create("v1", head)  # read back: our own record
    assert lookup("v1") == head
    storage.fail_next("put_if_absent", after_applying=True, key_prefix=f"refs/{kind}.v2/")
    storage.fail_next("get", key_prefix=f"refs/{kind}.v2/")
    with pytest.raises(STORAGE_FAILURE):
        create("v2", head)
    create("v2", head)  # the caller's retry: it is there, as asked
    assert lookup("v2") == head
    history = repo.branch_history("v2") if kind == "branch" else None
    assert history is None or [r.action for r in history] == ["create"]


@pytest.mark.parametrize("kind", ["tag", "branch"])
def test_create_elsewhere_still_refuses(repo: vrepo.Repository, kind: str) -> None:
    session = repo.writable_session()
    write(session, 1)
    first = repo.lookup_branch("main")
    second = session.commit("one")
    create = repo.create_tag if kind == "tag" else repo.create_branch
    create("v1", first)
    with pytest.raises(vrepo.RefExistsError):
        create("v1", second)


def test_create_branch_again_after_it_moved_refuses(repo: vrepo.Repository) -> None:
    repo.create_branch("dev", repo.lookup_branch("main"))
    session = repo.writable_session("dev")
    write(session, 1)
    session.commit("on dev")
    with pytest.raises(vrepo.RefExistsError, match="already exists"):
        repo.create_branch("dev", repo.lookup_branch("main"))


@pytest.mark.parametrize("kind", ["tag", "branch"])
def test_delete_retried_after_it_took_effect(
    repo: vrepo.Repository, storage: FaultyStorage, kind: str
) -> None:
    head = repo.lookup_branch("main")
    create = repo.create_tag if kind == "tag" else repo.create_branch
    delete = repo.delete_tag if kind == "tag" else repo.delete_branch
    listed = repo.list_tags if kind == "tag" else repo.list_branches
    create("gone", head)
    tombstone = ref_record_key(kind, "gone", 1)
    storage.fail_next("put_if_absent", after_applying=True, key_prefix=tombstone)
    storage.fail_next("get", key_prefix=tombstone)
    with pytest.raises(STORAGE_FAILURE):
        delete("gone")
    delete("gone")  # the retry: deleted already, as asked
    assert "gone" not in listed()
    with pytest.raises(vrepo.RefNotFoundError):
        delete("never-existed")


def test_reset_whose_record_landed_before_the_error(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    base = repo.lookup_branch("main")
    session = repo.writable_session()
    write(session, 1)
    session.commit("one")
    storage.fail_next("put_if_absent", after_applying=True, key_prefix="refs/branch.main/")
    repo.reset_branch("main", base)
    assert repo.lookup_branch("main") == base
    assert commits(repo) == ["reset", "commit", "create"]


def test_a_fault_before_the_ref_leaves_the_repository_as_it_was(
    repo: vrepo.Repository, storage: FaultyStorage
) -> None:
    session = repo.writable_session()
    write(session, 1)
    before = session.commit("one")
    write(session, 2)
    storage.fail_next("put_new", key_prefix="snapshots/")
    with pytest.raises(STORAGE_FAILURE):
        session.commit("two")
    assert repo.lookup_branch("main") == before
    np.testing.assert_array_equal(read(repo), 1)
    session.commit("two, retried")
    np.testing.assert_array_equal(read(repo), 2)
    assert commits(repo) == ["commit", "commit", "create"]


def test_faulty_storage_refuses_what_cannot_happen() -> None:
    with pytest.raises(ValueError, match="cannot fail after applying"):
        FaultyStorage(MemoryStorage()).fail_next("get", after_applying=True)
    with pytest.raises(ValueError, match="unknown storage method"):
        FaultyStorage(MemoryStorage(), methods=["rename"])
    with pytest.raises(ValueError, match="shares"):
        FaultyStorage(MemoryStorage(), rate=2)


def test_create_whose_repo_json_landed_before_the_error(storage: FaultyStorage) -> None:
    storage.fail_next("put_if_absent", after_applying=True, key_prefix="repo.json")
    repo = vrepo.Repository.create(storage)  # read back: the repo.json it wrote
    assert [r.action for r in repo.branch_history("main")] == ["create"]


def test_a_creation_that_died_before_repo_json_is_completed(storage: FaultyStorage) -> None:
    storage.fail_next("put_if_absent", times=3, key_prefix="repo.json")
    with pytest.raises(STORAGE_FAILURE):
        vrepo.Repository.create(storage)
    assert not vrepo.Repository.exists(storage)  # no repository until repo.json exists
    repo = vrepo.Repository.open_or_create(storage)  # adopts the main branch it left
    assert [r.action for r in repo.branch_history("main")] == ["create"]
    write(session := repo.writable_session(), 1)
    session.commit("one")
    np.testing.assert_array_equal(read(repo), 1)
