"""Taking turns on a contended branch, so that losers of a commit race queue instead of storming.

Without help, N committers to one branch redo their whole commit (rebase, write manifests and
snapshot, make them durable) after every lost race, and only one of them can win each round:
the work grows like N², and exponential backoff lets fresh commits overtake old ones. So a
commit that lost a race (or runs in a process that lost one lately) queues: it claims the
first free record number with a tiny write-once claim (`vrepo.format.turn`) and waits, polling
only for the record before its own, then rebases and commits once. The claim is a hint: the
ref record's atomic create still decides every commit, a committer that cannot claim goes
ahead anyway, and a predecessor whose record does not appear within its lease (the claimant
died) is raced past.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from vrepo.engine.refs import RefHead, now_us, read_head, read_record
from vrepo.format import (
    Offer,
    RefRecord,
    TurnClaim,
    encode_turn_claim,
    ref_dir,
    seq_from_record_key,
    turn_dir,
    turn_key,
)
from vrepo.storage import Storage

CONTENDED_FOR_S = 60.0  # after a lost race, this process takes turns on the branch this long
_MIN_POLL_S, _MAX_STEP_S = 0.0005, 1.0
_MIN_LEASE_S, _MAX_LEASE_S = 1.0, 10.0
_LEASE_POLLS = 200  # a claim's lease, in the claimant's typical attempt durations
_CLAIM_TRIES = 64  # claims tried one after another when others take the same numbers
_CLAIM_CHECK_EVERY = 8  # polls of the record per check that its claim is still there

_MIN_GRACE_S, _MAX_GRACE_S = 0.005, 0.25  # waiting for an offer to be landed for us
_UNLANDED_OFFERS = 3  # offers in a row not landed, after which this process stops offering

_DEFAULT_ATTEMPT_S = 0.01  # before this process has timed an attempt


@dataclass
class _Branch:
    """What this process learned about committing to one branch of one storage."""

    last_lost: float | None = None  # monotonic time a commit last lost a race
    attempt_s: float = _DEFAULT_ATTEMPT_S  # a commit attempt (durable objects + record)
    pace_s: float | None = None  # seconds between records landing, seen while queued
    unlanded_offers: int = 0  # offers in a row that the turn before did not land


_branches: dict[tuple[str, str], _Branch] = {}


def _learned(storage: Storage, branch: str) -> _Branch:
    return _branches.setdefault((storage.url, branch), _Branch())


def note_lost_race(storage: Storage, branch: str) -> None:
    """Remember that a commit to ``branch`` lost a race in this process just now."""
    _learned(storage, branch).last_lost = time.monotonic()


def note_attempt(storage: Storage, branch: str, seconds: float) -> None:
    """Fold the duration of one commit attempt into this process's typical duration."""
    learned = _learned(storage, branch)
    learned.attempt_s = 0.8 * learned.attempt_s + 0.2 * seconds


def offers_landed(storage: Storage, branch: str) -> bool:
    """Whether to offer the next queued commit for the turn before to land: yes, unless the
    last few offers were not landed (say, by committers running an older vrepo), and then
    one time in ten, to notice when they are again."""
    return _learned(storage, branch).unlanded_offers < _UNLANDED_OFFERS or random.random() < 0.1


def is_contended(storage: Storage, branch: str) -> bool:
    """Whether a commit to ``branch`` lost a race in this process within `CONTENDED_FOR_S`."""
    lost = _learned(storage, branch).last_lost
    return lost is not None and time.monotonic() - lost < CONTENDED_FOR_S


class OfferLedger(Protocol):
    """Where `take_turn` notes the claims that may carry an offer (see `UnansweredWrites`)."""

    def note_offer(self, seq: int, operation: str) -> None: ...

    def drop_offer(self, seq: int) -> None: ...


@dataclass(frozen=True)
class Turn:
    """The head to build on, the claim held on its next record (None: none held), and the
    record that landed the claimant's offered commit for it, if the turn before did that."""

    head: RefHead
    seq: int | None = None  # the record number claimed
    landed: RefRecord | None = None

    @property
    def claim_key(self) -> str | None:
        return None if self.seq is None else turn_key(self.head.name, self.seq)


