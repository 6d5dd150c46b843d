"""Fork sessions: small, picklable, see the parent's uncommitted data, merge back safely."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import cloudpickle
import numpy as np
import pytest
import zarr

import vrepo


@pytest.fixture
def repo(tmp_path) -> vrepo.Repository:
    return vrepo.Repository.create(tmp_path / "repo.vrepo")


def make_array(session: vrepo.Session, n_chunks: int) -> zarr.Array:
    arr = zarr.create_array(session.store, name="x", shape=(n_chunks * 4,), chunks=(4,), dtype="i4")
    arr[:] = np.arange(n_chunks * 4)
    return arr


def write_block(fork: vrepo.ForkSession, block: int, value: int | None = None) -> vrepo.ForkSession:
    arr = zarr.open_array(fork.store, path="x", mode="r+")
    arr[block * 4 : block * 4 + 4] = -block if value is None else value
    return fork


def test_fork_pickles_small_whatever_the_parent_holds(repo):
    sizes = []
    for n_chunks in (4, 400):
        session = repo.writable_session()
        make_array(session, n_chunks)
        fork = session.fork()
        sizes.append(len(pickle.dumps(fork)))
        assert len(cloudpickle.dumps(fork)) < 2000
    assert sizes[0] == sizes[1] < 2000


def test_fork_reads_parent_uncommitted_data_and_merges(repo):
    session = repo.writable_session()
    make_array(session, 4)
    fork = pickle.loads(pickle.dumps(session.fork()))
    arr = zarr.open_array(fork.store, path="x", mode="r+")
    np.testing.assert_array_equal(arr[:], np.arange(16))
    arr[1:3] = 99  # read-modify-write of a partial chunk keeps the parent's other values
    session.merge(fork)
    snapshot = session.commit("with fork")
    got = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="x")[:]
    expected = np.arange(16)
    expected[1:3] = 99
    np.testing.assert_array_equal(got, expected)


def test_overlapping_forks_conflict_unless_told(repo):
    session = repo.writable_session()
    make_array(session, 4)
    base = session.fork()
    a, b = pickle.loads(pickle.dumps(base)), pickle.loads(pickle.dumps(base))
    write_block(a, 1)
    write_block(b, 1, value=100)
    write_block(b, 2)
    with pytest.raises(vrepo.ChunkConflictError, match=r"/x chunk \(1,\)") as info:
        session.merge(a, b)
    assert info.value.conflicts == [("/x", (1,))]
    assert session.status().chunks_written == {"/x": 4}  # nothing was merged
    session.merge(a, b, on_conflict="theirs")
    merged = zarr.open_array(session.store, path="x")[4:12]
    np.testing.assert_array_equal(merged, [100] * 4 + [-2] * 4)


def test_forks_refuse_what_would_lose_data(repo):
    session = repo.writable_session()
    make_array(session, 2)
    fork = session.fork()
    with pytest.raises(vrepo.VRepoError, match="cannot commit"):
        fork.commit("no")
    with pytest.raises(vrepo.InvalidArgumentError, match="another session"):
        repo.writable_session().merge(fork)
    with pytest.raises(vrepo.VRepoError, match=r"fork\(\)"):
        pickle.dumps(session)
    session.commit("moves on")
    with pytest.raises(vrepo.InvalidArgumentError, match="predates"):
        session.merge(fork)
    ro = pickle.loads(pickle.dumps(repo.readonly_session()))
    assert ro.read_only and zarr.open_array(ro.store, path="x").shape == (8,)


def test_forks_written_in_worker_processes_commit_atomically(repo):
    session = repo.writable_session()
    make_array(session, 16)
    fork = session.fork()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        forks = list(pool.map(write_block, [fork] * 16, range(16)))
    assert repo.lookup_branch("main") == session.snapshot_id  # nothing visible yet
    session.merge(*forks)
    snapshot = session.commit("16 workers")
    got = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="x")[:]
    np.testing.assert_array_equal(got, -np.repeat(np.arange(16), 4))


def test_writes_after_forking_conflict_in_later_merges(repo):
    session = repo.writable_session()
    make_array(session, 4)
    a = session.fork()
    b = pickle.loads(pickle.dumps(a))
    write_block(a, 0)
    write_block(b, 0, value=7)
    session.merge(a)
    with pytest.raises(vrepo.ChunkConflictError, match=r"/x chunk \(0,\)"):
        session.merge(b)  # a sibling merged earlier wrote the same chunk
    session.merge(a)  # merging the very same writes again loses nothing: not a conflict

    c = session.fork()
    write_block(c, 3, value=5)
    zarr.open_array(session.store, path="x", mode="r+")[12:16] = 100  # the parent, after forking
    with pytest.raises(vrepo.ChunkConflictError, match=r"/x chunk \(3,\)"):
        session.merge(c)
    session.merge(c, on_conflict="ours")
    np.testing.assert_array_equal(zarr.open_array(session.store, path="x")[12:16], [100] * 4)
