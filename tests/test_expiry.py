"""Snapshot expiry: `Repository.expire_snapshots` cuts old snapshots out of branch histories.

Times are made deterministic by committing, taking ``now`` between two tiny sleeps, and
committing again: every snapshot before is older than the cut-off, every one after newer.
"""

from __future__ import annotations

import datetime as dt
import inspect
import threading
import time

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import vrepo
import vrepo.cli
from vrepo._sync import run_sync
from vrepo.format import decode_expiry_record
from vrepo.storage import memory_storage

ROOT = "Repository initialized"


@pytest.fixture(params=["local", "memory"])
def repo(request, tmp_path) -> vrepo.Repository:
    storage = tmp_path / "r.vrepo" if request.param == "local" else memory_storage()
    return vrepo.Repository.create(storage)


def _commit(repo: vrepo.Repository, message: str, branch: str = "main", group: str = "") -> str:
    session = repo.writable_session(branch)
    zarr.open_group(session.store, mode="a", path=group or None).attrs["m"] = message
    return session.commit(message)


def _commits(repo: vrepo.Repository, *messages: str, branch: str = "main") -> dict[str, str]:
    return {m: _commit(repo, m, branch) for m in messages}


def _now() -> dt.datetime:
    """A cut-off strictly between what was committed before and what is committed after."""
    time.sleep(0.01)
    when = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    return when


def _messages(repo: vrepo.Repository, **ref: str) -> list[str]:
    return [info.message for info in repo.ancestry(**ref)]


def _expiry_records(repo: vrepo.Repository):
    keys = run_sync(repo.storage.list("expiry/"))
    return keys, [decode_expiry_record(run_sync(repo.storage.get(k)), what=k) for k in keys]


def _assert_unreached(repo: vrepo.Repository, expired) -> None:
    """No branch or tag history shows an expired snapshot."""
    refs = [{"branch": b} for b in repo.list_branches()] + [{"tag": t} for t in repo.list_tags()]
    for ref in refs:
        assert not {i.id for i in repo.ancestry(**ref)} & set(expired), ref


def test_basic_expiry_cuts_the_old_stretch_and_returns_it_newest_first(repo):
    old = _commits(repo, "c0", "c1", "c2")
    cut = _now()
    new = _commits(repo, "n0", "n1")
    expired = repo.expire_snapshots(cut)
    assert expired == [old["c2"], old["c1"], old["c0"]]
    assert _messages(repo) == ["n1", "n0", ROOT]
    infos = list(repo.ancestry())
    assert infos[1].id == new["n0"] and infos[1].parent_id == infos[2].id  # the cut edge
    _assert_unreached(repo, expired)
    # expired snapshots stay readable by id until garbage collection
    assert repo.lookup_snapshot(old["c1"]).message == "c1"
    reader = repo.readonly_session(snapshot_id=old["c1"])
    assert zarr.open_group(reader.store, mode="r").attrs["m"] == "c1"
    assert _messages(repo, snapshot_id=old["c1"]) == ["c1", "c0", ROOT]
    # idempotent: nothing more to cut, and no new record
    assert repo.expire_snapshots(cut) == []
    assert len(_expiry_records(repo)[0]) == 1
    assert _messages(repo) == ["n1", "n0", ROOT]


def test_an_age_expires_everything_but_the_head_and_the_root(repo):
    ids = _commits(repo, "c0", "c1", "c2")
    assert repo.expire_snapshots(dt.timedelta(0)) == [ids["c1"], ids["c0"]]
    assert _messages(repo) == ["c2", ROOT]
    assert repo.expire_snapshots(dt.timedelta(days=1)) == []  # nothing is a day old


def test_tags_keep_their_place_by_default(repo):
    ids = _commits(repo, "c0", "c1", "c2")
    repo.create_tag("v1", ids["c1"])
    cut = _now()
    _commits(repo, "n0")
    assert repo.expire_snapshots(cut) == [ids["c2"], ids["c0"]]
    assert _messages(repo) == ["n0", "c1", ROOT]
    assert _messages(repo, tag="v1") == ["c1", ROOT]


