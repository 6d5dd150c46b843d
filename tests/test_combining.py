"""Combining commits: a turn holder lands the small, chunk-only commits offered behind it.

A queued commit's claim may carry the commit itself (an offer); whoever writes the record
before it lands it too, under the claimant's operation id, and the claimant adopts it. These
tests drive each side directly: offers in claims, landing them in order, stopping at a
conflict or a record someone else wrote, and a committer adopting what was landed for it.
"""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest
import zarr

import vrepo
from vrepo.engine import combining, turns
from vrepo.engine.refs import RefHead, new_operation, now_us, read_head, write_record
from vrepo.errors import FormatError
from vrepo.format import (
    ChunkRef,
    Offer,
    OfferedChunks,
    TurnClaim,
    decode_turn_claim,
    encode_turn_claim,
    new_id,
    turn_key,
)
from vrepo.format.envelope import FileType, encode_json_record


def _setup(tmp_path, n: int = 8) -> vrepo.Repository:
    repo = vrepo.Repository.create(str(tmp_path / "r.vrepo"))
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(n,), chunks=(1,), dtype="i4", fill_value=0)
    session.commit("setup")
    return repo


def _writing(repo: vrepo.Repository, chunk: int, value: int) -> vrepo.Session:
    session = repo.writable_session()
    zarr.open_array(session.store, path="x", mode="r+")[chunk] = value
    return session


def _offer(session: vrepo.Session, message: str) -> Offer | None:
    content = asyncio.run(session._ensure_content())
    return combining.offer_of(content, message, {"by": message})


def _claim(repo: vrepo.Repository, seq: int, offer: Offer | None) -> str:
    operation = new_operation()
    claim = TurnClaim("main", seq, operation, now_us(), offer)
    assert asyncio.run(repo.storage.put_if_absent(turn_key("main", seq), encode_turn_claim(claim)))
    return operation


def _head(repo: vrepo.Repository) -> RefHead:
    return asyncio.run(read_head(repo._objects.storage, "branch", "main"))


def _values(repo: vrepo.Repository) -> np.ndarray:
    return zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]


def test_an_offer_travels_in_its_claim_and_bad_ones_are_refused() -> None:
    ref = ChunkRef.inlined(b"\x01\x00\x00\x00")
    offer = Offer(new_id(), "m", {"k": [1, 2]}, [OfferedChunks("/x", [[3], [4]], [ref, None])])
    claim = TurnClaim("main", 7, new_operation(), now_us(), offer)
    assert decode_turn_claim(encode_turn_claim(claim), what="claim") == claim
    # a claim without an offer (as older vrepo writes them) still reads
    plain = TurnClaim("main", 7, new_operation(), now_us())
    assert decode_turn_claim(encode_turn_claim(plain), what="claim").offer is None
    good = msgspec.to_builtins(claim)
    for field, value in (
        ("chunks", [{"path": "/x", "coords": [[3]], "refs": [["../../etc/passwd", 0, 4]]}]),
        ("chunks", [{"path": "/x", "coords": [[-1]], "refs": [None]}]),
        ("chunks", [{"path": "/x", "coords": [[1], [2]], "refs": [None]}]),
        ("base_id", "not-an-id"),
    ):
        body = {**good, "offer": {**good["offer"], field: value}}
        with pytest.raises(FormatError, match="invalid turn claim"):
            decode_turn_claim(encode_json_record(FileType.TURN, body), what="claim")


def test_only_small_chunk_only_changes_are_offered(tmp_path) -> None:
    repo = _setup(tmp_path)
    offer = _offer(_writing(repo, 2, 5), "chunks")
    assert offer is not None and [(a.path, a.coords) for a in offer.chunks] == [("/x", [[2]])]
    resized = repo.writable_session()
    zarr.open_array(resized.store, path="x", mode="r+").resize((16,))
    assert _offer(resized, "metadata") is None
    grouped = repo.writable_session()
    zarr.create_group(grouped.store, path="g")
    assert _offer(grouped, "new node") is None


def test_offers_land_in_order_under_their_claimants_operations(tmp_path) -> None:
    repo = _setup(tmp_path)
    head = _head(repo)
    operations = [
        _claim(repo, head.next_seq + i, _offer(_writing(repo, i, 10 + i), f"offer {i}"))
        for i in range(5)
    ]
    assert asyncio.run(combining.land_offers(repo._objects, head)) == 5
    history = repo.branch_history("main")
    assert [r.operation for r in history[:5]] == operations[::-1]
    assert [info.message for info in repo.ancestry()][:5] == [f"offer {i}" for i in range(5)][::-1]
    assert repo.lookup_snapshot(history[0].snapshot_id).metadata == {"by": "offer 4"}
    np.testing.assert_array_equal(_values(repo), [10, 11, 12, 13, 14, 0, 0, 0])


