"""Property test: random writes, commits, branches and tags against a plain-Python model.

After any sequence of operations, every snapshot ever committed must still read back exactly
what it held when committed, every branch and tag must point where the model says, and every
open session must see its own uncommitted writes.
"""

from __future__ import annotations

import numpy as np
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

# raw int32 chunks: "a" chunks are 8 bytes (inline), "b" chunks 24 bytes (stored as objects)
ARRAYS = {"a": ((6,), (2,)), "b": ((4, 5), (2, 3))}


class ModelArray:
    """An array as zarr keeps it: a shape over whole chunks.

    Shrinking deletes only chunks wholly outside the new shape, so values past the edge of a
    kept chunk reappear when the array grows again (plain zarr does the same).
    """

    def __init__(self, name: str) -> None:
        self.shape, self.chunks = ARRAYS[name]
        self.backing = np.zeros(self._capacity(self.shape), "i4")

    def _capacity(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(-(-n // c) * c for n, c in zip(shape, self.chunks, strict=True))

    def view(self) -> np.ndarray:
        return self.backing[tuple(slice(0, n) for n in self.shape)]

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

    @initialize(target=snapshots)
    def setup(self):
        config = vrepo.RepoConfig(inline_threshold_bytes=16)
        self.repo = vrepo.Repository.create(vrepo.memory_storage(), config=config)
        first = self.repo.lookup_branch("main")
        self.committed: dict[str, Model] = {first: {}}
        self.heads: dict[str, str] = {"main": first}
        self.tags: dict[str, str] = {}
        self.sessions: dict[str, tuple[vrepo.Session, Model]] = {}
        self.tag_counter = 0
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
        model[name].view()[index] = value

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
        self.repo.reset_branch(branch, snapshot)
        self.heads[branch] = snapshot
        self.sessions.pop(branch, None)  # its session now lags the branch: drop it

    @rule(snapshot=snapshots)
    def tag(self, snapshot):
        name = f"t{self.tag_counter}"
        self.tag_counter += 1
        self.repo.create_tag(name, snapshot)
        self.tags[name] = snapshot

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