def test_keep_tags_false_takes_tagged_snapshots_out_of_branches_but_the_tag_reads(repo):
    ids = _commits(repo, "c0", "c1", "c2")
    repo.create_tag("v1", ids["c1"])
    cut = _now()
    _commits(repo, "n0")
    expired = repo.expire_snapshots(cut, keep_tags=False)
    assert expired == [ids["c2"], ids["c0"]]  # c1 is still reached, by its tag
    assert _messages(repo) == ["n0", ROOT]
    assert _messages(repo, tag="v1") == ["c1", ROOT]  # the tag's own history is cut too
    reader = repo.readonly_session(tag="v1")
    assert zarr.open_group(reader.store, mode="r").attrs["m"] == "c1"
    _assert_unreached(repo, expired)
    assert repo.expire_snapshots(cut, keep_tags=False) == []


def test_one_branch_keeps_what_another_branch_holds(repo):
    main = _commits(repo, "c0", "c1")
    repo.create_branch("dev", main["c1"])
    dev = _commits(repo, "d0", "d1", branch="dev")
    main |= _commits(repo, "c2", "c3")
    repo.create_branch("stale", main["c2"])  # an old head, never moved
    cut = _now()
    _commits(repo, "n0")
    _commits(repo, "e0", branch="dev")
    assert repo.expire_snapshots(cut, branch="dev") == [dev["d1"], dev["d0"]]
    assert _messages(repo, branch="dev") == ["e0", "c1", "c0", ROOT]  # c1, c0: main's
    assert _messages(repo) == ["n0", "c3", "c2", "c1", "c0", ROOT]  # untouched
    assert repo.expire_snapshots(cut, branch="dev") == []
    # every branch now: the stale head c2 keeps its place in main's history
    expired = repo.expire_snapshots(cut)
    assert expired == [main["c3"], main["c1"], main["c0"]]
    assert _messages(repo) == ["n0", "c2", ROOT]
    assert _messages(repo, branch="dev") == ["e0", ROOT]
    assert _messages(repo, branch="stale") == ["c2", ROOT]
    _assert_unreached(repo, expired)


def test_a_deleted_branch_cannot_be_named_and_its_snapshots_are_not_counted(repo):
    ids = _commits(repo, "c0", "c1")
    repo.create_branch("dev", ids["c0"])
    _commits(repo, "d0", "d1", branch="dev")
    repo.delete_branch("dev")
    with pytest.raises(vrepo.RefNotFoundError, match="dev"):
        repo.expire_snapshots(dt.timedelta(0), branch="dev")
    assert run_sync(repo.storage.list("expiry/")) == []
    # d0 and d1 were unreached before: not this expiry's to return
    assert repo.expire_snapshots(dt.timedelta(0)) == [ids["c0"]]
    assert _messages(repo) == ["c1", ROOT]


def test_as_of_and_tilde_see_only_retained_snapshots(repo):
    ids = _commits(repo, "c0", "c1", "c2", "c3")
    repo.create_tag("v1", ids["c1"])
    cut = _now()
    new = _commits(repo, "n0", "n1")
    at = {m: repo.lookup_snapshot(i).written_at for m, i in (ids | new).items()}
    assert repo.readonly_session(as_of=at["c2"]).snapshot_id == ids["c2"]  # before expiry
    repo.expire_snapshots(cut)
    assert _messages(repo) == ["n1", "n0", "c1", ROOT]
    root = list(repo.ancestry())[-1].id
    assert repo.readonly_session(as_of=at["c3"]).snapshot_id == ids["c1"]
    assert repo.readonly_session(as_of=at["c2"]).snapshot_id == ids["c1"]
    assert repo.readonly_session(as_of=at["c1"]).snapshot_id == ids["c1"]
    assert repo.readonly_session(as_of=at["c0"]).snapshot_id == root
    assert repo.readonly_session(as_of=cut).snapshot_id == ids["c1"]
    assert repo.readonly_session(as_of=at["n0"]).snapshot_id == new["n0"]
    assert repo.readonly_session(tag="v1", as_of=at["c0"]).snapshot_id == root
    assert [repo.resolve(f"main~{n}") for n in range(4)] == [new["n1"], new["n0"], ids["c1"], root]
    with pytest.raises(vrepo.RefNotFoundError, match="has only 3 ancestor"):
        repo.resolve("main~4")
    # through an expired snapshot's own id, its raw history still counts
    assert repo.resolve(f"{ids['c3']}~1") == ids["c2"]


