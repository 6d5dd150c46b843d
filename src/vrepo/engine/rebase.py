"""Rebasing a session's changes onto the commits that won the race for its branch.

The commits made since the session's base are read newest first; their transaction logs are
compared with the session's own (one symmetric comparison, `find_conflicts`). Without an
unsettled conflict the changes move onto the new head; "theirs" drops our side of each chunk
conflict, "ours" keeps it. Metadata conflicts are never settled here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from vrepo.engine.conflicts import SOLVERS, Solver, find_conflicts
from vrepo.engine.content import Content
from vrepo.engine.objects import ObjectIO
from vrepo.engine.refs import RefHead, read_head
from vrepo.errors import ConflictError, InvalidArgumentError, SnapshotNotFoundError
from vrepo.format import Snapshot

_LISTED = 50  # conflicts spelled out in a ConflictError message


@dataclass(frozen=True)
class Rebased:
    """Where a rebase leaves a session: the branch head and, if it moved on, the new base."""

    head: RefHead
    base: Snapshot | None  # None: the ref moved (e.g. a reset) but still points at our base


def check_solver(solver: str) -> None:
    """Refuse an unknown solver before anything is done."""
    if solver not in SOLVERS:
        raise InvalidArgumentError(f"solver must be one of {SOLVERS}, not {solver!r}")


async def rebase_onto_head(
    objects: ObjectIO,
    branch: str,
    base_id: str,
    content: Content,
    solver: Solver,
    head: RefHead | None = None,
) -> Rebased:
    """Check ``content``'s changes against the commits made on ``branch`` since ``base_id``.

    Raises `ConflictError` listing every conflict unless ``solver`` settles all of them; with
    "theirs", the settled chunks are dropped from ``content.changes`` in place. ``head`` is
    the branch head if the caller has just read it.
    """
    if head is None:
        head = await read_head(objects.storage, "branch", branch)
    if not head.exists:
        raise ConflictError(
            f"branch {branch!r} was deleted while this session was open; your changes are "
            "kept: create the branch again and commit, or discard them"
        )
    winners = await commits_since(objects, branch, head.record.snapshot_id, base_id)
    if not winners:
        return Rebased(head, None)
    logs = await asyncio.gather(*(objects.get_transaction_log(s.id) for s in winners))
    conflicts = find_conflicts(content.transaction_log(), content.changes.nodes, logs, winners[0])
    if any(not c.solvable or solver == "fail" for c in conflicts):
        listed = "\n  ".join(map(str, conflicts[:_LISTED]))
        more = f"\n  ... and {len(conflicts) - _LISTED} more" if len(conflicts) > _LISTED else ""
        advice = (
            "rebase or commit with rebase_with='ours' or 'theirs' to settle chunk conflicts"
            if all(c.solvable for c in conflicts)
            else "metadata conflicts are never settled automatically: discard and redo "
            "the conflicting changes on a new session"
        )
        raise ConflictError(
            f"{len(conflicts)} conflict(s) with {len(winners)} commit(s) made to {branch!r} "
            f"since this session started:\n  {listed}{more}\nYour changes are kept in the "
            f"session; {advice}.",
            conflicts=conflicts,
        )
    if solver == "theirs":
        for conflict in conflicts:
            if conflict.kind == "chunks":
                for coords in conflict.chunks:
                    content.changes.chunks[conflict.path].pop(coords, None)
            else:
                content.changes.loose.pop(conflict.path, None)
    return Rebased(head, winners[0])


async def commits_since(
    objects: ObjectIO, branch: str, head_id: str, base_id: str
) -> list[Snapshot]:
    """The snapshots from ``head_id`` back to (excluding) ``base_id``, newest first."""
    found: list[Snapshot] = []
    current: str | None = head_id
    while current != base_id:
        if current is None:
            raise ConflictError(
                f"branch {branch!r} was reset to {head_id}, which does not descend "
                f"from this session's base {base_id}; your changes cannot be "
                "rebased onto it: discard them, or reset the branch back"
            )
        try:
            snapshot = await objects.get_snapshot(current)
        except SnapshotNotFoundError:
            raise ConflictError(
                f"the commits made to {branch!r} since this session's base {base_id} were "
                "expired and garbage collected, so its changes cannot be checked against "
                "them; start a new session from the branch and write them again"
            ) from None
        found.append(snapshot)
        current = snapshot.parent_id
    return found
