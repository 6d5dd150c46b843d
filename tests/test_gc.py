"""Garbage collection: what it deletes, what it must keep, and that it can run beside writers.

Collections that must treat everything as old run through the engine with a clock ten
seconds ahead (`_collect`): timed ids tell an object's age to the second. The concurrent
tests use the public API and real time.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import vrepo
from vrepo._sync import run_sync
from vrepo.engine import gc
from vrepo.engine.gc import GcReport
from vrepo.format import Offer, OfferedChunks, TurnClaim, encode_turn_claim, turn_key

FORMAT_V2 = Path(__file__).parent / "data" / "format_v2"
ROWS, WIDTH = 8, 100  # 800-byte chunks: stored as objects, not inline


def _collect(repo: vrepo.Repository, *, ahead_s: float = 10, grace_s: float = 0, dry=False):
    """Collect as if ``ahead_s`` seconds from now, with a grace period of ``grace_s``."""
    now_us = time.time_ns() // 1000 + int(ahead_s * 1e6)
    timed = repo._info.format_version >= 3
    return run_sync(
        gc.collect(repo._objects, int(grace_s * 1e6), dry_run=dry, timed_ids=timed, now_us=now_us)
    )


def _new_repo(path, rows: int = ROWS) -> vrepo.Repository:
    """A repository with an empty array ``x`` of ``rows`` raw float64 chunks of WIDTH values
    (800 bytes: stored as objects, not inline)."""
    repo = vrepo.Repository.create(path)
    session = repo.writable_session()
    zarr.create_array(
        session.store,
        name="x",
        shape=(rows, WIDTH),
        chunks=(1, WIDTH),
        dtype="f8",
        fill_value=0,
        compressors=None,
    )
    session.commit("create x")
    return repo


def _write(repo: vrepo.Repository, rows, value: float, branch: str = "main", commit=True):
    session = repo.writable_session(branch)
    array = zarr.open_array(session.store, path="x", mode="r+")
    for row in rows:
        array[row] = value + row
    return session.commit(f"rows {list(rows)} = {value}") if commit else session


def _read(repo: vrepo.Repository, snapshot_id: str) -> np.ndarray:
    return zarr.open_array(repo.readonly_session(snapshot_id=snapshot_id).store, path="x")[:]


def _keys(path: Path, kind: str) -> set[str]:
    folder = path / kind
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _everything(repo: vrepo.Repository) -> dict[str, dict[str, np.ndarray]]:
    """Every array of every snapshot some ref's history holds, read whole."""
    ids = {e.id for b in repo.list_branches() for e in repo.ancestry(branch=b)}
    ids |= {e.id for t in repo.list_tags() for e in repo.ancestry(tag=t)}
    return {i: _arrays(repo, i) for i in ids}


def _arrays(repo: vrepo.Repository, snapshot_id: str) -> dict[str, np.ndarray]:
    store = repo.readonly_session(snapshot_id=snapshot_id).store
    try:
        group = zarr.open_group(store, mode="r")
    except FileNotFoundError:  # the first snapshot: not even a root group
        return {}
    return {name: array[...] for name, array in group.arrays()}


def _assert_same(got: dict[str, dict[str, np.ndarray]], expected) -> None:
    for snapshot, arrays in got.items():
        assert sorted(arrays) == sorted(expected[snapshot]), snapshot
        for name, values in arrays.items():
            np.testing.assert_array_equal(values, expected[snapshot][name])


def test_abandoned_writes_go_once_the_grace_period_is_over(tmp_path):
    repo = _new_repo(tmp_path)
    kept = _write(repo, range(ROWS), 1.0)
    _write(repo, range(ROWS), 2.0, commit=False)  # a session that never commits
    assert len(_keys(tmp_path, "chunks")) == 2 * ROWS
    young = _collect(repo, ahead_s=0, grace_s=3600)
    assert (young.chunks, young.snapshots) == (0, 0)
    report = _collect(repo)
    assert report.chunks == ROWS and report.snapshots == 0
    assert report.bytes_freed == ROWS * WIDTH * 8  # raw float64 chunks
    np.testing.assert_array_equal(_read(repo, kept)[:, 0], 1.0 + np.arange(ROWS))


