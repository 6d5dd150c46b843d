"""The commit loop: a session's changes become the branch's next ref record, exactly once.

One attempt flushes the changes to a new snapshot and writes the branch record after the head
it is based on. When another writer's record got there first, the changes are rebased onto
the new head and tried again; on a contended branch, in a turn (`vrepo.engine.turns`) so that
losers queue instead of storming. A write that raised without an answer may have landed:
`UnansweredWrites` remembers its operation id, and the next commit or amend adopts the
record that names it instead of committing the same changes twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from vrepo.engine import turns
from vrepo.engine.combining import land_offers, offer_of
from vrepo.engine.commit_rules import backoff_seconds
from vrepo.engine.content import Content
from vrepo.engine.objects import ObjectIO
from vrepo.engine.refs import (
    RefAction,
    RefHead,
    find_operation,
    new_operation,
    read_head,
    write_record,
)
from vrepo.errors import ConflictError, InvalidArgumentError
from vrepo.format import Author, RefRecord, Snapshot

Rebase = Callable[[RefHead | None], Awaitable[tuple[Content, RefHead]]]
"""Rebases the session onto a head (None: read it) and returns its new content and head."""


@dataclass(frozen=True)
class Landed:
    """A record the branch now holds for this session: its snapshot and the attempts made."""

    record: RefRecord
    snapshot: Snapshot
    attempts: int


class UnansweredWrites:
    """Operations that may have landed without this session learning so, and where to look:
    ref writes that failed without an answer, and offers in turn claims (`combining`), which
    the turn before may land, only ever at the claim's own record number."""

    def __init__(self) -> None:
        self._operations: frozenset[str] = frozenset()
        self._after = -1  # look among the branch records after this sequence number
        self._offers: dict[int, str] = {}  # claimed record number -> operation offered there

    @property
    def offers_pending(self) -> bool:
        return bool(self._offers)

    def note_offer(self, seq: int, operation: str) -> None:
        """A claim on record ``seq`` carrying ``operation``'s offer is (or may be) stored."""
        self._offers[seq] = operation

    def drop_offer(self, seq: int) -> None:
        """The claim on ``seq`` is another's: no offer of ours is there."""
        self._offers.pop(seq, None)

    async def publish(
        self,
        objects: ObjectIO,
        head: RefHead,
        action: RefAction,
        snapshot_id: str,
        operation: str,
    ) -> RefRecord | None:
        """Write the branch record after ``head``; remember ``operation`` if it went unanswered."""
        try:
            return await write_record(objects.storage, head, action, snapshot_id, operation)
        except Exception:
            after = head.record.seq if head.record is not None else -1
            self._after = min(after, self._after) if self._operations else after
            self._operations |= {operation}
            raise

    async def landed(
        self, objects: ObjectIO, branch: str, head: RefHead | None = None
    ) -> Landed | None:
        """The record one of them wrote after all, with its snapshot; None if none landed.

        ``head``: the branch head, if the caller has just read it.
        """
        if not (self._operations or self._offers):
            return None
        storage, record = objects.storage, None
        if head is None:
            head = await read_head(storage, "branch", branch)
        if self._operations:
            record = await find_operation(
                storage, "branch", branch, self._operations, self._after, head
            )
        if record is None and self._offers:
            newest = head.record.seq if head.record is not None else -1
            for seq, operation in sorted(self._offers.items()):
                if seq <= newest:
                    record = await turns.landed_for(storage, branch, seq, operation)
                    if record is not None:
                        break
                    del self._offers[seq]  # another commit holds that record: ours never will
        if record is None:
            return None
        return Landed(record, await objects.get_snapshot(record.snapshot_id), 1)

    def clear(self) -> None:
        """Forget them: the session moved on from the state they were written from."""
        self._operations, self._after = frozenset(), -1
        self._offers.clear()