def test_expiry_across_history_pages():
    """Enough commits that the history index has pages, cut in the middle of one."""
    repo = vrepo.Repository.create(memory_storage())
    old = _commits(repo, *(f"c{i}" for i in range(25)))
    repo.create_tag("keep", old["c7"])
    cut = _now()
    new = _commits(repo, *(f"n{i}" for i in range(20)))
    expired = repo.expire_snapshots(cut)
    assert expired == [old[f"c{i}"] for i in reversed(range(25)) if i != 7]
    assert _messages(repo) == [f"n{i}" for i in reversed(range(20))] + ["c7", ROOT]
    assert repo.resolve("main~20") == old["c7"]
    assert repo.readonly_session(as_of=cut).snapshot_id == old["c7"]
    assert (
        repo.readonly_session(as_of=repo.lookup_snapshot(new["n3"]).written_at).snapshot_id
        == (new["n3"])
    )


def test_diff_across_the_expired_stretch_is_unchanged(repo):
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="a", shape=(16,), chunks=(2,), dtype="i4")
    array[:] = -1  # every chunk stored (a fill value would store none)
    first = session.commit("create a")
    for k in range(4):  # each commit rewrites two chunks and adds an attribute
        session = repo.writable_session("main")
        array = zarr.open_array(session.store, path="a", mode="a")
        array[4 * k : 4 * k + 4] = k + 1
        array.attrs[f"k{k}"] = k
        session.commit(f"write {k}")
    cut = _now()
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="a", mode="a")[0:2] = 9
    head = session.commit("last")
    before = repo.diff(first, head)
    assert before.chunks_of("/a").changed == 8 and before.metadata_changed == ("/a",)
    repo.create_tag("first", first)
    assert len(repo.expire_snapshots(cut)) == 4
    assert _messages(repo) == ["last", "create a", ROOT]
    assert repo.diff(first, head) == before
    assert repo.diff("tag:first", "main") == before
    reader = repo.readonly_session()
    expected = np.repeat(np.arange(1, 5, dtype="i4"), 4)
    expected[0:2] = 9
    np.testing.assert_array_equal(zarr.open_array(reader.store, path="a", mode="r")[:], expected)


def test_a_session_opened_before_an_expiry_commits_after_it(repo):
    for g in ("g1", "g2"):
        _commit(repo, f"make {g}", group=g)
    early = repo.writable_session("main")  # its base will be expired
    zarr.open_group(early.store, path="g1", mode="a").attrs["early"] = True
    _commits(repo, "c0")
    late = repo.writable_session("main")  # based on the head: retained
    zarr.open_group(late.store, path="g2", mode="a").attrs["late"] = True
    assert repo.expire_snapshots(dt.timedelta(0)) == _ids_of(repo, "make g2", "make g1")
    assert _messages(repo) == ["c0", ROOT]
    late_id = late.commit("late writer")
    early_id = early.commit("early writer")  # rebased onto "late writer"
    assert _messages(repo) == ["early writer", "late writer", "c0", ROOT]
    assert repo.lookup_snapshot(early_id).parent_id == late_id
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    assert group["g1"].attrs["early"] is True and group["g2"].attrs["late"] is True