def test_overwritten_chunks_live_until_the_snapshots_naming_them_expire(tmp_path):
    repo = _new_repo(tmp_path)
    first = _write(repo, range(ROWS), 1.0)
    cut = dt.datetime.now(dt.UTC)
    time.sleep(0.002)
    _write(repo, range(ROWS // 2), 2.0)
    last = _write(repo, [0], 3.0)
    before = _everything(repo)
    assert _collect(repo).chunks == 0  # every chunk is named by a snapshot in the history
    expired = repo.expire_snapshots(cut)
    assert first in expired
    report = _collect(repo)
    # rows 0..3 of the first write were overwritten; rows 4..7 are still read at the head
    assert report.chunks == ROWS // 2 and report.snapshots == len(expired)
    assert report.manifests >= 1
    after = _everything(repo)
    assert set(after) == set(before) - set(expired)
    _assert_same(after, before)
    np.testing.assert_array_equal(_read(repo, last)[:, 0], [3, 3, 4, 5, 5, 6, 7, 8])
    with pytest.raises(vrepo.SnapshotNotFoundError):
        repo.lookup_snapshot(first)


@pytest.mark.parametrize("move", ["delete", "reset"])
def test_a_ref_moved_away_protects_its_old_target_for_the_grace_period(tmp_path, move):
    repo = _new_repo(tmp_path)
    base = repo.lookup_branch("main")
    repo.create_branch("dev", base)
    tip = _write(repo, range(ROWS), 5.0, branch="dev")
    if move == "delete":
        repo.delete_branch("dev")
    else:
        repo.reset_branch("dev", base)
    within = _collect(repo, ahead_s=5, grace_s=3600)
    assert within.snapshots == 0 and within.chunks == 0
    np.testing.assert_array_equal(_read(repo, tip)[:, 0], 5.0 + np.arange(ROWS))
    after = _collect(repo, ahead_s=7200, grace_s=3600)
    assert after.snapshots == 1 and after.chunks == ROWS
    with pytest.raises(vrepo.SnapshotNotFoundError):
        repo.reset_branch("main", tip)


def test_a_dry_run_reports_what_a_collection_deletes_and_deletes_nothing(tmp_path):
    repo = _new_repo(tmp_path)
    cut = dt.datetime.now(dt.UTC)
    time.sleep(0.002)
    for value in range(4):
        _write(repo, range(ROWS), float(value))
    _write(repo, range(3), 9.0, commit=False)
    repo.expire_snapshots(cut)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    sizes = {p: p.stat().st_size for p in files}
    dry = _collect(repo, dry=True)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files
    real = _collect(repo)
    left = {p for p in tmp_path.rglob("*") if p.is_file()}
    deleted = [p for p in files if p not in left]
    assert (dry.chunks, dry.manifests, dry.snapshots) == (
        real.chunks,
        real.manifests,
        real.snapshots,
    )
    assert dry.bytes_freed == real.bytes_freed
    gone_states = [p for p in deleted if p.parent.name == "gc"]
    assert real.bytes_freed == sum(sizes[p] for p in deleted if p not in gone_states)
    assert real.objects == len(deleted)


def _history_of_changes(repo: vrepo.Repository, rounds: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(rounds):
        rows = sorted(set(rng.integers(0, ROWS, size=3).tolist()))
        _write(repo, rows, float(i))
        if i % 3 == 2:
            cut = dt.datetime.now(dt.UTC)
            time.sleep(0.002)
            repo.expire_snapshots(cut, keep_tags=bool(i % 2))
        if i % 4 == 1:
            repo.create_tag(f"t{seed}.{i}", repo.lookup_branch("main"))
        if i % 5 == 3:
            _write(repo, [0, 1], -1.0, commit=False)


def test_an_incremental_collection_deletes_what_a_full_one_would(tmp_path):
    repo = _new_repo(tmp_path / "repo")
    _history_of_changes(repo, 6, seed=1)
    assert not _collect(repo).incremental  # the first one lists everything
    _history_of_changes(repo, 9, seed=2)
    twin_path = tmp_path / "twin"
    shutil.copytree(tmp_path / "repo", twin_path)
    shutil.rmtree(twin_path / "gc")  # the twin has no state: it is collected in full
    twin = vrepo.Repository.open(twin_path)
    incremental, full = _collect(repo), _collect(twin)
    assert incremental.incremental and not full.incremental
    for kind in ("chunks", "manifests", "snapshots", "history"):
        assert _keys(tmp_path / "repo", kind) == _keys(twin_path, kind), kind
    assert incremental.chunks == full.chunks > 0
    _assert_same(_everything(twin), _everything(repo))


def test_a_collection_that_stopped_half_way_leaves_nothing_behind(tmp_path, monkeypatch):
    repo = _new_repo(tmp_path / "repo")
    _history_of_changes(repo, 6, seed=3)
    repo.create_branch("dev", repo.lookup_branch("main"))
    _write(repo, range(ROWS), 7.0, branch="dev")
    _collect(repo)  # its state retains dev's head
    _history_of_changes(repo, 6, seed=4)
    repo.delete_branch("dev")
    kept = _everything(repo)

    class Crash(Exception):
        pass

    async def crash(self, live, others):
        raise Crash  # after the deletions, before the state

    with monkeypatch.context() as patched:
        patched.setattr(gc._Run, "_save_state", crash)
        with pytest.raises(Crash):
            _collect(repo, ahead_s=3600)
    report = _collect(repo, ahead_s=3600)  # its state names deleted snapshots: not trusted
    assert not report.incremental
    twin_path = tmp_path / "twin"
    shutil.copytree(tmp_path / "repo", twin_path)
    shutil.rmtree(twin_path / "gc")
    assert _collect(vrepo.Repository.open(twin_path), ahead_s=3600).objects == 0
    _assert_same(_everything(repo), kept)


def test_a_repository_from_before_timed_ids_is_collected_in_full(tmp_path):
    shutil.copytree(FORMAT_V2, tmp_path / "v2")
    repo = vrepo.Repository.open(tmp_path / "v2")
    assert repo._info.format_version < 3
    before = _everything(repo)
    assert any(before.values())
    first, second = _collect(repo), _collect(repo)
    assert not first.incremental and not second.incremental
    assert second.objects - second.other == 0
    _assert_same(_everything(repo), before)


def test_offered_chunks_stay_while_their_claim_does(tmp_path):
    repo = _new_repo(tmp_path)
    session = _write(repo, [2], 4.0, commit=False)
    chunk = next(iter(session._content.changes.external_chunk_ids()))
    ref = session._content.changes.chunks["/x"][(2, 0)]
    offer = Offer(repo.lookup_branch("main"), "offered", {}, [OfferedChunks("/x", [[2, 0]], [ref])])
    claim = TurnClaim("main", 5, "op", time.time_ns() // 1000, offer)
    run_sync(repo.storage.put(turn_key("main", 5), encode_turn_claim(claim)))
    kept = _collect(repo, ahead_s=10, grace_s=3600)
    assert chunk in _keys(tmp_path, "chunks") and kept.other == 0
    stale = _collect(repo, ahead_s=7200, grace_s=3600)  # the claim goes; its chunk this once stays
    assert stale.other == 1 and chunk in _keys(tmp_path, "chunks")
    assert _collect(repo, ahead_s=7200, grace_s=3600).chunks == 1
    assert chunk not in _keys(tmp_path, "chunks")


def test_bad_arguments_change_nothing(tmp_path):
    repo = _new_repo(tmp_path)
    _write(repo, [1], 1.0, commit=False)
    files = sorted(tmp_path.rglob("*"))
    with pytest.raises(vrepo.InvalidArgumentError, match="negative"):
        repo.garbage_collect(older_than=dt.timedelta(seconds=-1))
    with pytest.raises(vrepo.InvalidArgumentError, match="timezone-aware"):
        repo.garbage_collect(older_than=dt.datetime.now())
    with pytest.raises(vrepo.InvalidArgumentError, match="future"):
        repo.garbage_collect(older_than=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert sorted(tmp_path.rglob("*")) == files
    report = repo.garbage_collect()  # a week of grace: nothing here is that old
    assert isinstance(report, GcReport) and report.objects == 0


# --- beside writers ------------------------------------------------------------------------

GRACE_S = 2.0  # sessions below take well under a second


def test_commits_racing_collections_lose_nothing(shared_storage):
    repo = _new_repo(shared_storage)
    for value in range(1, 4):  # garbage older than the grace period: overwritten, abandoned
        _write(repo, range(ROWS), float(value))
        _write(repo, range(ROWS), -float(value), commit=False)
    repo.expire_snapshots(dt.datetime.now(dt.UTC))  # the first two commits are garbage too
    time.sleep(GRACE_S + 1.1)
    committed: dict[str, float] = {}
    failures: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(6):
                value = 100.0 * worker + i
                committed[_write(repo, [worker], value)] = value
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    reports = []
    while any(t.is_alive() for t in threads):
        reports.append(repo.garbage_collect(older_than=dt.timedelta(seconds=GRACE_S)))
    for thread in threads:
        thread.join()
    reports.append(repo.garbage_collect(older_than=dt.timedelta(seconds=GRACE_S)))
    assert not failures, failures
    # the old garbage went meanwhile: two commits' chunks, and three abandoned sessions' less
    # the one row each that came out as the fill value (no chunk is stored for it)
    assert sum(r.chunks for r in reports) == 2 * ROWS + 3 * (ROWS - 1)
    for snapshot, value in committed.items():
        worker = int(value // 100)
        assert _read(repo, snapshot)[worker, 0] == value + worker
    head = _read(repo, repo.lookup_branch("main"))
    assert [head[w, 0] - w for w in range(3)] == [100.0 * w + 5 for w in range(3)]


def test_disk_usage_splits_bytes_into_unique_and_shared(tmp_path):
    repo = _new_repo(tmp_path)
    chunk = WIDTH * 8
    first = _write(repo, range(ROWS), 1.0)
    assert repo.disk_usage().to_dict()["arrays"] == [
        {
            "path": "/x",
            "chunks": ROWS,
            "stored_bytes": ROWS * chunk,
            "unique_bytes": ROWS * chunk,  # no other snapshot names these chunks
            "shared_bytes": 0,
        }
    ]
    _write(repo, range(3), 2.0)  # the head shares rows 3.. with `first`; rows 0-2 are its own
    head = repo.disk_usage("main")
    (x,) = head.arrays
    assert (x.chunks, x.stored_bytes, x.unique_bytes) == (ROWS, ROWS * chunk, 3 * chunk)
    old = repo.disk_usage(first)
    assert old.arrays[0].unique_bytes == 3 * chunk  # its rows 0-2 were overwritten since
    _write(repo, range(2), 3.0, commit=False)
    # ids tell their age in whole seconds: past the next second, both loose chunks are old
    time.sleep(1.01 - time.time() % 1)
    assert repo.disk_usage(older_than=dt.timedelta(0)).reclaimable_bytes == 2 * chunk
    assert _collect(repo, dry=True).bytes_freed == 2 * chunk


def test_loose_objects_and_deleted_arrays_are_collected_with_their_snapshots(tmp_path):
    from zarr.core.buffer import cpu

    repo = _new_repo(tmp_path)
    session = repo.writable_session()
    notes = bytes(range(256)) * 8  # 2 KiB: stored as a chunk object, not inline
    run_sync(session.store.set("notes/readme.txt", cpu.Buffer.from_bytes(notes)))
    with_notes = session.commit("notes")
    assert len(_keys(tmp_path, "chunks")) == 1
    _collect(repo)  # the state names the notes' chunk
    session = repo.writable_session()
    run_sync(session.store.delete("notes/readme.txt"))
    zarr.create_array(
        session.store, name="y", shape=(2, WIDTH), chunks=(1, WIDTH), dtype="f8", compressors=None
    )
    zarr.open_array(session.store, path="y", mode="r+")[:] = 1.0  # two stored chunks
    session.commit("no notes; y")
    session = repo.writable_session()
    del zarr.open_group(session.store, mode="r+")["y"]
    session.commit("no y")
    assert _collect(repo).chunks == 0  # every snapshot is still in the history
    cut = dt.datetime.now(dt.UTC)
    time.sleep(0.002)
    _write(repo, [0], 5.0)
    repo.expire_snapshots(cut)
    report = _collect(repo)
    assert report.incremental
    assert (report.chunks, report.snapshots) == (1 + 2, 4)  # the notes, y's two chunks
    assert len(_keys(tmp_path, "chunks")) == 1  # row 0 of x, at the head
    with pytest.raises(vrepo.SnapshotNotFoundError):
        vrepo.Repository.open(tmp_path).lookup_snapshot(with_notes)
