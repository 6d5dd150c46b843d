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
    waited = turns._wait_until_next

    async def holder_commits_and_lands_the_offer(storage, branch, head_seq, seq, *args):
        content = await holder._ensure_content()
        snapshot, keys = await content.flush("holder", {})
        await objects.make_durable(keys)
        before = await read_head(storage, "branch", branch)
        record = await write_record(storage, before, "commit", snapshot.id, new_operation())
        assert await combining.land_offers(objects, RefHead("branch", branch, record)) == 1
        return await waited(storage, branch, head_seq, seq, *args) if noticed else head_seq

    monkeypatch.setattr(turns, "_wait_until_next", holder_commits_and_lands_the_offer)
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
