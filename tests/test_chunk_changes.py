"""ChunkChanges: a session's uncommitted refs of one array, as a dict and as columns.

Compaction (the dict folded into manifest columns) is invisible from outside: every sequence of
writes, deletions and merges reads back as the same operations on a plain dict would.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import vrepo
from vrepo.engine import chunk_changes
from vrepo.engine.chunk_changes import ChunkChanges
from vrepo.format import ChunkRef

_ID = "1" * 20


def _ref(n: int) -> ChunkRef | None:
    """A ref per small integer: stored (with and without checksum), inline, or a deletion."""
    kind = n % 4
    if kind == 0:
        return None
    if kind == 1:
        return ChunkRef.inlined(bytes([n % 256]) * (n % 5 + 1))
    return ChunkRef.external(_ID, length=n + 1, offset=n * 7, checksum=n if kind == 2 else None)


coords = st.tuples(st.integers(0, 5), st.integers(0, 5))
operations = st.lists(
    st.tuples(st.sampled_from(["set", "pop", "compact", "fold"]), coords, st.integers(0, 400)),
    max_size=60,
)


@pytest.fixture(autouse=True)
def _compact_often(monkeypatch):
    monkeypatch.setattr(chunk_changes, "COMPACT_AT", 3)


def _apply(ops, changes: ChunkChanges, model: dict) -> None:
    for op, c, n in ops:
        if op == "set":
            changes[c] = model[c] = _ref(n)
        elif op == "pop":
            assert changes.pop(c, "absent") == model.pop(c, "absent")
        elif op == "fold":
            changes._fold_recent()  # a new level, merged or not with the ones before
        else:
            changes.compact()


def _check(changes: ChunkChanges, model: dict) -> None:
    assert dict(changes.items()) == model
    assert len(changes) == len(model)
    assert sorted(changes) == sorted(model)
    for c in [(x, y) for x in range(7) for y in range(7)]:
        assert (c in changes) == (c in model)
        assert changes.get(c, "absent") == model.get(c, "absent")
    written, deleted = changes.columns()
    assert {tuple(c) for c in written.coords().tolist()} == {c for c, r in model.items() if r}
    assert {tuple(c) for c in deleted.tolist()} == {c for c, r in model.items() if r is None}
    assert changes.written_count() == sum(r is not None for r in model.values())
    assert sorted(map(tuple, changes.coords_array().tolist())) == sorted(model)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_reads_back_as_a_dict_would(ops):
    changes, model = ChunkChanges(), {}
    _apply(ops, changes, model)
    _check(changes, model)
    _check(pickle.loads(pickle.dumps(changes)), model)
    copied = changes.copy()
    copied[(6, 6)] = _ref(5)
    _check(changes, model)  # a copy is independent


@settings(max_examples=150, deadline=None)
@given(operations, operations, st.booleans())
def test_update_from_is_dict_update(ours_ops, theirs_ops, keep_ours):
    ours, ours_model = ChunkChanges(), {}
    theirs, theirs_model = ChunkChanges(), {}
    _apply(ours_ops, ours, ours_model)
    _apply(theirs_ops, theirs, theirs_model)
    ours.update_from(theirs, keep_ours=keep_ours)
    if keep_ours:
        ours_model = {**theirs_model, **ours_model}
    else:
        ours_model.update(theirs_model)
    _check(ours, ours_model)
    _check(theirs, theirs_model)  # left as it was


def test_a_missing_chunk_raises_key_error():
    changes = ChunkChanges()
    changes[(0,)] = _ref(1)
    changes.compact()
    with pytest.raises(KeyError):
        changes[(1,)]
    with pytest.raises(KeyError):
        del changes[(1,)]


def test_a_session_of_many_refs_commits_and_reads_back(tmp_path):
    """Writes, overwrites and deletions across many compactions commit exactly."""
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    session = repo.writable_session()
    array = zarr.create_array(session.store, name="x", shape=(40, 10), chunks=(1, 1), dtype="i4")
    session.commit("empty")
    session = repo.writable_session()
    array = zarr.open_array(session.store, path="x", mode="r+")
    expected = np.arange(400, dtype="i4").reshape(40, 10)
    array[:] = expected
    array[5:9] = -1  # overwrites of compacted refs
    expected[5:9] = -1
    assert len(session._content.changes.chunks["/x"]._recent) < 400  # really compacted
    np.testing.assert_array_equal(array[:], expected)  # uncommitted reads see the newest
    snapshot = session.commit("many refs")
    session = repo.writable_session()
    array = zarr.open_array(session.store, path="x", mode="r+")
    array[10:20] = 0  # zarr deletes chunks equal to the fill value
    expected[10:20] = 0
    session.commit("deleted some")
    read = zarr.open_array(repo.readonly_session().store, path="x", mode="r")
    np.testing.assert_array_equal(read[:], expected)
    old = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="x")
    assert old[12, 3] == 123


def test_forks_merge_their_columns(tmp_path):
    """Forks whose refs were compacted merge back without losing or duplicating any."""
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(30, 10), chunks=(1, 1), dtype="i4")
    session.commit("empty")
    session = repo.writable_session()
    forks = []
    for part in range(3):
        fork = session.fork()
        array = zarr.open_array(fork.store, path="x", mode="r+")
        array[part * 10 : (part + 1) * 10] = part + 1
        forks.append(pickle.loads(pickle.dumps(fork)))
    session.merge(*forks)
    session.commit("merged")
    read = zarr.open_array(repo.readonly_session().store, path="x", mode="r")
    np.testing.assert_array_equal(read[:, 0], np.repeat([1, 2, 3], 10))
    other = repo.writable_session()
    clash = other.fork()
    zarr.open_array(clash.store, path="x", mode="r+")[0:5] = 9
    again = other.fork()
    zarr.open_array(again.store, path="x", mode="r+")[3:8] = 8
    with pytest.raises(vrepo.ChunkConflictError):
        other.merge(clash, again)
