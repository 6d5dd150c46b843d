"""Taking turns on a contended branch: claims queue the losers of a race; they are only hints.

Many committers racing on one branch each claim a record number (``turns/``) after losing a
race, and wait for the record before theirs. Safety never rests on a claim: a stale claim
delays a commit by at most its lease, a withdrawn one not at all, and no claim is left behind.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zarr

import vrepo
from vrepo.engine import turns
from vrepo.format import TurnClaim, encode_turn_claim, ref_record_key, turn_dir, turn_key
from vrepo.storage import MemoryStorage


def _setup(storage: vrepo.Storage, n: int) -> vrepo.Repository:
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(n,), chunks=(1,), dtype="i4", fill_value=0)
    session.commit("setup")
    return repo


def _commit_one(repo: vrepo.Repository, i: int) -> int:
    session = repo.writable_session()
    zarr.open_array(session.store, path="x", mode="r+")[i] = i + 1
    session.commit(f"chunk {i}")
    return session.commit_attempts


def _claims(storage: vrepo.Storage) -> list[str]:
    return asyncio.run(storage.list("turns/"))


def test_threads_racing_take_turns_and_lose_nothing(tmp_path) -> None:
    storage = vrepo.local_storage(tmp_path / "r.vrepo")
    repo = _setup(storage, 64)
    with ThreadPoolExecutor(8) as pool:
        attempts = list(
            pool.map(lambda i: _commit_one(vrepo.Repository.open(storage), i), range(64))
        )
    values = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    np.testing.assert_array_equal(values, np.arange(1, 65))
    assert len(list(repo.ancestry())) == 64 + 2
    assert max(attempts) <= 20
    assert _claims(storage) == []  # every claim was released


def _stale_claim(storage: vrepo.Storage, repo: vrepo.Repository) -> str:
    """A claim on the branch's next record by a committer that died."""
    seq = len(repo.branch_history("main"))
    key = turn_key("main", seq)
    claim = TurnClaim("main", seq, "DEADDEADDEADDEADDEAD", 0)
    assert asyncio.run(storage.put_if_absent(key, encode_turn_claim(claim)))
    return key


def test_a_claim_left_by_a_dead_committer_delays_at_most_its_lease() -> None:
    storage = MemoryStorage()
    repo = _setup(storage, 4)
    stale = _stale_claim(storage, repo)
    turns.note_lost_race(storage, "main")  # contended: the next commit queues
    started = time.monotonic()
    attempts = _commit_one(repo, 0)
    waited = time.monotonic() - started
    assert attempts == 1
    assert turns._MIN_LEASE_S <= waited < turns._MIN_LEASE_S + 5
    assert repo.lookup_snapshot(repo.lookup_branch("main")).message == "chunk 0"
    assert _claims(storage) == [stale]  # the dead one's claim stays (garbage, tiny)


def test_a_withdrawn_claim_does_not_delay() -> None:
    storage = MemoryStorage()
    repo = _setup(storage, 4)
    stale = _stale_claim(storage, repo)
    turns.note_lost_race(storage, "main")

    async def withdraw_soon() -> None:
        await asyncio.sleep(0.05)
        await storage.delete(stale)

    async def commit() -> float:
        session = repo.writable_session()
        zarr.open_array(session.store, path="x", mode="r+")[1] = 2
        started = time.monotonic()
        await asyncio.gather(withdraw_soon(), session.commit_async("after a withdrawn claim"))
        return time.monotonic() - started

    assert asyncio.run(commit()) < turns._MIN_LEASE_S / 2
    assert _claims(storage) == []


def test_a_committer_queues_behind_earlier_claims() -> None:
    storage = MemoryStorage()
    repo = _setup(storage, 4)
    head = repo.branch_history("main")[0].seq
    first = asyncio.run(turns.take_turn(storage, "main", "A" * 20))
    assert first.claim_key == turn_key("main", head + 1)
    session = repo.writable_session()
    zarr.open_array(session.store, path="x", mode="r+")[0] = 1

    async def second_waits() -> tuple[bool, turns.Turn]:
        task = asyncio.ensure_future(turns.take_turn(storage, "main", "B" * 20))
        await asyncio.sleep(0.1)
        waiting = not task.done()
        await session.commit_async("the first claimant's record: the second's turn comes")
        return waiting, await task

    waiting, turn = asyncio.run(second_waits())
    assert waiting
    assert turn.claim_key == turn_key("main", head + 2)
    assert turn.head.record.seq == head + 1


def test_claims_are_hints_a_failing_claim_write_never_fails_a_commit() -> None:
    from vrepo.testing import FaultyStorage

    storage = FaultyStorage(MemoryStorage())
    repo = _setup(storage, 4)
    turns.note_lost_race(storage, "main")
    storage.fail_next("put_if_absent", key_prefix=turn_dir("main"))
    assert _commit_one(repo, 2) == 1
    assert storage.injected["put_if_absent", False] == 1


def test_claim_keys_sort_newest_first_like_records() -> None:
    assert turn_key("main", 5) < turn_key("main", 4)
    assert (
        turn_key("main", 4).rsplit("/", 1)[1]
        == ref_record_key("branch", "main", 4).rsplit("/", 1)[1]
    )
    with pytest.raises(ValueError):
        turn_key("main", -1)
