"""Optimistic commits: automatic rebase, conflict detection, and solvers."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import vrepo


@pytest.fixture(params=["local", "memory"])
def repo(request, tmp_path) -> vrepo.Repository:
    storage = tmp_path / "r.vrepo" if request.param == "local" else vrepo.memory_storage()
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="w")
    root.create_array("x", shape=(8,), chunks=(2,), dtype="i4", fill_value=0)[:] = 1
    root.create_array("y", shape=(4,), chunks=(2,), dtype="i4", fill_value=0)[:] = 1
    session.commit("x and y")
    return repo


def arr(session: vrepo.Session, name: str = "x") -> zarr.Array:
    return zarr.open_array(session.store, path=name, mode="r+")


def head_values(repo: vrepo.Repository, name: str = "x") -> np.ndarray:
    return zarr.open_array(repo.readonly_session().store, path=name, mode="r")[:]


def test_disjoint_commits_rebase_automatically(repo):
    a, b = repo.writable_session(), repo.writable_session()
    arr(a)[:2] = 7
    arr(b)[6:] = 8
    arr(b, "y")[:] = 9
    first = a.commit("a")
    second = b.commit("b")
    assert b.commit_attempts == 2 and a.commit_attempts == 1
    assert repo.lookup_snapshot(second).parent_id == first  # linear history, nothing lost
    np.testing.assert_array_equal(head_values(repo), [7, 7, 1, 1, 1, 1, 8, 8])
    np.testing.assert_array_equal(head_values(repo, "y"), [9] * 4)


def test_overlapping_chunks_conflict_and_keep_changes(repo):
    a, b = repo.writable_session(), repo.writable_session()
    arr(a)[1:5] = 7  # chunks 0, 1, 2
    arr(b)[3:8] = 8  # chunks 1, 2, 3
    a.commit("a")
    with pytest.raises(vrepo.ConflictError, match=r"1 conflict\(s\)") as info:
        b.commit("b")
    [conflict] = info.value.conflicts
    assert (conflict.kind, conflict.path, conflict.chunks) == ("chunks", "/x", ((1,), (2,)))
    assert "/x: chunks written by both (2: (1,), (2,))" in str(info.value)
    assert b.has_uncommitted_changes
    np.testing.assert_array_equal(head_values(repo), [1, 7, 7, 7, 7, 1, 1, 1])


# Solvers pick whole chunks: in chunk 1 "ours" keeps b's [1, 8], including what b read.
@pytest.mark.parametrize(
    ("solver", "expected"),
    [("ours", [1, 7, 1, 8, 8, 8, 8, 8]), ("theirs", [1, 7, 7, 7, 7, 1, 8, 8])],
)
def test_solvers_settle_chunk_conflicts(repo, solver, expected):
    a, b = repo.writable_session(), repo.writable_session()
    arr(a)[1:5] = 7
    arr(b)[3:8] = 8
    a.commit("a")
    b.commit("b", rebase_with=solver)
    np.testing.assert_array_equal(head_values(repo), expected)


def test_explicit_rebase_then_commit(repo):
    a, b = repo.writable_session(), repo.writable_session()
    arr(a)[:2] = 7
    arr(b)[2:4] = 8
    head = a.commit("a")
    b.rebase()
    assert b.snapshot_id == head
    np.testing.assert_array_equal(arr(b)[:], [7, 7, 8, 8, 1, 1, 1, 1])  # sees both
    b.commit("b")
    assert b.commit_attempts == 1


def test_metadata_conflicts_are_never_solved(repo):
    a, b = repo.writable_session(), repo.writable_session()
    arr(a).attrs["units"] = "K"
    arr(b).attrs["units"] = "degC"
    a.commit("a")
    for solver in ("fail", "ours", "theirs"):
        with pytest.raises(vrepo.ConflictError, match="metadata changed by both") as info:
            b.commit("b", rebase_with=solver)
        assert [c.kind for c in info.value.conflicts] == ["metadata"]
        assert "never settled automatically" in str(info.value)


def test_identical_metadata_is_no_conflict(repo):
    a, b = repo.writable_session(), repo.writable_session()
    for session in (a, b):
        zarr.open_group(session.store, mode="a").create_group("shared", attributes={"k": 1})
    a.commit("a")
    b.commit("b")
    assert b.commit_attempts == 2


def test_node_created_twice_differently(repo):
    a, b = repo.writable_session(), repo.writable_session()
    zarr.create_array(a.store, name="z", shape=(2,), dtype="i4")
    zarr.create_array(b.store, name="z", shape=(3,), dtype="i4")
    a.commit("a")
    with pytest.raises(vrepo.ConflictError) as info:
        b.commit("b", rebase_with="ours")
    assert [(c.kind, c.path) for c in info.value.conflicts] == [("node_created_twice", "/z")]


def test_update_of_deleted_node_and_delete_of_updated_node(repo):
    a, b = repo.writable_session(), repo.writable_session()
    del zarr.open_group(a.store, mode="a")["y"]
    arr(b, "y")[:2] = 5
    a.commit("drop y")
    with pytest.raises(vrepo.ConflictError) as info:
        b.commit("write y")
    assert [(c.kind, c.path) for c in info.value.conflicts] == [("update_of_deleted_node", "/y")]

    c, d = repo.writable_session(), repo.writable_session()
    arr(c)[:2] = 3
    del zarr.open_group(d.store, mode="a")["x"]
    c.commit("write x")
    with pytest.raises(vrepo.ConflictError) as info:
        d.commit("drop x")
    assert [(c.kind, c.path) for c in info.value.conflicts] == [("delete_of_updated_node", "/x")]


def test_branch_reset_or_deleted_under_a_session(repo):
    first = repo.lookup_branch("main")
    a, b = repo.writable_session(), repo.writable_session()
    arr(a)[:2] = 7
    arr(b)[2:4] = 8
    a.commit("a")
    repo.reset_branch("main", next(repo.ancestry(snapshot_id=first)).parent_id)
    with pytest.raises(vrepo.ConflictError, match="does not descend"):
        b.commit("b")

    repo.create_branch("dev", first)
    c = repo.writable_session("dev")
    arr(c)[:2] = 1
    repo.delete_branch("dev")
    with pytest.raises(vrepo.ConflictError, match="deleted"):
        c.commit("c")


def test_bounded_retries(tmp_path):
    config = vrepo.RepoConfig(commit_retries=0)
    repo = vrepo.Repository.create(tmp_path / "r.vrepo", config=config)
    a, b = repo.writable_session(), repo.writable_session()
    zarr.create_array(a.store, name="p", shape=(1,), dtype="i4")
    zarr.create_array(b.store, name="q", shape=(1,), dtype="i4")
    a.commit("a")
    with pytest.raises(vrepo.ConflictError, match="gave up"):
        b.commit("b")
    with pytest.raises(vrepo.InvalidArgumentError, match="commit_retries"):
        vrepo.RepoConfig(commit_retries=-1)
    with pytest.raises(vrepo.InvalidArgumentError, match="solver"):
        b.commit("b", rebase_with="mine")


def test_reset_to_the_session_base_moves_the_ref_but_not_the_data(repo):
    session = repo.writable_session()
    arr(session)[:2] = 4
    repo.reset_branch("main", session.snapshot_id)  # a new ref record, same snapshot
    snapshot = session.commit("after a no-op reset")
    assert session.commit_attempts == 2
    assert [r.action for r in repo.branch_history("main")[:2]] == ["commit", "reset"]
    assert repo.lookup_branch("main") == snapshot


def test_amend_replaces_the_head_commit(repo):
    session = repo.writable_session()
    arr(session)[:2] = 5
    first = session.commit("five")
    parent = repo.lookup_snapshot(first).parent_id
    stale = repo.writable_session()  # based on the commit about to be replaced
    arr(stale)[6:] = 9
    arr(session)[2:4] = 6
    amended = session.amend("five and six", metadata={"fixed": True})
    info = repo.lookup_snapshot(amended)
    assert (info.parent_id, info.message, info.metadata) == (
        parent,
        "five and six",
        {"fixed": True},
    )
    assert [i.id for i in repo.ancestry()][:2] == [amended, parent]
    assert repo.branch_history("main")[0].action == "amend"
    np.testing.assert_array_equal(head_values(repo), [5, 5, 6, 6, 1, 1, 1, 1])
    with pytest.raises(vrepo.ConflictError, match="does not descend"):
        stale.commit("based on the replaced commit")

    older = repo.writable_session()
    arr(repo.writable_session())[:1] = 0
    other = repo.writable_session()
    arr(other)[4:6] = 3
    other.commit("moves main")
    arr(older)[6:] = 2
    with pytest.raises(vrepo.ConflictError, match="moved"):
        older.amend("too late")


def test_amended_log_still_reveals_conflicts(repo):
    a = repo.writable_session()  # based on the parent of the commit that gets amended
    arr(a)[:2] = 7
    b = repo.writable_session()
    arr(b)[6:] = 1
    b.commit("touches chunk 3")
    arr(b)[2:4] = 2
    b.amend("touches chunks 1 and 3")
    arr(a)[6:] = 4  # chunk 3 again: written by the amended commit's first half
    with pytest.raises(vrepo.ConflictError) as info:
        a.commit("a")
    assert info.value.conflicts[0].chunks == ((3,),)


@pytest.mark.parametrize("rows", [3, 40, 200])  # a few rows compare as sets, many with numpy
def test_common_rows_finds_the_same_rows_however_many(rows: int) -> None:
    from vrepo.engine._rows import common_rows

    rng = np.random.default_rng(rows)
    a = rng.integers(0, 4, size=(rows, 2)).astype("<u4")
    b = rng.integers(0, 4, size=(rows // 2 + 1, 2)).astype("<u4")
    expected = sorted(set(map(tuple, a.tolist())) & set(map(tuple, b.tolist())))
    found = common_rows(a, b)
    assert found.dtype == a.dtype and found.shape == (len(expected), 2)
    assert [tuple(row) for row in found.tolist()] == expected
    assert common_rows(a, b[:0]).shape == (0, 2)
