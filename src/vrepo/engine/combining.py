"""Combining commits: the turn holder lands the small commits queued behind it.

On a contended branch every commit waits for the one before it, so a queue of N commits costs
N hand-offs (the next in line noticing that its turn came) on top of N commits. A queued
commit that changes only chunks, and few of them, offers itself in its turn claim (`Offer`):
whoever commits the record before it lands it too, rebased onto the head it just wrote,
checked for conflicts exactly as its own session would, and recorded under the claimant's
operation id, so the claimant finds it and adopts it (as after an unanswered write). Safety
is unchanged: every record is still one atomic create, the claimant may still commit for
itself (one of the two creates wins), and anything unexpected ends the combining, not the
commit. The holder prepares the next snapshot while the previous one is made durable and its
record written, so the I/O of one commit overlaps the work of the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

from vrepo.engine.changeset import ChangeSet
from vrepo.engine.content import Content
from vrepo.engine.objects import ObjectIO
from vrepo.engine.rebase import rebase_onto_head
from vrepo.engine.refs import RefHead, create_record, next_record
from vrepo.errors import ObjectNotFoundError
from vrepo.format import (
    Author,
    Offer,
    OfferedChunks,
    RefRecord,
    VirtualRef,
    decode_turn_claim,
    turn_key,
)

COMBINE_FOR_S = 1.0  # the longest a turn holder spends landing others' commits
_AHEAD = 8  # prepared commits whose records are not written yet, at most
_MAX_OFFERED_REFS = 1000
_MAX_OFFERED_INLINE_BYTES = 64 * 1024


def offer_of(
    content: Content, message: str, metadata: dict[str, Any], author: Author | None = None
) -> Offer | None:
    """``content``'s changes as an `Offer`, or None unless they are chunks only and small."""
    changes = content.changes
    if changes.nodes or changes.dropped or changes.loose or not changes.chunks:
        return None  # (an empty commit could land twice unnoticed: nothing would conflict)
    count = sum(len(refs) for refs in changes.chunks.values())
    if count > _MAX_OFFERED_REFS:  # before any ref object is made: there may be millions
        return None
    refs_of = [ref for refs in changes.chunks.values() for ref in refs.values()]
    inline = sum(ref.length for ref in refs_of if ref is not None and ref.inline is not None)
    if inline > _MAX_OFFERED_INLINE_BYTES:
        return None
    if any(type(ref) is VirtualRef for ref in refs_of):
        return None  # an offer's refs are chunk refs only (format.md, "No rebase storms")
    chunks = [
        OfferedChunks(path, [list(c) for c in refs], list(refs.values()))
        for path, refs in changes.chunks.items()
    ]
    return Offer(content.base.id, message, metadata, chunks, author)


async def land_offers(objects: ObjectIO, head: RefHead) -> int:
    """Land the offered commits claimed right after ``head``, in order; how many landed.

    Stops at the first record whose claim carries no offer, whose offer conflicts with what
    landed since its base, or whose record someone else wrote first; and after
    `COMBINE_FOR_S`. Never raises: the claimants commit for themselves what is left.

    Pipelined: each prepared snapshot is made durable at once, in parallel with the others
    (`_AHEAD` at most in flight), while its record waits only for the record before it, so
    the records are written back to back and the fsyncs of several commits overlap.
    """
    landed, until = 0, time.monotonic() + COMBINE_FOR_S
    queue: deque[asyncio.Future[bool]] = deque()  # records in order, each after the last
    try:
        while True:
            prepared = await _prepare_next(objects, head) if time.monotonic() < until else None
            if prepared is not None:
                record, keys = prepared
                durable = asyncio.ensure_future(objects.make_durable(keys))
                previous = queue[-1] if queue else None
                queue.append(asyncio.ensure_future(_publish(objects, record, durable, previous)))
                head = RefHead("branch", head.name, record)
            elif not queue:
                break
            # too far ahead, or nothing to prepare yet (a claim may come meanwhile): wait for
            # the oldest record; and take those already written in any case
            idle = prepared is None
            while queue and (idle or len(queue) > _AHEAD or queue[0].done()):
                if not await queue.popleft():
                    raise _Taken  # another writer took that record: the rest is moot
                landed, idle = landed + 1, False
    except Exception:  # a combining that fails leaves the commits to their claimants
        pass
    for publishing in queue:  # nothing outlives the call
        with contextlib.suppress(Exception):
            landed += await publishing
    return landed


class _Taken(Exception):
    """Another writer created a record the combining had prepared."""


async def _publish(
    objects: ObjectIO,
    record: RefRecord,
    durable: asyncio.Future[None],
    previous: asyncio.Future[bool] | None,
) -> bool:
    """Create ``record`` once its objects are durable and the record before it was written
    (False, and nothing written, if another writer took that one)."""
    await durable
    if previous is not None and not await previous:
        return False
    branch = record.ref.removeprefix("branch.")
    return await create_record(objects.storage, "branch", branch, record)


async def _prepare_next(objects: ObjectIO, head: RefHead) -> tuple[RefRecord, list[str]] | None:
    """The snapshot for the offer claimed after ``head`` (which may not be written yet),
    flushed, and the record that would publish it; None if there is nothing to land."""
    branch, seq = head.name, head.next_seq
    key = turn_key(branch, seq)
    try:
        claim = decode_turn_claim(await objects.storage.get(key), what=f"turn claim {key}")
    except ObjectNotFoundError:
        return None
    if claim.offer is None or (claim.branch, claim.seq) != (branch, seq):
        return None
    offer, changes = claim.offer, _change_set(claim.offer)
    content = Content(objects, await objects.get_snapshot(offer.base_id), changes)
    rebased = await rebase_onto_head(objects, branch, offer.base_id, content, "fail", head)
    if rebased.base is not None:
        content = Content(objects, rebased.base, changes)
    snapshot, keys = await content.flush(offer.message, offer.metadata, author=offer.author)
    offered = set(content.chunk_keys())  # made durable by the claimant before it offered them
    keys = [key for key in keys if key not in offered]
    return next_record(head, "commit", snapshot.id, claim.operation), keys


def _change_set(offer: Offer) -> ChangeSet:
    changes = ChangeSet()
    for array in offer.chunks:
        for coords, ref in zip(array.coords, array.refs, strict=True):
            changes.set_chunk(array.path, tuple(coords), ref)
    return changes
