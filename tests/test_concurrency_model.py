"""Stateful property test: concurrent sessions, branches, tags and resets against a model.

Several sessions may be open on one branch at once. The model predicts every commit's fate:
a clean rebase, a `ConflictError` (chunks written by both, or a branch reset or deleted under
the session), or a solver's settlement, and what every snapshot then holds.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import vrepo

CHUNKS = 2  # array "a": 2 chunks of 2 int32 values; every write fills whole chunks
State = dict[int, int]  # chunk index -> value (missing: never written, reads as 0)


class _Commit:
    def __init__(self, parent: str | None, state: State, written: set[int]) -> None:
        self.parent, self.state, self.written = parent, state, written


class _OpenSession:
    def __init__(self, session: vrepo.Session, branch: str, base: str) -> None:
        self.session, self.branch, self.base = session, branch, base
        self.writes: State = {}


class ConcurrencyMachine(RuleBasedStateMachine):
    split_refs = vrepo.RepoConfig().manifest_split_refs

    @initialize()
    def setup(self):
        config = vrepo.RepoConfig(manifest_split_refs=self.split_refs)
        self.repo = vrepo.Repository.create(vrepo.memory_storage(), config=config)
        session = self.repo.writable_session()
        zarr.create_array(session.store, name="a", shape=(2 * CHUNKS,), chunks=(2,), dtype="i4")
        first = session.commit("create a")
        self.initial = self.repo.lookup_snapshot(first).parent_id  # holds no array: never used
        self.commits = {first: _Commit(self.initial, {}, set())}
        self.heads = {"main": first}
        self.deleted_branches: set[str] = set()
        self.tags: dict[str, str] = {}
        self.sessions: list[_OpenSession] = []

    # --- helpers -----------------------------------------------------------------------------

    def _descends(self, snapshot: str, ancestor: str) -> bool:
        current: str | None = snapshot
        while current in self.commits:
            if current == ancestor:
                return True
            current = self.commits[current].parent
        return False

    def _winners_wrote(self, head: str, base: str) -> set[int]:
        written, current = set(), head
        while current != base:
            written |= self.commits[current].written
            current = self.commits[current].parent
        return written

    # --- rules -------------------------------------------------------------------------------

    @precondition(lambda self: len(self.sessions) < 6)
    @rule(data=st.data())
    def open_session(self, data):
        branch = data.draw(st.sampled_from(sorted(self.heads)))
        session = self.repo.writable_session(branch)
        assert session.snapshot_id == self.heads[branch]
        self.sessions.append(_OpenSession(session, branch, self.heads[branch]))

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), chunk=st.integers(0, CHUNKS - 1), value=st.integers(1, 99))
    def write(self, data, chunk, value):
        s = data.draw(st.sampled_from(self.sessions))
        zarr.open_array(s.session.store, path="a", mode="r+")[2 * chunk : 2 * chunk + 2] = value
        s.writes[chunk] = value

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), solver=st.sampled_from(["fail", "ours", "theirs"]))
    def commit(self, data, solver):
        self._commit(data.draw(st.sampled_from(self.sessions)), solver)

    @rule(
        data=st.data(),
        first=st.dictionaries(st.integers(0, CHUNKS - 1), st.integers(1, 99), min_size=1),
        second=st.dictionaries(st.integers(0, CHUNKS - 1), st.integers(1, 99), min_size=1),
        solvers=st.tuples(*[st.sampled_from(["fail", "ours", "theirs"])] * 2),
    )
    def race(self, data, first, second, solvers):
        """Two sessions open on one head, write, and commit one after the other."""
        branch = data.draw(st.sampled_from(sorted(self.heads)))
        pair = [
            _OpenSession(self.repo.writable_session(branch), branch, self.heads[branch])
            for _ in range(2)
        ]
        for s, writes in zip(pair, (first, second), strict=True):
            array = zarr.open_array(s.session.store, path="a", mode="r+")
            for chunk, value in writes.items():
                array[2 * chunk : 2 * chunk + 2] = value
            s.writes = dict(writes)
        self.sessions.extend(pair)
        for s, solver in zip(pair, solvers, strict=True):
            self._commit(s, solver)

    def _commit(self, s: _OpenSession, solver: str) -> None:
        head = self.heads.get(s.branch)
        if head is None or not self._descends(head, s.base):
            with pytest.raises(vrepo.ConflictError, match=r"deleted|does not descend"):
                s.session.commit("c", rebase_with=solver, allow_empty=True)
            self.sessions.remove(s)
            return
        clashes = set(s.writes) & self._winners_wrote(head, s.base)
        event(
            f"commit: {'clash, ' + solver if clashes else 'clean' if head == s.base else 'rebased'}"
        )
        if clashes and solver == "fail":
            with pytest.raises(vrepo.ConflictError) as info:
                s.session.commit("c", rebase_with=solver, allow_empty=True)
            [conflict] = info.value.conflicts
            assert sorted(c for (c,) in conflict.chunks) == sorted(clashes)
            return  # the session keeps its changes
        snapshot = s.session.commit("c", rebase_with=solver, allow_empty=True)
        kept = {c: v for c, v in s.writes.items() if solver != "theirs" or c not in clashes}
        self.commits[snapshot] = _Commit(head, {**self.commits[head].state, **kept}, set(kept))
        self.heads[s.branch] = snapshot
        s.base, s.writes = snapshot, {}

    @rule(data=st.data(), name=st.sampled_from(["dev", "exp"]))
    def create_branch(self, data, name):
        if name in self.heads:
            return
        snapshot = data.draw(st.sampled_from(list(self.commits)))
        self.repo.create_branch(name, snapshot)
        self.heads[name] = snapshot

    @rule(data=st.data())
    def reset_branch(self, data):
        branch = data.draw(st.sampled_from(sorted(self.heads)))
        snapshot = data.draw(st.sampled_from(list(self.commits)))
        self.repo.reset_branch(branch, snapshot)
        self.heads[branch] = snapshot

    @rule(name=st.sampled_from(["dev", "exp"]))
    def delete_branch(self, name):
        if name in self.heads:
            self.repo.delete_branch(name)
            del self.heads[name]

    @rule(data=st.data())
    def tag(self, data):
        snapshot = data.draw(st.sampled_from(list(self.commits)))
        name = f"t{len(self.tags)}"
        self.repo.create_tag(name, snapshot)
        self.tags[name] = snapshot

    # --- checks ------------------------------------------------------------------------------

    @invariant()
    def refs_match(self):
        if not hasattr(self, "repo"):
            return
        assert self.repo.list_branches() == sorted(self.heads)
        for branch, head in self.heads.items():
            assert self.repo.lookup_branch(branch) == head

    def teardown(self):
        if not hasattr(self, "repo"):
            return
        for name, snapshot in self.tags.items():
            assert self.repo.lookup_tag(name) == snapshot
        for snapshot, commit in self.commits.items():
            store = self.repo.readonly_session(snapshot_id=snapshot).store
            got = zarr.open_array(store, path="a", mode="r")[:]
            expected = np.repeat([commit.state.get(c, 0) for c in range(CHUNKS)], 2)
            np.testing.assert_array_equal(got, expected, err_msg=snapshot)
            assert self.repo.lookup_snapshot(snapshot).parent_id == commit.parent


TestConcurrency = ConcurrencyMachine.TestCase
TestConcurrency.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SplitConcurrencyMachine(ConcurrencyMachine):
    """The same, with manifests in pieces of 3 refs: rebased commits merge into pieces that
    other commits rewrote."""

    split_refs = 3


TestSplitConcurrency = SplitConcurrencyMachine.TestCase
TestSplitConcurrency.settings = TestConcurrency.settings