COMMITS = 10  # per thread


def test_expiry_beside_two_committing_threads(repo):
    for g in ("t0", "t1"):
        _commit(repo, f"make {g}", group=g)
    old = _commits(repo, "c0", "c1")
    cut = _now()
    committed: dict[int, list[str]] = {0: [], 1: []}
    errors: list[BaseException] = []
    started, expired_once = threading.Barrier(3), threading.Event()

    def writer(t: int) -> None:
        try:
            started.wait()
            for k in range(COMMITS):
                if k == COMMITS // 2:  # the rest after an expiry ran beside the first half
                    assert expired_once.wait(10)
                committed[t].append(_commit(repo, f"t{t}-{k}", group=f"t{t}"))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in (0, 1)]
    for thread in threads:
        thread.start()
    started.wait()
    returned: list[str] = []
    while any(thread.is_alive() for thread in threads) or not returned:
        returned += repo.expire_snapshots(cut)
        expired_once.set()
    for thread in threads:
        thread.join()
    returned += repo.expire_snapshots(cut)  # the head it kept may have moved on since
    assert errors == []
    history = [i.id for i in repo.ancestry()]
    assert set(committed[0] + committed[1]) <= set(history)
    assert len(history) == 2 * COMMITS + 1
    assert sorted(returned) == sorted([*old.values(), *_ids_of(repo, "make t0", "make t1")])
    # now with a cut-off that moves past the writers: each snapshot is either still in the
    # history or was returned by exactly one expiry
    committed, _ = {0: [], 1: []}, expired_once.clear()
    threads = [threading.Thread(target=writer, args=(t,)) for t in (0, 1)]
    for thread in threads:
        thread.start()
    started.wait()
    moving: list[str] = []
    while any(thread.is_alive() for thread in threads):
        moving += repo.expire_snapshots(dt.timedelta(0))
        expired_once.set()
    for thread in threads:
        thread.join()
    assert errors == []
    history = [i.id for i in repo.ancestry()]
    assert len(moving) == len(set(moving)) and not set(moving) & set(history)
    assert set(moving) | set(history) >= set(committed[0] + committed[1])
    assert history[0] in committed[0] + committed[1] and history[-1] == _ids_of(repo, ROOT)[0]
    _assert_unreached(repo, returned + moving)


def test_concurrent_expiries_agree(repo):
    ids = [_commit(repo, f"c{i}") for i in range(20)]
    cut_offs = [repo.lookup_snapshot(i).written_at for i in ids[1:19:3]]  # c1, c4, ..., c16
    returned: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda t=t: returned.append(repo.expire_snapshots(t)))
        for t in cut_offs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [i for r in returned for i in r]
    assert len(returned) == len(cut_offs) and sorted(flat) == sorted(ids[:16])  # each once
    assert _messages(repo) == [f"c{i}" for i in reversed(range(16, 20))] + [ROOT]
    keys, records = _expiry_records(repo)
    assert [r.seq for r in records] == list(reversed(range(len(keys))))
    assert records[0].older_than == max(r.older_than for r in records)


def _ids_of(repo: vrepo.Repository, *messages: str) -> list[str]:
    """The ids of snapshots with these messages, found through the raw parent chain."""
    found, current = {}, repo.lookup_branch("main")
    while current is not None:
        info = repo.lookup_snapshot(current)
        found.setdefault(info.message, info.id)
        current = info.parent_id
    return [found[m] for m in messages]