def test_combining_stops_at_a_conflict_a_plain_claim_or_a_gap(tmp_path) -> None:
    repo = _setup(tmp_path)
    head = _head(repo)
    _claim(repo, head.next_seq, _offer(_writing(repo, 0, 1), "first"))
    _claim(repo, head.next_seq + 1, _offer(_writing(repo, 0, 2), "same chunk"))  # conflicts
    _claim(repo, head.next_seq + 2, _offer(_writing(repo, 1, 3), "behind the conflict"))
    assert asyncio.run(combining.land_offers(repo._objects, head)) == 1
    assert [info.message for info in repo.ancestry()][:2] == ["first", "setup"]
    np.testing.assert_array_equal(_values(repo)[:2], [1, 0])

    repo = _setup(tmp_path / "gap")
    head = _head(repo)  # a gap: the claimant of the next record withdrew
    _claim(repo, head.next_seq + 1, _offer(_writing(repo, 2, 4), "after a gap"))
    assert asyncio.run(combining.land_offers(repo._objects, head)) == 0
    _claim(repo, head.next_seq, None)  # a claim without an offer: its claimant commits itself
    assert asyncio.run(combining.land_offers(repo._objects, head)) == 0
    assert repo.lookup_branch("main") == head.record.snapshot_id


def test_a_record_someone_else_wrote_first_ends_combining(tmp_path) -> None:
    repo = _setup(tmp_path)
    head = _head(repo)
    _claim(repo, head.next_seq, _offer(_writing(repo, 0, 1), "offered"))
    _claim(repo, head.next_seq + 1, _offer(_writing(repo, 1, 2), "offered after"))
    _writing(repo, 2, 3).commit("another writer got there first")
    assert asyncio.run(combining.land_offers(repo._objects, head)) == 0
    assert [info.message for info in repo.ancestry()][:2] == [
        "another writer got there first",
        "setup",
    ]


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "landed-after-grace"])
def test_a_queued_commit_adopts_the_record_the_turn_before_landed_for_it(
    tmp_path, monkeypatch, noticed: bool
) -> None:
    """Also when the offer lands just after the waiter stopped waiting for it (its grace ran
    out): it must adopt it then, not rebase onto its own commit and call it a conflict."""
    repo = _setup(tmp_path)
    objects = repo._objects
    holder, waiter = _writing(repo, 0, 1), _writing(repo, 1, 2)
    head = _head(repo)
    _claim(repo, head.next_seq, None)  # the holder's turn: the waiter queues behind it
    turns.note_lost_race(objects.storage, "main")  # contended: the waiter takes a turn
    waited = turns._wait_for_offer

    async def holder_commits_and_lands_the_offer(storage, branch, head_seq, seq, *args):
        content = await holder._ensure_content()
        snapshot, keys = await content.flush("holder", {})
        await objects.make_durable(keys)
        before = await read_head(storage, "branch", branch)
        record = await write_record(storage, before, "commit", snapshot.id, new_operation())
        assert await combining.land_offers(objects, RefHead("branch", branch, record)) == 1
        return await waited(storage, branch, head_seq, seq, *args) if noticed else None

    monkeypatch.setattr(turns, "_wait_for_offer", holder_commits_and_lands_the_offer)
    landed = waiter.commit("waiter")
    assert waiter.snapshot_id == landed == repo.lookup_branch("main")
    assert waiter.commit_attempts == 1 and not waiter.has_uncommitted_changes
    assert [info.message for info in repo.ancestry()] == [
        "waiter",
        "holder",
        "setup",
        "Repository initialized",
    ]
    np.testing.assert_array_equal(_values(repo)[:2], [1, 2])
    assert asyncio.run(repo.storage.list("turns/")) == [turn_key("main", head.next_seq)]


