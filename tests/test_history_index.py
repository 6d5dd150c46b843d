"""The history index: ancestry, as_of and ~N read pages, not one snapshot per step, and agree
exactly with a walk of the snapshots' parents, across page merges, full pages, amends,
snapshots written without an index, and a damaged page."""

from __future__ import annotations

import collections
import datetime as dt
import math
import shutil
from pathlib import Path

import pytest
import zarr

import vrepo
from vrepo._sync import run_sync
from vrepo.engine import content, history_index
from vrepo.storage.local import LocalStorage


@pytest.fixture
def small_pages(monkeypatch):
    """Tiny index sizes, so a few dozen commits merge pages and fill some."""
    monkeypatch.setattr(history_index, "RECENT_ANCESTORS", 3)
    monkeypatch.setattr(history_index, "MAX_PAGE_ENTRIES", 12)


def _commit_many(repo: vrepo.Repository, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="a").attrs["i"] = i
        ids.append(session.commit(f"commit {i}", metadata={"i": i}))
    return ids


def _parent_walk(repo: vrepo.Repository, snapshot_id: str) -> list[vrepo.SnapshotInfo]:
    """The truth: every snapshot read, following parent ids."""
    infos, current = [], snapshot_id
    while current is not None:
        info = repo.lookup_snapshot(current)
        infos.append(info)
        current = info.parent_id
    return infos


@pytest.fixture
def repo(tmp_path: Path) -> vrepo.Repository:
    return vrepo.Repository.create(tmp_path / "r.vrepo")


def test_ancestry_and_tilde_agree_with_the_parent_walk_from_every_snapshot(repo, small_pages):
    ids = _commit_many(repo, 60)
    for sid in [*ids[::7], ids[-1]]:
        truth = _parent_walk(repo, sid)
        assert list(repo.ancestry(snapshot_id=sid)) == truth
        for n in range(len(truth)):
            assert repo.resolve(f"{sid}~{n}") == truth[n].id
        with pytest.raises(vrepo.RefNotFoundError, match=f"has only {len(truth) - 1} ancestor"):
            repo.resolve(f"{sid}~{len(truth)}")


def test_as_of_agrees_with_the_parent_walk(repo, small_pages):
    _commit_many(repo, 40)
    truth = _parent_walk(repo, repo.lookup_branch("main"))
    for info in truth:
        for when in (info.written_at, info.written_at + dt.timedelta(microseconds=1)):
            expected = next(i.id for i in truth if i.written_at <= when)
            assert repo.readonly_session(as_of=when).snapshot_id == expected
    with pytest.raises(vrepo.RefNotFoundError, match="no snapshot was written at or before"):
        repo.readonly_session(as_of=truth[-1].written_at - dt.timedelta(seconds=1))


def test_pages_merge_like_a_binary_counter_up_to_the_cap(repo, small_pages):
    _commit_many(repo, 80)
    head = run_sync(repo._objects.get_snapshot(repo.lookup_branch("main")))
    counts = [ref.count for ref in head.ancestor_pages]
    assert len(head.recent_ancestors) <= 3
    assert all(c <= 12 and c % 3 == 0 for c in counts)
    growing = [c for c in counts if c < 12]  # below the cap: distinct sizes, small first
    assert growing == sorted(set(growing))
    assert counts == growing + [12] * (len(counts) - len(growing))
    assert len(head.recent_ancestors) + sum(counts) == 80  # every ancestor, the root included


def test_a_walk_reads_pages_not_snapshots(tmp_path, monkeypatch):
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    _commit_many(repo, 300)
    reads: collections.Counter[str] = collections.Counter()
    get = LocalStorage.get

    async def counting_get(self, key, *args, **kwargs):
        reads[key.split("/")[0]] += 1
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStorage, "get", counting_get)
    fresh = vrepo.Repository.open(tmp_path / "r.vrepo")
    infos = list(fresh.ancestry())
    assert [i.message for i in infos[:2]] == ["commit 299", "commit 298"]
    assert len(infos) == 301
    assert reads["snapshots"] == 1
    assert 1 <= reads["history"] <= math.log2(300) + 1
    reads.clear()
    fresh.resolve("main~250")
    assert reads["snapshots"] <= 1 and reads["history"] <= 1