async def take_turn(
    storage: Storage,
    branch: str,
    operation: str,
    catch_up: Callable[[], Awaitable[object]] | None = None,
    offer: Offer | None = None,
    ledger: OfferLedger | None = None,
) -> Turn:
    """Queue for a record of ``branch`` and wait until the one before it exists.

    Claims the first record number that neither exists nor is claimed (one listing of the
    newest claim, then put_if_absent), so committers take turns in the order they queued.
    ``catch_up`` (a rebase onto the current head) runs whenever commits landed while waiting,
    so they are checked off the critical path and only the last one remains when the turn
    comes. With an ``offer`` (see `vrepo.engine.combining`), the claim carries the commit and,
    once the record before it lands, the wait goes on a little for the writer of that record
    to land this one too: then `Turn.landed` is that record. ``ledger`` learns every record
    number whose claim may carry the offer (a claim whose write failed may exist all the same),
    so the caller can find its commit later if it lands while the caller is not looking.
    """
    attempt_s = _learned(storage, branch).attempt_s
    head = await read_head(storage, "branch", branch)
    if not head.exists:
        return Turn(head)  # deleted: the rebase says so
    try:
        newest = await storage.list(turn_dir(branch), limit=1)
        seq = max(head.next_seq, seq_from_record_key(newest[0]) + 1 if newest else 0)
        for _ in range(_CLAIM_TRIES):
            claim = TurnClaim(branch, seq, operation, now_us(), offer)
            if offer is not None and ledger is not None:
                ledger.note_offer(seq, operation)
            if await storage.put_if_absent(turn_key(branch, seq), encode_turn_claim(claim)):
                break
            if offer is not None and ledger is not None:
                ledger.drop_offer(seq)  # another's claim is there, not ours
            seq += 1
        else:
            return Turn(head)
    except Exception:  # a hint only: never fail a commit over it
        return Turn(head)
    if seq == head.next_seq:
        return Turn(head, seq)
    if offer is not None:
        return await _offered_turn(storage, head, seq, operation, attempt_s, ledger)
    with contextlib.suppress(Exception):  # waiting is a hint too: then go ahead
        await _wait_until_next(storage, branch, head.record.seq, seq, attempt_s, catch_up)
    return Turn(await read_head(storage, "branch", branch), seq)


async def _offered_turn(
    storage: Storage,
    head: RefHead,
    seq: int,
    operation: str,
    attempt_s: float,
    ledger: OfferLedger | None,
) -> Turn:
    """The turn of a claim on ``seq`` that carries an offer: its record, if the turn before
    landed it, or else the head to commit on."""
    branch, record = head.name, None
    with contextlib.suppress(Exception):  # waiting is a hint too: then go ahead
        record = await _wait_for_offer(storage, branch, head.record.seq, seq, attempt_s)
    if record is None or record.operation != operation:
        head = await read_head(storage, "branch", branch)
        if record is None and head.record is not None and head.record.seq >= seq:
            record = await read_record(storage, "branch", branch, seq)  # landed since we looked
    landed = record if record is not None and record.operation == operation else None
    if landed is not None:
        head = RefHead("branch", branch, landed)
    elif record is not None and ledger is not None:
        ledger.drop_offer(seq)  # another commit holds our record: ours never will
    learned = _learned(storage, branch)
    learned.unlanded_offers = 0 if landed is not None else learned.unlanded_offers + 1
    return Turn(head, seq, landed)


async def landed_for(storage: Storage, branch: str, seq: int, operation: str) -> RefRecord | None:
    """Record ``seq`` of ``branch`` if it exists and another committer wrote it for
    ``operation`` (a combined offer); else None."""
    record = await read_record(storage, "branch", branch, seq)
    return record if record is not None and record.operation == operation else None


