"""Soak: every operation against a storage where 10% of calls fail, half after taking effect.

A user's loop retries each operation until it returns. Whatever failed on the way, the
repository must end up holding every acknowledged operation exactly once: each commit once in
main's history, each tag and branch where the last acknowledged operation put it, and all of
it readable. ``benchmarks/bench_fault_soak.py`` runs the same with 12,000 operations.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pytest
import zarr

import vrepo
from vrepo.storage import LocalStorage, MemoryStorage
from vrepo.testing import FaultyStorage, InjectedFault

T = TypeVar("T")
CHUNKS = 16


def until_it_returns(func: Callable[[], T], failures: list[int]) -> T:
    """What a careful user does: call again after a storage failure (bounded, to end)."""
    for _ in range(200):
        try:
            return func()
        except (vrepo.StorageError, InjectedFault):
            failures[0] += 1
    raise AssertionError(f"{func} kept failing")


def soak(storage: FaultyStorage, operations: int, seed: int) -> dict[str, int]:
    """Run random operations through ``storage``; check the result with faults turned off."""
    rng = random.Random(seed)
    failures = [0]
    repo = until_it_returns(lambda: vrepo.Repository.open_or_create(storage), failures)

    def setup() -> str:
        session = repo.writable_session()
        zarr.create_array(
            session.store, name="x", shape=(CHUNKS,), chunks=(1,), dtype="i8", fill_value=0
        )
        return session.commit("setup")

    commits, expected = ["setup"], np.zeros(CHUNKS, dtype="i8")
    until_it_returns(setup, failures)
    tags: dict[str, str] = {}
    branches: dict[str, str | None] = {}
    for i in range(operations):
        op = rng.choice(["commit", "commit", "tag", "branch", "reset", "delete"])
        if op == "commit":
            session = until_it_returns(repo.writable_session, failures)
            arr = until_it_returns(lambda s=session: zarr.open_array(s.store, path="x"), failures)
            chunk = rng.randrange(CHUNKS)

            def write(arr=arr, chunk=chunk, i=i) -> None:
                arr[chunk] = i + 1  # never the fill value: a real change

            until_it_returns(write, failures)
            until_it_returns(lambda s=session, i=i: s.commit(f"commit {i}"), failures)
            commits.append(f"commit {i}")
            expected[chunk] = i + 1
        elif op in ("tag", "branch"):
            head = until_it_returns(lambda: repo.lookup_branch("main"), failures)
            create = repo.create_tag if op == "tag" else repo.create_branch
            name = f"{op}{i}"
            until_it_returns(lambda c=create, n=name, h=head: c(n, h), failures)
            (tags if op == "tag" else branches)[name] = head
        elif op == "reset" and [b for b, s in branches.items() if s]:
            name = rng.choice(sorted(b for b, s in branches.items() if s))
            head = until_it_returns(lambda: repo.lookup_branch("main"), failures)
            until_it_returns(lambda n=name, h=head: repo.reset_branch(n, h), failures)
            branches[name] = head
        elif op == "delete" and [b for b, s in branches.items() if s]:
            name = rng.choice(sorted(b for b, s in branches.items() if s))
            until_it_returns(lambda n=name: repo.delete_branch(n), failures)
            branches[name] = None

    storage.rate = 0.0
    repo = vrepo.Repository.open(storage)
    history = [info.message for info in repo.ancestry(branch="main")]
    assert history[::-1][1:] == commits  # each acknowledged commit once, in order
    values = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    np.testing.assert_array_equal(values, expected)
    assert {t: repo.lookup_tag(t) for t in repo.list_tags()} == tags
    live = {b: s for b, s in branches.items() if s}
    assert {b: repo.lookup_branch(b) for b in repo.list_branches() if b != "main"} == live
    return {"operations": operations, "failures": failures[0], **_counts(storage)}


def _counts(storage: FaultyStorage) -> dict[str, int]:
    return {
        "faults_before": sum(n for (_, applied), n in storage.injected.items() if not applied),
        "faults_after": sum(n for (_, applied), n in storage.injected.items() if applied),
    }


@pytest.mark.parametrize("backend", ["memory", "local"])
def test_ten_percent_of_calls_failing_lose_and_double_nothing(backend: str, tmp_path) -> None:
    inner = MemoryStorage() if backend == "memory" else LocalStorage(tmp_path / "r.vrepo")
    storage = FaultyStorage(inner, rate=0.1, applied_share=0.5, seed=13)
    result = soak(storage, operations=150, seed=7)
    # the faults did happen, of both kinds, and the user saw some of them
    assert result["faults_before"] > 30 and result["faults_after"] > 5
    assert result["failures"] > 0


@pytest.mark.parametrize("backend", ["memory", "local"])
def test_committers_racing_through_faults_land_each_commit_once(backend: str, tmp_path) -> None:
    """Four threads commit disjoint chunks to main through the failing storage: they race,
    queue, and land each other's offered commits, and still every commit lands exactly once
    (a commit whose offer landed while its committer saw a failure is adopted on retry, not
    redone or reported as conflicting with itself)."""
    inner = MemoryStorage() if backend == "memory" else LocalStorage(tmp_path / "r.vrepo")
    storage = FaultyStorage(inner, rate=0.1, applied_share=0.5, seed=7)
    failures, writers, each = [0], 4, 12
    repo = until_it_returns(lambda: vrepo.Repository.open_or_create(storage), failures)

    def setup() -> str:
        session = repo.writable_session()
        zarr.create_array(session.store, name="x", shape=(writers * each,), chunks=(1,), dtype="i8")
        return session.commit("setup")

    until_it_returns(setup, failures)

    def writer(w: int) -> None:
        for chunk in range(w * each, (w + 1) * each):
            session = until_it_returns(repo.writable_session, failures)
            arr = until_it_returns(lambda s=session: zarr.open_array(s.store, path="x"), failures)

            def write(arr=arr, chunk=chunk) -> None:
                arr[chunk] = chunk + 1

            until_it_returns(write, failures)
            until_it_returns(lambda s=session, c=chunk: s.commit(f"chunk {c}"), failures)

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(writer, range(writers)))
    storage.rate = 0.0
    repo = vrepo.Repository.open(storage)
    history = [info.message for info in repo.ancestry(branch="main")]
    assert sorted(history[:-2]) == sorted(f"chunk {c}" for c in range(writers * each))
    values = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    np.testing.assert_array_equal(values, np.arange(1, writers * each + 1))
    assert failures[0] > 0