def test_a_commit_writes_a_page_once_per_recent_ancestors_commits(repo, monkeypatch):
    written: list[str] = []
    put_new = LocalStorage.put_new

    async def counting_put_new(self, key, data):
        if key.startswith("history/"):
            written.append(key)
        return await put_new(self, key, data)

    monkeypatch.setattr(LocalStorage, "put_new", counting_put_new)
    _commit_many(repo, 64)
    assert len(written) == 64 // 16 - 1  # the 17th commit writes the first page (16 entries)


def test_amend_keeps_the_index_of_the_snapshot_it_replaces(repo, small_pages):
    _commit_many(repo, 20)
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").attrs["amended"] = True
    amended = session.amend("commit 19, amended")
    truth = _parent_walk(repo, amended)
    assert list(repo.ancestry()) == truth
    assert [i.message for i in truth[:2]] == ["commit 19, amended", "commit 18"]


def test_snapshots_without_an_index_are_walked_and_the_index_taken_up_again(
    repo, small_pages, monkeypatch
):
    """As after an upgrade, or after a commit by a vrepo without the index."""
    _commit_many(repo, 10)

    async def no_index(self, amending):
        return self.base.id, (), (), []

    with monkeypatch.context() as m:
        m.setattr(content.Content, "_history", no_index)
        _commit_many(repo, 5, start=10)
    _commit_many(repo, 20, start=15)
    truth = _parent_walk(repo, repo.lookup_branch("main"))
    assert list(repo.ancestry()) == truth
    assert [i.message for i in truth[:1]] == ["commit 34"]
    for n in range(len(truth)):
        assert repo.resolve(f"main~{n}") == truth[n].id
    middle = truth[22]  # written without an index
    assert repo.readonly_session(as_of=middle.written_at).snapshot_id == middle.id


def test_a_damaged_page_is_a_format_error_not_a_wrong_history(tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    _commit_many(repo, 40)
    pages = sorted((tmp_path / "r.vrepo" / "history").iterdir())
    # swap two pages' contents: each is valid on its own, but not what the snapshot names
    a, b = pages[0].read_bytes(), pages[1].read_bytes()
    pages[0].write_bytes(b)
    pages[1].write_bytes(a)
    fresh = vrepo.Repository.open(tmp_path / "r.vrepo")
    with pytest.raises(vrepo.FormatError, match="history page"):
        list(fresh.ancestry())


def test_a_repository_written_before_the_index_walks_whole_after_new_commits(tmp_path, small_pages):
    """The format-1 fixture (written by an older vrepo, no index) plus indexed commits."""
    path = tmp_path / "v1.vrepo"
    shutil.copytree(Path(__file__).parent / "data" / "format_v1", path)
    repo = vrepo.Repository.open(path)
    old = [i.message for i in _parent_walk(repo, repo.lookup_branch("main"))]
    _commit_many(repo, 20)
    truth = _parent_walk(repo, repo.lookup_branch("main"))
    assert [i.message for i in truth[20:]] == old
    assert list(repo.ancestry()) == truth
    assert repo.resolve(f"main~{len(truth) - 1}") == truth[-1].id


def test_large_metadata_stays_in_its_snapshot_and_still_shows_in_the_history(tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").attrs["big"] = True
    provenance = {"log": "x" * 20_000}
    big = session.commit("with provenance", metadata=provenance)
    ids = _commit_many(repo, 20)
    head = run_sync(repo._objects.get_snapshot(ids[-1]))
    carried = [e for e in head.recent_ancestors if e.id == big]
    page_entries = [
        e
        for ref in head.ancestor_pages
        for e in run_sync(repo._objects.get_history_page(ref)).entries
        if e.id == big
    ]
    (entry,) = carried + page_entries
    assert entry.metadata is None  # not copied into later snapshots and pages
    fresh = vrepo.Repository.open(tmp_path / "r.vrepo")
    infos = {i.id: i for i in fresh.ancestry()}
    assert infos[big].metadata == provenance
    assert infos[ids[0]].metadata == {"i": 0}
    assert list(fresh.ancestry()) == _parent_walk(fresh, ids[-1])