def test_a_later_cut_off_grows_the_records_and_cuts_go_with_their_snapshots(repo):
    old = _commits(repo, "c0", "c1")
    first = _now()
    mid = _commits(repo, "n0", "n1")
    second = _now()
    head = _commit(repo, "h0")
    root = list(repo.ancestry())[-1].id
    assert repo.expire_snapshots(first) == [old["c1"], old["c0"]]
    keys, records = _expiry_records(repo)
    assert len(keys) == 1 and records[0].seq == 0
    assert records[0].cuts == {mid["n0"]: root}
    assert records[0].older_than == int(first.timestamp() * 1_000_000)
    assert repo.expire_snapshots(second) == [mid["n1"], mid["n0"]]
    keys, records = _expiry_records(repo)
    assert len(keys) == 2 and [r.seq for r in records] == [1, 0]  # newest first
    # n0 is unreached but still stored: its cut stays, so its own history stays whole
    assert records[0].cuts == {mid["n0"]: root, head: root}
    assert records[1].cuts == {mid["n0"]: root}  # write-once: the old record is unchanged
    assert _messages(repo) == ["h0", ROOT]
    assert _messages(repo, snapshot_id=mid["n0"]) == ["n0", ROOT]
    assert repo.expire_snapshots(first) == []  # an earlier cut-off undoes nothing
    assert len(_expiry_records(repo)[0]) == 2
    # once garbage collection deleted n0, the next record drops its cut
    repo.garbage_collect(older_than=dt.timedelta(0))
    with pytest.raises(vrepo.SnapshotNotFoundError):  # (a fresh handle: no cached copy)
        vrepo.Repository.open(repo.storage).lookup_snapshot(mid["n0"])
    third = _now()
    last = _commit(repo, "h1")
    assert repo.expire_snapshots(third) == [head]
    keys, records = _expiry_records(repo)
    assert [r.seq for r in records] == [2, 1, 0]
    assert records[0].cuts == {head: root, last: root}
    assert _messages(repo) == ["h1", ROOT]


_runner = CliRunner(
    **({"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {})
)


def _cli(*args: str) -> str:
    result = _runner.invoke(vrepo.cli.app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def test_cli_log_does_not_show_expired_snapshots(tmp_path):
    path = tmp_path / "r.vrepo"
    repo = vrepo.Repository.create(path)
    ids = _commits(repo, "old one", "old two", "old three")
    repo.create_tag("v1", ids["old two"])
    cut = _now()
    _commits(repo, "new one")
    repo.expire_snapshots(cut)
    lines = _cli("log", path).splitlines()
    assert [line.split()[0] for line in lines] == [i.id for i in repo.ancestry()]
    assert lines[0].endswith("new one") and lines[1].endswith("(tag: v1) old two")
    assert lines[2].endswith(ROOT) and len(lines) == 3
    for args in (("log", path, "--graph"), ("log", f"{path}@v1"), ("log", path, "--json")):
        out = _cli(*args)
        assert "old one" not in out and "old three" not in out, args


@pytest.mark.parametrize(
    ("older_than", "kwargs", "error"),
    [
        (dt.datetime(2020, 1, 1), {}, vrepo.InvalidArgumentError),  # naive
        (-dt.timedelta(seconds=1), {}, vrepo.InvalidArgumentError),
        ("2020-01-01", {}, vrepo.InvalidArgumentError),
        (dt.timedelta(0), {"branch": "nope"}, vrepo.RefNotFoundError),
    ],
)
def test_invalid_input_changes_nothing(repo, older_than, kwargs, error):
    _commits(repo, "c0", "c1")
    before = list(repo.ancestry())
    with pytest.raises(error):
        repo.expire_snapshots(older_than, **kwargs)
    assert list(repo.ancestry()) == before
    assert run_sync(repo.storage.list("expiry/")) == []


def test_amending_a_head_whose_parent_was_expired_keeps_them_out(repo):
    ids = _commits(repo, "c0", "c1", "c2")
    assert repo.expire_snapshots(dt.timedelta(0)) == [ids["c1"], ids["c0"]]
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").attrs["m"] = "amended"
    amended = session.amend("c2 amended")
    assert _messages(repo) == ["c2 amended", ROOT]
    assert repo.lookup_snapshot(amended).parent_id == repo.resolve("main~1")
