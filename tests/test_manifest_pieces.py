"""Split manifests: an array's refs in pieces by block of the chunk grid; a commit rewrites only
the pieces it wrote in, a read loads only the pieces it needs, and every chunk reads back."""

from __future__ import annotations

import collections
import itertools
from pathlib import Path

import numpy as np
import pytest
import zarr

import vrepo
from vrepo._sync import run_sync
from vrepo.format import ChunkRef, Manifest, VirtualRef
from vrepo.format.manifest_split import choose_split, split_columns
from vrepo.storage.local import LocalStorage


@pytest.mark.parametrize(
    ("grid", "max_refs", "split"),
    [
        ((1000, 1000), 32768, (32, 1000)),
        ((10, 10), 32768, (3276, 10)),
        ((5, 100_000), 32768, (1, 32768)),
        ((3, 4, 5), 7, (1, 1, 5)),
        ((365, 0), 100, (100, 1)),
        ((), 100, ()),
        ((50,), 1, (1,)),
    ],
)
def test_choose_split(grid, max_refs, split):
    assert choose_split(grid, max_refs) == split
    assert int(np.prod(split)) <= max_refs


def test_split_columns_keeps_every_ref_of_each_piece():
    rng = np.random.default_rng(5)
    coords = np.array([(i, j) for i in range(9) for j in range(7)], dtype=np.uint64)
    coords = coords[rng.permutation(len(coords))[:40]]
    refs = []
    for k in range(len(coords)):
        if k % 3 == 0:  # inline, of varied lengths
            refs.append(ChunkRef.inlined(bytes([k]) * (k % 5 + 1)))
        elif k % 5 == 0:  # virtual, into a few files: each piece keeps the sources it uses
            refs.append(VirtualRef(f"file:///d/{k % 4}.nc", 8 * k, 8, f"v{k % 4}"))
        else:
            refs.append(ChunkRef.external(f"0{k:019d}"[:20].replace("1", "Z"), k, checksum=k))
    whole = Manifest.from_refs(2, coords, refs)
    pieces = split_columns(whole.columns, (2, 3))
    seen = 0
    for piece, cols in pieces:
        manifest = Manifest(*cols)
        seen += len(manifest)
        for c in manifest.coords():
            assert tuple(int(x) // s for x, s in zip(c, (2, 3), strict=True)) == piece
            assert manifest.lookup(c) == whole.lookup(c)
        assert Manifest.decode(manifest.encode(), what="piece") == manifest
        named = {(r.location, r.validator) for r in manifest.refs() if type(r) is VirtualRef}
        assert set(manifest.sources) == named
    assert seen == len(whole) and whole.virtual_count > 0
    assert sorted(p for p, _ in pieces) == [p for p, _ in pieces]


@pytest.fixture
def repo(tmp_path: Path) -> vrepo.Repository:
    config = vrepo.RepoConfig(inline_threshold_bytes=0, manifest_split_refs=20)
    return vrepo.Repository.create(tmp_path / "r.vrepo", config=config)


def _manifests(repo: vrepo.Repository, path: str = "/x"):
    head = run_sync(repo._objects.get_snapshot(repo.lookup_branch("main")))
    return head.node(path).manifests


def test_random_writes_and_deletes_read_back_over_many_commits(repo):
    """A (24, 15) array in chunks (2, 3): a 12 x 5 grid, pieces of 4 x 5 chunks."""
    rng = np.random.default_rng(11)
    expected = np.zeros((24, 15), dtype="i4")
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="x", shape=(24, 15), chunks=(2, 3), dtype="i4")
    session.commit("create")
    for step in range(12):
        session = repo.writable_session("main")
        array = zarr.open_array(session.store, path="x", mode="r+")
        for _ in range(rng.integers(1, 6)):
            i, j = rng.integers(0, 12), rng.integers(0, 5)
            block = (slice(2 * i, 2 * i + 2), slice(3 * j, 3 * j + 3))
            value = 0 if rng.random() < 0.3 else step + 1  # 0: the fill value, so deleted
            array[block] = value
            expected[block] = value
        session.commit(f"step {step}")
        fresh = vrepo.Repository.open(repo.storage)
        got = zarr.open_array(fresh.readonly_session().store, path="x", mode="r")[:]
        np.testing.assert_array_equal(got, expected)
        manifests = _manifests(fresh)
        assert all(m.split == (4, 5) and 0 < m.count <= 20 for m in manifests)
        assert sum(m.count for m in manifests) == fresh.list_nodes()[1].chunk_count


def test_a_commit_rewrites_only_the_pieces_it_wrote_in(repo, monkeypatch):
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="x", shape=(40, 10), chunks=(1, 1), dtype="i4")
    array[:] = 1
    session.commit("400 chunks: 20 pieces of 2 x 10")
    before = _manifests(repo)
    assert len(before) == 20
    written = []
    put_new = LocalStorage.put_new

    async def counting_put_new(self, key, data):
        written.append(key.split("/")[0])
        return await put_new(self, key, data)

    monkeypatch.setattr(LocalStorage, "put_new", counting_put_new)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="x", mode="r+")[17, 3] = 5
    session.commit("one chunk")
    assert written.count("manifests") == 1
    after = _manifests(repo)
    changed = [(a.piece, b.piece) for a, b in zip(before, after, strict=True) if a.id != b.id]
    assert changed == [((8, 0), (8, 0))]
    diff = repo.diff("main~1", "main").chunks[0]
    assert (diff.added, diff.changed, diff.removed) == (0, 1, 0)


def test_a_read_loads_only_the_pieces_it_needs(repo, monkeypatch):
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="x", shape=(40, 10), chunks=(1, 1), dtype="i4")
    array[:] = np.arange(400).reshape(40, 10)
    session.commit("400 chunks")
    reads = collections.Counter()
    get = LocalStorage.get

    async def counting_get(self, key, *args, **kwargs):
        reads[key.split("/")[0]] += 1
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStorage, "get", counting_get)
    fresh = vrepo.Repository.open(repo.storage)
    value = zarr.open_array(fresh.readonly_session().store, path="x", mode="r")[33, 7]
    assert value == 337
    assert reads["manifests"] == 1


def test_appends_along_the_leading_dimension_touch_the_newest_piece_only(repo):
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="x", shape=(0, 10), chunks=(1, 1), dtype="i4")
    session.commit("empty")
    ids_seen: list[list[str]] = []
    for t in range(8):
        session = repo.writable_session("main")
        array = zarr.open_array(session.store, path="x", mode="r+")
        array.append(np.full((1, 10), t, dtype="i4"))
        session.commit(f"append {t}")
        ids_seen.append([m.id for m in _manifests(repo)])
    for older, newer in itertools.pairwise(ids_seen):
        assert newer[: len(older) - 1] == older[:-1]  # every piece but the newest is kept
    assert [m.piece for m in _manifests(repo)] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    got = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    np.testing.assert_array_equal(got, np.repeat(np.arange(8), 10).reshape(8, 10))


def test_deleting_every_chunk_of_a_piece_drops_it(repo):
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="x", shape=(6, 10), chunks=(1, 1), dtype="i4")
    array[:] = 3
    session.commit("three pieces")
    assert len(_manifests(repo)) == 3
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="x", mode="r+")[2:4, :] = 0  # the fill value
    session.commit("the middle piece gone")
    assert [m.piece for m in _manifests(repo)] == [(0, 0), (2, 0)]
