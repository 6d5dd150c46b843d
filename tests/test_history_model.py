"""Property test: random writes, commits, branches, tags, expiry and garbage collection
against a plain-Python model.

After any sequence of operations, every snapshot not collected must still read back exactly
what it held when committed (garbage collection deletes only snapshots no ref reaches), every
branch and tag must point where the model says, every open session must see its own
uncommitted writes, and expiry must keep heads, tags, the first snapshot and everything newer
than its cut-off in the histories.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import tempfile
import time

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

import vrepo
from vrepo._sync import run_sync
from vrepo.engine.gc import collect

# raw int32 chunks: "a" chunks are 8 bytes (inline), "b" chunks 24 bytes (stored as objects)
ARRAYS = {"a": ((6,), (2,)), "b": ((4, 5), (2, 3))}


class ModelArray:
    """An array as zarr keeps it: a shape over whole chunks.

    Shrinking deletes only chunks wholly outside the new shape, so values past the edge of a
    kept chunk reappear when the array grows again (plain zarr does the same), unless a write
    covered all of the chunk inside the shape: zarr then writes the chunk whole, and its part
    past the edge holds the fill value again.
    """

    def __init__(self, name: str) -> None:
        self.shape, self.chunks = ARRAYS[name]
        self.backing = np.zeros(self._capacity(self.shape), "i4")

    def _capacity(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(-(-n // c) * c for n, c in zip(shape, self.chunks, strict=True))

    def view(self) -> np.ndarray:
        return self.backing[tuple(slice(0, n) for n in self.shape)]

    def write(self, index: tuple[slice, ...], value: int) -> None:
        self.view()[index] = value
        per_axis = []
        for s, n, c in zip(index, self.shape, self.chunks, strict=True):
            whole = [k for k in range(s.start // c, -(-s.stop // c)) if s.start <= k * c]
            per_axis.append([k for k in whole if s.stop >= min((k + 1) * c, n)])
        for coords in itertools.product(*per_axis):
            region = tuple(
                slice(k * c, (k + 1) * c) for k, c in zip(coords, self.chunks, strict=True)
            )
            inside = tuple(
                slice(r.start, min(r.stop, n)) for r, n in zip(region, self.shape, strict=True)
            )
            kept = self.backing[inside].copy()
            self.backing[region] = 0
            self.backing[inside] = kept

    def resize(self, shape: tuple[int, ...]) -> None:
        backing = np.zeros(self._capacity(shape), "i4")
        pairs = zip(backing.shape, self.backing.shape, strict=True)
        keep = tuple(slice(0, min(a, b)) for a, b in pairs)
        backing[keep] = self.backing[keep]
        self.shape, self.backing = shape, backing

    def copy(self) -> ModelArray:
        twin = object.__new__(ModelArray)
        twin.shape, twin.chunks, twin.backing = self.shape, self.chunks, self.backing.copy()
        return twin


Model = dict[str, ModelArray]


def _open(store, name: str, shape: tuple[int, ...] | None = None) -> zarr.Array:
    default_shape, chunks = ARRAYS[name]
    return zarr.open_array(
        store,
        path=name,
        mode="a",
        shape=shape or default_shape,
        chunks=chunks,
        dtype="i4",
        fill_value=0,
        codecs=[zarr.codecs.BytesCodec()],
    )


def _read_all(store) -> dict[str, np.ndarray]:
    try:
        group = zarr.open_group(store, mode="r")
    except FileNotFoundError:
        return {}
    return {name: arr[...] for name, arr in group.arrays()}


class HistoryMachine(RuleBasedStateMachine):
    snapshots = Bundle("snapshots")
    branch_names = Bundle("branch_names")
    split_refs = vrepo.RepoConfig().manifest_split_refs

    def new_storage(self) -> vrepo.Storage:
        return vrepo.memory_storage()

    @initialize(target=snapshots)
    def setup(self):
        config = vrepo.RepoConfig(inline_threshold_bytes=16, manifest_split_refs=self.split_refs)
        self.repo = vrepo.Repository.create(self.new_storage(), config=config)
        first = self.repo.lookup_branch("main")
        self.committed: dict[str, Model] = {first: {}}
        self.heads: dict[str, str] = {"main": first}
        self.tags: dict[str, str] = {}
        self.sessions: dict[str, tuple[vrepo.Session, Model]] = {}
        self.tag_counter = 0
        self.collected: set[str] = set()
        return first

    def _session(self, branch: str) -> tuple[vrepo.Session, Model]:
        if branch not in self.sessions:
            head = self.heads[branch]
            model = {k: v.copy() for k, v in self.committed[head].items()}
            self.sessions[branch] = (self.repo.writable_session(branch), model)
        return self.sessions[branch]

    def _branch(self, data) -> str:
        return data.draw(st.sampled_from(sorted(self.heads)))

    @rule(data=st.data(), name=st.sampled_from(sorted(ARRAYS)), value=st.integers(-5, 5))
    def write(self, data, name, value):
        session, model = self._session(self._branch(data))
        zarr.open_group(session.store, mode="a")
        arr = _open(session.store, name)
        if name not in model:
            model[name] = ModelArray(name)
        shape = model[name].shape
        index = tuple(
            slice(lo, lo + data.draw(st.integers(1, n - lo)))
            for n in shape
            for lo in [data.draw(st.integers(0, n - 1))]
        )
        arr[index] = value
        model[name].write(index, value)

    @rule(data=st.data(), name=st.sampled_from(sorted(ARRAYS)), grow=st.integers(-2, 3))
    def resize(self, data, name, grow):
        session, model = self._session(self._branch(data))
        if name not in model:
            return
        shape = model[name].shape
        new_shape = (max(1, shape[0] + grow), *shape[1:])
        _open(session.store, name).resize(new_shape)
        model[name].resize(new_shape)

    @rule(data=st.data(), name=st.sampled_from(sorted(ARRAYS)))
    def delete_array(self, data, name):
        session, model = self._session(self._branch(data))
        if name in model:
            del zarr.open_group(session.store, mode="a")[name]
            del model[name]

    @rule(target=snapshots, data=st.data())
    def commit(self, data):
        branch = self._branch(data)
        if branch not in self.sessions:
            return self.heads[branch]
        session, model = self.sessions[branch]
        snapshot = session.commit(f"commit on {branch}", allow_empty=True)
        self.committed[snapshot] = {k: v.copy() for k, v in model.items()}
        self.heads[branch] = snapshot
        return snapshot

    @rule(data=st.data())
    def discard(self, data):
        branch = self._branch(data)
        if branch in self.sessions:
            self.sessions.pop(branch)[0].discard_changes()

    @rule(target=branch_names, snapshot=snapshots, name=st.sampled_from(["dev", "exp", "fix"]))
    def create_branch(self, snapshot, name):
        if name in self.heads:
            return name
        if self._refused_as_collected(self.repo.create_branch, name, snapshot):
            return name
        self.repo.create_branch(name, snapshot)
        self.heads[name] = snapshot
        return name

    @rule(name=consumes(branch_names))
    def delete_branch(self, name):
        if name in self.heads:
            self.repo.delete_branch(name)
            del self.heads[name]
            self.sessions.pop(name, None)

    @rule(data=st.data(), snapshot=snapshots)
    def reset_branch(self, data, snapshot):
        branch = self._branch(data)
        if self._refused_as_collected(self.repo.reset_branch, branch, snapshot):
            return
        self.repo.reset_branch(branch, snapshot)
        self.heads[branch] = snapshot
        self.sessions.pop(branch, None)  # its session now lags the branch: drop it

    @rule(snapshot=snapshots)
    def tag(self, snapshot):
        name = f"t{self.tag_counter}"
        self.tag_counter += 1
        if self._refused_as_collected(self.repo.create_tag, name, snapshot):
            return
        self.repo.create_tag(name, snapshot)
        self.tags[name] = snapshot

    def _refused_as_collected(self, move, name: str, snapshot: str) -> bool:
        """Moving a ref onto a collected snapshot is refused, and changes nothing."""
        if snapshot not in self.collected:
            return False
        with pytest.raises(vrepo.SnapshotNotFoundError):
            move(name, snapshot)
        return True

    def _histories(self) -> dict[str, list[vrepo.SnapshotInfo]]:
        refs = {f"branch:{b}": h for b, h in self.heads.items()}
        refs.update({f"tag:{t}": s for t, s in self.tags.items()})
        return {ref: list(self.repo.ancestry(snapshot_id=s)) for ref, s in refs.items()}

    @rule(data=st.data())
    def expire(self, data):
        before = self._histories()
        times = sorted({e.written_at for entries in before.values() for e in entries})
        cutoff = data.draw(st.sampled_from(times)) + dt.timedelta(microseconds=1)
        keep_tags = data.draw(st.booleans())
        expired = self.repo.expire_snapshots(cutoff, keep_tags=keep_tags)
        after = self._histories()
        reached_before = {e.id for entries in before.values() for e in entries}
        reached_after = {e.id for entries in after.values() for e in entries}
        assert sorted(expired) == sorted(reached_before - reached_after)
        tagged = set(self.tags.values())
        for ref, entries in before.items():
            kept = [e.id for e in after[ref]]
            must = [
                e.id
                for i, e in enumerate(entries)
                if i == 0
                or e.parent_id is None
                or e.written_at >= cutoff
                or e.id in self.heads.values()
                or (keep_tags and e.id in tagged)
            ]
            assert [i for i in kept if i in must] == must, ref  # in order, none lost
            assert set(kept) <= {e.id for e in entries}  # nothing new in a history
        assert self.repo.expire_snapshots(cutoff, keep_tags=keep_tags) == []

    @rule()
    def collect_garbage(self):
        """Collect as if ten seconds later with no grace period: open sessions are
        abandoned first (their chunks are garbage), and what no ref reaches goes."""
        for session, _ in self.sessions.values():
            session.discard_changes()
        self.sessions.clear()
        reached = {e.id for entries in self._histories().values() for e in entries}
        objects, timed = self.repo._objects, self.repo._info.format_version >= 3
        now_us = time.time_ns() // 1000 + 10_000_000
        report = run_sync(collect(objects, 0, dry_run=False, timed_ids=timed, now_us=now_us))
        assert report.retained_snapshots == len(reached)
        gone = set(self.committed) - reached
        assert report.snapshots == len(gone)
        self.collected |= gone
        for snapshot in gone:
            del self.committed[snapshot]
        again = run_sync(collect(objects, 0, dry_run=True, timed_ids=timed, now_us=now_us))
        assert again.objects - again.other == 0, again  # the first one left nothing behind

    @invariant()
    def sessions_see_their_own_writes(self):
        for session, model in self.sessions.values():
            _assert_same(_read_all(session.store), model)

    def teardown(self):
        if not hasattr(self, "repo"):
            return
        assert sorted(self.repo.list_branches()) == sorted(self.heads)
        for branch, head in self.heads.items():
            assert self.repo.lookup_branch(branch) == head
        assert sorted(self.repo.list_tags()) == sorted(self.tags)
        for name, snapshot in self.tags.items():
            assert self.repo.lookup_tag(name) == snapshot
        for snapshot, model in self.committed.items():
            _assert_same(_read_all(self.repo.readonly_session(snapshot_id=snapshot).store), model)


def _assert_same(got: dict[str, np.ndarray], expected: Model) -> None:
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name].view(), err_msg=name)


TestHistory = HistoryMachine.TestCase
TestHistory.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class SplitHistoryMachine(HistoryMachine):
    """The same, with manifests in pieces of 2 refs, so writes, resizes and deletes cross
    many pieces, and pieces empty out and come back."""

    split_refs = 2


TestSplitHistory = SplitHistoryMachine.TestCase
TestSplitHistory.settings = TestHistory.settings


class LocalHistoryMachine(HistoryMachine):
    """The same on local disk (with collections deleting files), in pieces of 3 refs."""

    split_refs = 3

    def new_storage(self) -> vrepo.Storage:
        self.root = tempfile.mkdtemp(prefix="vrepo-history-model-")
        return vrepo.local_storage(self.root)

    def teardown(self):
        try:
            super().teardown()
        finally:
            if hasattr(self, "root"):
                shutil.rmtree(self.root, ignore_errors=True)


TestLocalHistory = LocalHistoryMachine.TestCase
TestLocalHistory.settings = settings(TestHistory.settings, max_examples=30)
