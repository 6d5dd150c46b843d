"""Repository.diff: nodes, per-array chunk counts and opaque objects between any two snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.core.buffer import cpu
from zarr.core.sync import sync

import vrepo
from vrepo.engine.diff import _columns_of, _compare_columns
from vrepo.format import ChunkRef, Manifest, new_id


@pytest.fixture
def repo(tmp_path):
    return vrepo.Repository.create(tmp_path / "r", vrepo.RepoConfig(inline_threshold_bytes=64))


def test_diff_counts_what_was_written(repo):
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="w")
    # 100 chunks of 400 bytes each: stored as chunk objects
    big = root.create_array("big", shape=(100, 100), chunks=(10, 10), dtype="f4", fill_value=0)
    big[:] = np.random.default_rng(0).random((100, 100), dtype="f4") + 1
    root.create_group("g").create_array("small", shape=(8,), chunks=(2,), dtype="i1")[:] = 1
    first = session.commit("first")

    big[0:10, :] = 5  # rewrites 10 chunks
    big[95:100, 95:100] = 7  # part of one more chunk: read-modify-write
    big[10:20, 0:30] = 0  # three chunks become fill value: zarr deletes them
    big.attrs["units"] = "K"
    del root["g/small"]
    root.create_group("new").create_array("a", shape=(6,), chunks=(4,), dtype="i8")[:] = 3
    second = session.commit("second")

    diff = repo.diff(first, second)
    assert diff.from_id == first and diff.to_id == second
    assert diff.chunks_of("/big") == vrepo.ArrayChunkDiff("/big", added=0, changed=11, removed=3)
    assert diff.chunks_of("/g/small") == vrepo.ArrayChunkDiff("/g/small", removed=4)
    assert diff.chunks_of("/new/a") == vrepo.ArrayChunkDiff("/new/a", added=2)
    assert diff.added_groups == ("/new",)
    assert diff.added_arrays == ("/new/a",)
    assert diff.removed_arrays == ("/g/small",)
    assert diff.removed_groups == ()
    assert diff.metadata_changed == ("/big",)
    assert [c.path for c in diff.chunks] == ["/big", "/g/small", "/new/a"]
    assert not diff.is_empty()

    back = repo.diff(second, first)  # the reverse swaps added and removed
    assert back.chunks_of("/big") == vrepo.ArrayChunkDiff("/big", added=3, changed=11)
    assert back.added_arrays == ("/g/small",) and back.removed_groups == ("/new",)

    same = repo.diff("main", second)
    assert same.is_empty() and str(same) == "no changes" and same.chunks == ()


def test_diff_from_nothing_and_json_shape(repo):
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(10,), chunks=(3,), dtype="i2")[:] = 1
    sid = session.commit("x")
    diff = repo.diff(None, "main")
    assert diff.from_id is None
    assert diff.added_groups == ("/",) and diff.added_arrays == ("/x",)
    assert diff.chunks_of("/x").added == 4
    assert diff.to_dict() == {
        "from_id": None,
        "to_id": sid,
        "added_groups": ["/"],
        "added_arrays": ["/x"],
        "removed_groups": [],
        "removed_arrays": [],
        "metadata_changed": [],
        "objects_added": [],
        "objects_changed": [],
        "objects_removed": [],
        "chunks": [{"path": "/x", "added": 4, "changed": 0, "removed": 0}],
    }
    assert "added arrays: /x" in str(diff) and "chunks of /x: +4 ~0 -0" in str(diff)


def test_diff_between_unrelated_branches(repo):
    session = repo.writable_session()
    arr = zarr.create_array(session.store, name="x", shape=(40,), chunks=(4,), dtype="i4")
    arr[:] = 1
    base = session.commit("base")
    repo.create_branch("a", base)
    repo.create_branch("b", base)
    a, b = repo.writable_session("a"), repo.writable_session("b")
    zarr.open_array(a.store, path="x")[0:12] = 2  # chunks 0-2
    zarr.open_array(b.store, path="x")[8:20] = 3  # chunks 2-4
    zarr.open_group(b.store).create_group("only_b")
    a.commit("a")
    b.commit("b")
    diff = repo.diff("a", "b")  # neither is an ancestor of the other
    assert diff.chunks_of("/x") == vrepo.ArrayChunkDiff("/x", changed=5)
    assert diff.added_groups == ("/only_b",)
    assert repo.diff("a", "a~1").chunks_of("/x").changed == 3


def test_inline_chunks_compare_by_bytes(repo):
    session = repo.writable_session()
    arr = zarr.create_array(
        session.store, name="x", shape=(6,), chunks=(1,), dtype="i1", compressors=None
    )
    arr[:] = [1, 2, 3, 4, 5, 6]  # 1-byte chunks: inline
    first = session.commit("first")
    arr[0:3] = [1, 2, 9]  # chunks 0 and 1 rewritten with the same bytes, chunk 2 differs
    second = session.commit("second")
    assert repo.diff(first, second).chunks_of("/x") == vrepo.ArrayChunkDiff("/x", changed=1)


def test_inline_to_external_is_a_change(tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r", vrepo.RepoConfig(inline_threshold_bytes=4))
    session = repo.writable_session()
    arr = zarr.create_array(
        session.store, name="x", shape=(4, 2), chunks=(1, 2), dtype="i2", compressors=None
    )
    arr[:] = 1  # 4-byte chunks: inline
    first = session.commit("first")
    repo.save_config(vrepo.RepoConfig(inline_threshold_bytes=0))
    later = repo.writable_session()
    zarr.open_array(later.store, path="x")[0] = 1  # same bytes, now a chunk object
    second = later.commit("second")
    assert repo.diff(first, second).chunks_of("/x").changed == 1


def test_redefined_array_replaces_all_chunks(repo):
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(12,), chunks=(3,), dtype="i4")[:] = 1
    first = session.commit("first")
    zarr.create_array(
        session.store, name="x", shape=(12,), chunks=(6,), dtype="i4", overwrite=True
    )[:] = 1
    second = session.commit("second")
    diff = repo.diff(first, second)
    assert diff.metadata_changed == ("/x",)
    assert diff.chunks_of("/x") == vrepo.ArrayChunkDiff("/x", added=2, removed=4)


def test_kind_change_is_removal_and_addition(repo):
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    first = session.commit("first")
    zarr.open_group(session.store).create_group("x", overwrite=True)
    second = session.commit("second")
    diff = repo.diff(first, second)
    assert diff.removed_arrays == ("/x",) and diff.added_groups == ("/x",)
    assert diff.chunks_of("/x") == vrepo.ArrayChunkDiff("/x", removed=2)


def test_opaque_objects(repo):
    session = repo.writable_session()
    store = session.store

    def put(key: str, data: bytes) -> None:
        sync(store.set(key, cpu.Buffer.from_bytes(data)))

    put("notes/a.txt", b"a")
    put("notes/b.txt", b"b" * 100)
    put("notes/c.txt", b"c")
    first = session.commit("notes")
    put("notes/a.txt", b"A")
    put("notes/c.txt", b"c")  # same bytes, inline: no change
    sync(store.delete("notes/b.txt"))
    put("notes/d.txt", b"d")
    diff = repo.diff(first, session.commit("more notes"))
    assert diff.objects_added == ("notes/d.txt",)
    assert diff.objects_changed == ("notes/a.txt",)
    assert diff.objects_removed == ("notes/b.txt",)
    assert diff.chunks == () and diff.added_arrays == ()


def test_bad_references_in_diff(repo):
    with pytest.raises(vrepo.RefNotFoundError, match="has only 0 ancestors"):
        repo.diff("main~1", "main")
    with pytest.raises(vrepo.RefNotFoundError, match="no branch, tag or snapshot id 'nope'"):
        repo.diff("main", "nope")


# --- the vectorised comparison against a plain Python one -----------------------------------


def _as_dict(manifests):
    out = {}
    for m in manifests:
        for coord in m.coords().tolist():
            out[tuple(coord)] = m.lookup(coord)
    return out


def _reference_counts(old, new):
    a, b = _as_dict(old), _as_dict(new)
    changed = sum(a[k] != b[k] for k in a.keys() & b.keys())
    return len(b.keys() - a.keys()), changed, len(a.keys() - b.keys())


@pytest.mark.parametrize("seed", range(30))
def test_vectorised_comparison_matches_a_python_loop(seed):
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(1, 4))
    extent = tuple(int(x) for x in rng.integers(1, 8, ndim))
    ids = [new_id() for _ in range(4)]
    pool = [ChunkRef.external(ids[i % 4], 10 + i % 3, offset=i % 2 * 7) for i in range(8)]
    inline_pool = [b"", b"x", b"xy", b"yx", b"xyz" * 3, b"q" * 9]
    cells = int(np.prod(extent))

    def manifests():
        parts = int(rng.integers(1, 3))  # split manifests are concatenated
        sizes = rng.multinomial(int(rng.integers(0, cells + 1)), [1 / parts] * parts)
        taken = rng.permutation(cells)
        out, start = [], 0
        for size in sizes:
            chosen = taken[start : start + size]
            start += size
            grid = np.stack(np.unravel_index(chosen, extent), 1) if size else np.zeros((0, ndim))
            refs = [
                ChunkRef.inlined(inline_pool[rng.integers(len(inline_pool))])
                if rng.random() < 0.4
                else pool[rng.integers(len(pool))]
                for _ in range(size)
            ]
            out.append(Manifest.from_refs(ndim, grid.astype(np.int64), refs))
        return out

    old, new = manifests(), manifests()
    got = _compare_columns(_columns_of(old, ndim), _columns_of(new, ndim))
    assert got == _reference_counts(old, new)
    assert _compare_columns(_columns_of(old, ndim), _columns_of(old, ndim)) == (0, 0, 0)