def test_a_process_whose_offers_are_not_landed_stops_offering(tmp_path, monkeypatch) -> None:
    repo = _setup(tmp_path)
    storage = repo._objects.storage
    assert turns.offers_landed(storage, "main")
    turns._learned(storage, "main").unlanded_offers = turns._UNLANDED_OFFERS
    monkeypatch.setattr(turns.random, "random", lambda: 0.5)
    assert not turns.offers_landed(storage, "main")
    monkeypatch.setattr(turns.random, "random", lambda: 0.05)  # now and then it tries again
    assert turns.offers_landed(storage, "main")


def test_pipelined_records_follow_their_durable_objects_and_stop_where_one_is_taken(
    tmp_path, monkeypatch
) -> None:
    """Several offers are in flight at once, but each record is created only after its own
    objects were made durable and the record before it was written; once another writer
    takes a record, nothing after it is written. Chunks were made durable by the claimant."""
    repo = _setup(tmp_path)
    objects, head = repo._objects, _head(repo)
    offers = [_offer(_writing(repo, i, 10 + i), f"offer {i}") for i in range(5)]
    chunk_keys = {f"chunks/{r.chunk_id}" for o in offers for a in o.chunks for r in a.refs}
    operations = [_claim(repo, head.next_seq + i, o) for i, o in enumerate(offers)]
    durable: set[str] = set()
    created: list[int] = []
    make_durable, create_record = objects.make_durable, combining.create_record

    async def noting_durable(keys) -> None:
        keys = list(keys)
        await make_durable(keys)
        durable.update(keys)

    async def creating(storage, kind, name, record) -> bool:
        assert f"snapshots/{record.snapshot_id}" in durable
        assert record.seq == head.next_seq + len(created)  # in order, none skipped
        if record.seq == head.next_seq + 3:  # another writer takes the fourth record
            taken = await read_head(storage, kind, name)
            assert await write_record(storage, taken, "commit", taken.record.snapshot_id, "x")
        created.append(record.seq)
        return await create_record(storage, kind, name, record)

    monkeypatch.setattr(objects, "make_durable", noting_durable)
    monkeypatch.setattr(combining, "create_record", creating)
    assert asyncio.run(combining.land_offers(objects, head)) == 3
    assert not durable & chunk_keys
    history = repo.branch_history("main")
    assert [r.operation for r in history[:4]] == ["x", *operations[2::-1]]
    assert created == [head.next_seq + i for i in range(4)]


def test_an_offered_waiter_reads_its_own_record_before_any_listing(tmp_path) -> None:
    """It sleeps until its record can have landed and then reads that record: a waiter
    whose offer landed meanwhile needs no listing of the branch at all."""
    repo = _setup(tmp_path)
    storage, head = repo._objects.storage, _head(repo)
    landed = _writing(repo, 0, 1)
    landed.commit("landed for the waiter")
    listings = 0
    real_list = storage.list

    async def counting_list(prefix, **kwargs):
        nonlocal listings
        listings += 1
        return await real_list(prefix, **kwargs)

    storage.list = counting_list
    record = asyncio.run(
        turns._wait_for_offer(storage, "main", head.record.seq - 1, head.next_seq, 0.001)
    )
    assert record is not None and record.seq == head.next_seq and listings == 0


def test_an_offered_waiter_goes_ahead_when_the_claim_before_it_is_withdrawn(
    tmp_path, monkeypatch
) -> None:
    repo = _setup(tmp_path)
    storage, head = repo._objects.storage, _head(repo)
    monkeypatch.setattr(turns, "_MIN_LEASE_S", 600.0)  # a stall would not end this wait
    monkeypatch.setattr(turns, "_MAX_LEASE_S", 600.0)
    # record head.next_seq is claimed by nobody: its claimant withdrew
    wait = turns._wait_for_offer(storage, "main", head.record.seq, head.next_seq + 1, 0.001)
    assert asyncio.run(asyncio.wait_for(wait, 60)) is None
    # the same with the claim still there: it waits for the record instead, then finds it
    _claim(repo, head.next_seq, None)

    async def record_lands_later():
        waiting = asyncio.ensure_future(
            turns._wait_for_offer(storage, "main", head.record.seq, head.next_seq + 1, 0.001)
        )
        await asyncio.sleep(0.05)
        assert not waiting.done()
        before = await read_head(storage, "branch", "main")
        mine = await write_record(storage, before, "commit", before.record.snapshot_id, "a")
        after = RefHead("branch", "main", mine)
        await write_record(storage, after, "commit", before.record.snapshot_id, "b")
        return await asyncio.wait_for(waiting, 60)

    found = asyncio.run(record_lands_later())
    assert found is not None and found.operation == "b"
