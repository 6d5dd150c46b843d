"""Snapshot expiry: cutting old snapshots out of branch histories, safely beside writers.

Snapshots are immutable, so expiry records cuts (`vrepo.format.expiry`): each retained
snapshot whose parent is expired goes on from its nearest retained ancestor. Retained are the
ref heads, the first snapshot, every snapshot written at or after the cut-off, tagged ones
(unless ``keep_tags=False``) and, when one branch is expired, whatever another branch's
history holds. Whether a snapshot is retained depends on it alone, so every history through
it agrees on where it goes on. A cut only removes edges: a ref moved meanwhile onto an
expired snapshot still reaches it and its own ancestors, a cut stays as long as its snapshot
exists (so every stored snapshot's history is whole), and garbage collection trusts a cut
only once it is older than its grace period.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping

from vrepo._progress import Note, silent
from vrepo.engine.create_once import create_once
from vrepo.engine.history_cuts import newest_expiry
from vrepo.engine.history_index import walk_index
from vrepo.engine.objects import ObjectIO, snapshot_key
from vrepo.engine.refs import current_heads, new_operation, now_us
from vrepo.errors import RefNotFoundError
from vrepo.format import (
    ExpiryRecord,
    HistoryEntry,
    decode_expiry_record,
    encode_expiry_record,
    expiry_record_key,
)


async def expire_snapshots(
    objects: ObjectIO,
    older_than_us: int,
    *,
    branch: str | None = None,
    keep_tags: bool = True,
    note: Note = silent,
) -> list[str]:
    """Cut the snapshots written before ``older_than_us`` out of the histories of every ref
    (or of ``branch`` only); return the ids no ref reaches any more, newest first.

    Another expiry that records its cuts first makes this one start again from its result.
    ``note`` hears which phase the expiry is in.
    """
    while True:
        record = await newest_expiry(objects)
        cuts = {} if record is None else dict(record.cuts)
        heads = await current_heads(objects.storage)
        if branch is not None and ("branch", branch) not in heads:
            raise RefNotFoundError(f"branch {branch!r} does not exist; nothing was expired")
        note(f"walking the histories of {len(heads)} branches and tags")
        before = {ref: await _walk(objects, head, cuts) for ref, head in heads.items()}
        if branch is None:  # every branch; the tags too when they do not keep their place
            targets = [ref for ref in heads if ref[0] == "branch" or not keep_tags]
        else:
            targets = [("branch", branch)]
        kept_ids = {h for (kind, _), h in heads.items() if kind == "branch" or keep_tags}
        if branch is not None:
            for ref, entries in before.items():
                if ref[0] == "branch" and ref != ("branch", branch):
                    kept_ids.update(e.id for e in entries)

        def retained(e: HistoryEntry, kept_ids: set[str] = kept_ids) -> bool:
            return e.parent_id is None or e.created_at >= older_than_us or e.id in kept_ids

        new_cuts = dict(cuts)
        for ref in targets:
            head, *older = before[ref]
            kept = [head, *filter(retained, older)]
            for newer, ancestor in itertools.pairwise(kept):
                if newer.parent_id != ancestor.id:
                    new_cuts[newer.id] = ancestor.id
        if new_cuts == cuts:
            return []
        after = {ref: await _walk(objects, head, new_cuts) for ref, head in heads.items()}
        reachable = {e.id for entries in after.values() for e in entries}
        expired = {e.id: e for entries in before.values() for e in entries if e.id not in reachable}
        note(f"recording the cuts that expire {len(expired)} snapshots")
        operation = new_operation()
        seq = 0 if record is None else record.seq + 1
        new_record = ExpiryRecord(
            seq=seq,
            operation=operation,
            written_at=now_us(),
            older_than=older_than_us,
            cuts=await _still_stored(objects, new_cuts, reachable),
        )
        key = expiry_record_key(seq)

        def ours(stored: bytes, key: str = key, operation: str = operation) -> bool:
            return decode_expiry_record(stored, what=f"expiry record {key}").operation == operation

        if await create_once(objects.storage, key, encode_expiry_record(new_record), ours=ours):
            return [e.id for e in sorted(expired.values(), key=_newest_first)]


async def _still_stored(
    objects: ObjectIO, cuts: dict[str, str], reachable: set[str]
) -> dict[str, str]:
    """``cuts`` less those of snapshots garbage collection deleted. A cut stays while its
    snapshot exists, reachable or not, so a ref moved onto it later finds its history
    whole."""
    unreachable = [child for child in cuts if child not in reachable]
    stored = await asyncio.gather(*(objects.storage.exists(snapshot_key(c)) for c in unreachable))
    gone = {child for child, there in zip(unreachable, stored, strict=True) if not there}
    return {child: to for child, to in cuts.items() if child not in gone}


async def _walk(objects: ObjectIO, head: str, cuts: Mapping[str, str]) -> list[HistoryEntry]:
    return [entry async for entry in walk_index(objects, head, cuts)]


def _newest_first(entry: HistoryEntry) -> tuple[int, str]:
    return (-entry.created_at, entry.id)