async def commit_changes(
    objects: ObjectIO,
    head: RefHead,
    content: Content,
    message: str,
    metadata: dict[str, Any],
    *,
    rebase: Rebase,
    unanswered: UnansweredWrites,
    author: Author | None = None,
    merged_parents: tuple[str, ...] = (),
) -> Landed:
    """Publish ``content``'s changes on ``head``'s branch, rebasing after each lost race.

    A merge commit (``merged_parents``) is never offered to another committer to land: its
    snapshot must name its parents, which an offer's change set does not carry.

    Raises `ConflictError` when a rebase finds overlapping changes, or after the
    repository's ``commit_retries`` lost races.
    """
    config, storage, branch = objects.config, objects.storage, head.name
    durable: set[str] = set()
    operation = new_operation()
    turn = None
    try:
        for attempt in range(config.commit_retries + 1):
            if attempt:  # lost the race
                landed = await unanswered.landed(objects, branch)
                if landed is not None:
                    return Landed(landed.record, landed.snapshot, attempt + 1)
                turns.note_lost_race(storage, branch)
                if turn is None or turn.claim_key is None:
                    await asyncio.sleep(backoff_seconds(attempt, config))
            if attempt or turns.is_contended(storage, branch):
                await turns.release(storage, turn)
                # the chunks are durable before the wait, not in the turn
                chunks = [k for k in content.chunk_keys() if k not in durable]
                await objects.make_durable(chunks)
                durable.update(chunks)
                welcome = turns.offers_landed(storage, branch) and not merged_parents
                offer = offer_of(content, message, metadata, author) if welcome else None
                turn = await turns.take_turn(
                    storage, branch, operation, lambda: rebase(None), offer, unanswered
                )
                if turn.landed is not None:  # the turn before ours landed our offer
                    snapshot = await objects.get_snapshot(turn.landed.snapshot_id)
                    return Landed(turn.landed, snapshot, attempt + 1)
                if unanswered.offers_pending:  # one may land at any moment until its turn
                    landed = await unanswered.landed(objects, branch, turn.head)
                    if landed is not None:
                        return Landed(landed.record, landed.snapshot, attempt + 1)
                content, head = await rebase(turn.head)  # the head it just read
            started = time.monotonic()
            snapshot, keys = await content.flush(
                message, metadata, author=author, merged_parents=merged_parents
            )
            await objects.make_durable([k for k in keys if k not in durable])
            durable.update(keys)
            record = await unanswered.publish(objects, head, "commit", snapshot.id, operation)
            turns.note_attempt(storage, branch, time.monotonic() - started)
            if record is not None:
                if turn is not None and turn.claim_key is not None:
                    await land_offers(objects, RefHead("branch", branch, record))
                return Landed(record, snapshot, attempt + 1)
    finally:
        await turns.release(storage, turn)
    raise ConflictError(
        f"gave up committing to {branch!r} after {config.commit_retries} retries: "
        "other writers kept winning. Your changes are kept in the session; commit again, "
        "or raise RepoConfig.commit_retries for a busier branch"
    )


async def amend_head(
    objects: ObjectIO,
    branch: str,
    content: Content,
    message: str,
    metadata: dict[str, Any],
    unanswered: UnansweredWrites,
    author: Author | None = None,
) -> Landed:
    """Replace the head of ``branch`` (which ``content`` is based on) by a commit holding its
    changes and ``content``'s, with the head's parent, by ``author``; `ConflictError` if the
    branch moved."""
    head = await read_head(objects.storage, "branch", branch)
    if not head.exists or head.record.snapshot_id != content.base.id:
        raise ConflictError(
            f"amend replaces the head of {branch!r}, but the branch moved since this session "
            "started; rebase() and make a new commit instead"
        )
    if content.base.parent_id is None:
        raise InvalidArgumentError("the repository's first commit cannot be amended")
    base_log = await objects.get_transaction_log(content.base.id)
    snapshot, keys = await content.flush(message, metadata, amending=base_log, author=author)
    await objects.make_durable(keys)
    record = await unanswered.publish(objects, head, "amend", snapshot.id, new_operation())
    if record is None:
        raise ConflictError(
            f"another commit landed on {branch!r} while amending; nothing was changed. "
            "rebase() and make a new commit instead"
        )
    return Landed(record, snapshot, 1)