async def _wait_for_offer(
    storage: Storage, branch: str, head_seq: int, seq: int, attempt_s: float
) -> RefRecord | None:
    """Wait for record ``seq``, which the turn before may land for us, and return it (whoever
    wrote it); None once the record before it existed for a grace of a few attempts without
    ours following, its claim was withdrawn, or nothing landed for a lease.

    Does nothing until ours can have landed: sleeps the records still to come (ours included)
    times the branch's pace, then reads record ``seq`` itself, one read rather than a
    listing; only when it is not there yet does a listing tell how far the queue got.
    """
    learned = _learned(storage, branch)
    pace = learned.pace_s or 2 * attempt_s
    lease = min(max(attempt_s * _LEASE_POLLS, _MIN_LEASE_S), _MAX_LEASE_S)
    grace = min(max(3 * attempt_s, _MIN_GRACE_S), _MAX_GRACE_S)
    seen_seq, seen_at = head_seq, time.monotonic()
    step = pace * (seq - head_seq) * 0.9
    while True:
        await asyncio.sleep(min(max(step, _MIN_POLL_S), _MAX_STEP_S) * random.uniform(0.9, 1.1))
        record = await read_record(storage, "branch", branch, seq)
        if record is not None:
            learned.pace_s = _paced(pace, time.monotonic() - seen_at, seq - seen_seq, attempt_s)
            return record
        newest = await storage.list(ref_dir("branch", branch), limit=1)
        now_seq, now = seq_from_record_key(newest[0]) if newest else seen_seq, time.monotonic()
        if now_seq >= seq:  # written between the read and the listing
            return await read_record(storage, "branch", branch, seq)
        if now_seq > seen_seq:
            pace = _paced(pace, now - seen_at, now_seq - seen_seq, attempt_s)
            learned.pace_s = pace
            seen_seq, seen_at = now_seq, now
        elif now - seen_at > lease:
            return None  # nothing landed for a lease: the claimant ahead seems gone
        elif seen_seq == seq - 2 and not await storage.exists(turn_key(branch, seq - 1)):
            return None  # withdrawn (its commit failed or went elsewhere): our turn now
        if seen_seq == seq - 1 and now - seen_at > grace:
            return None  # the turn before did not land ours: commit it ourselves
        step = pace * (seq - seen_seq) * 0.75


def _paced(pace: float, seconds: float, records: int, attempt_s: float) -> float:
    """``pace`` updated with ``records`` seen landing in ``seconds``. Seen only when we look,
    so an interval overstates the pace: keep it within 1-3 attempt durations (an attempt is
    most of the work between two records)."""
    return min(max(0.7 * pace + 0.3 * seconds / records, attempt_s), 3 * attempt_s)


async def _wait_until_next(
    storage: Storage,
    branch: str,
    head_seq: int,
    seq: int,
    attempt_s: float,
    catch_up: Callable[[], Awaitable[object]] | None,
) -> None:
    """Wait until record ``seq - 1`` exists, its claim is withdrawn, or the queue stalls.

    Sleeps in proportion to the records still to come before ours, at the pace records have
    been landing on the branch (learned here, per branch), so a long queue costs a few head
    listings per committer, not a poll every few milliseconds. The queue has stalled when no
    record landed for a lease (1-10 s, 200 attempt durations): the claimant ahead died.
    """
    learned = _learned(storage, branch)
    pace = learned.pace_s or 2 * attempt_s
    lease = min(max(attempt_s * _LEASE_POLLS, _MIN_LEASE_S), _MAX_LEASE_S)
    seen_seq, seen_at = head_seq, time.monotonic()
    for polls in itertools.count():
        ahead = seq - 1 - seen_seq  # records still to be written before ours
        if ahead <= 0:
            return
        step = pace / 8 if ahead <= 1 else pace * (ahead - 1) * 0.5
        await asyncio.sleep(min(max(step, _MIN_POLL_S), _MAX_STEP_S) * random.uniform(0.8, 1.2))
        newest = await storage.list(ref_dir("branch", branch), limit=1)
        now_seq, now = seq_from_record_key(newest[0]) if newest else seen_seq, time.monotonic()
        if now_seq > seen_seq:
            pace = _paced(pace, now - seen_at, now_seq - seen_seq, attempt_s)
            learned.pace_s = pace
            seen_seq, seen_at = now_seq, now
            if catch_up is not None and now_seq < seq - 1:
                await catch_up()  # check what landed so far now, not in our turn
        elif now - seen_at > lease:
            return  # nothing landed for a lease: the claimant ahead seems gone
        elif (
            ahead == 1
            and polls % _CLAIM_CHECK_EVERY == _CLAIM_CHECK_EVERY - 1
            and not await storage.exists(turn_key(branch, seq - 1))
        ):
            return  # withdrawn (its commit failed or went elsewhere): our turn now


async def release(storage: Storage, turn: Turn | None) -> None:
    """Remove a held claim (best effort: a claim left behind only delays, up to its lease)."""
    if turn is not None and turn.claim_key is not None:
        with contextlib.suppress(Exception):
            await storage.delete(turn.claim_key)
