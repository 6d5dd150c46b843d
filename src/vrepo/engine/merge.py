"""Branch merges and reverts: three-way merges committed like any session's changes.

A merge finds the merge base of the destination branch's head and the source (`merge_base`);
if the source is already in the destination's history there is nothing to do; if the
destination has not moved since the base, its branch is fast-forwarded to the source (one
``reset`` ref record, written only if the branch is still where it was read). Otherwise the
source's changes since the base are recorded in a session on the destination's head
(`merge_into_content`) and committed as a snapshot with two parents. That commit goes
through the ordinary commit loop: commits landing on the destination meanwhile are rebased
over, and overlapping ones raise `ConflictError` as for any commit.

A revert is the same three-way merge with the reverted snapshot as the base and its parent
as the source: it applies the inverse of that one snapshot's changes to the branch's head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vrepo._sync import run_sync
from vrepo.engine import ref_admin
from vrepo.engine.ancestors import merge_base
from vrepo.engine.authors import as_author
from vrepo.engine.conflicts import Conflict
from vrepo.engine.objects import ObjectIO
from vrepo.engine.reference import resolve_revision
from vrepo.engine.refs import RefHead
from vrepo.engine.session import Session
from vrepo.engine.three_way import Strategy, check_strategies, merge_into_content
from vrepo.errors import ConflictError, InvalidArgumentError
from vrepo.format import Author, Snapshot

_FAST_FORWARD_TRIES = 10  # the branch moved between reading it and moving it: read again


@dataclass(frozen=True)
class MergeResult:
    """What `Repository.merge` or `Repository.revert` did.

    ``kind`` is ``"merge"`` (a new snapshot with two parents), ``"fast-forward"`` (the
    branch moved to the source, no new snapshot), ``"up-to-date"`` (the source was already
    in the branch's history: nothing changed) or ``"revert"``. ``snapshot_id`` is the
    branch's head afterwards; ``merge_base`` the common ancestor the merge compared with
    (the reverted snapshot, for a revert). ``settled`` lists the conflicts a strategy
    settled, for a record of what was overridden.
    """

    kind: Literal["merge", "fast-forward", "up-to-date", "revert"]
    snapshot_id: str
    source_id: str
    merge_base: str | None
    settled: tuple[Conflict, ...] = ()


def merge_into(
    objects: ObjectIO,
    source: str,
    into: str,
    *,
    message: str | None,
    strategy: Strategy,
    metadata_strategy: Strategy,
    author: Author | str | None,
    fast_forward: bool,
) -> MergeResult:
    """Merge the revision ``source`` into branch ``into`` (see `Repository.merge`)."""
    check_strategies(strategy, metadata_strategy)
    who = as_author(author)  # checked before anything is read
    source_id = run_sync(resolve_revision(objects, source))[0]
    for _ in range(_FAST_FORWARD_TRIES):
        head = run_sync(ref_admin.existing_head(objects, "branch", into))
        dest_id = head.record.snapshot_id
        base = merge_base(objects, dest_id, source_id)
        if base is None:
            raise InvalidArgumentError(
                f"{source!r} and branch {into!r} share no history (they come from different "
                "repositories' first snapshots?): there is nothing to merge them against"
            )
        if base == source_id:
            return MergeResult("up-to-date", dest_id, source_id, base)
        if base != dest_id or not fast_forward:
            break
        if run_sync(ref_admin.move_if_at(objects, head, source_id)):
            return MergeResult("fast-forward", source_id, source_id, base)
    else:
        raise ConflictError(
            f"branch {into!r} kept moving while fast-forwarding it to {source!r}; try again"
        )
    what = f"merge {source!r} into {into!r}"
    text = f"Merge {source!r} into {into!r}" if message is None else message
    snapshot_id, settled = _commit_three_way(
        objects, head, base, source_id, what, text, strategy, metadata_strategy, who, source_id
    )
    return MergeResult("merge", snapshot_id, source_id, base, settled)


def revert_on(
    objects: ObjectIO,
    target: str,
    branch: str,
    *,
    message: str | None,
    strategy: Strategy,
    metadata_strategy: Strategy,
    author: Author | str | None,
) -> MergeResult:
    """Commit on ``branch`` the inverse of snapshot ``target``'s changes (see
    `Repository.revert`)."""
    check_strategies(strategy, metadata_strategy)
    who = as_author(author)
    target_id = run_sync(resolve_revision(objects, target))[0]
    reverted: Snapshot = run_sync(objects.get_snapshot(target_id))
    if reverted.parent_id is None:
        raise InvalidArgumentError(
            f"{target!r} is the repository's first snapshot: it has no parent to go back to"
        )
    head = run_sync(ref_admin.existing_head(objects, "branch", branch))
    what = f"revert {target!r} on {branch!r}"
    text = f"Revert {target_id}: {reverted.message}" if message is None else message
    snapshot_id, settled = _commit_three_way(
        objects,
        head,
        target_id,
        reverted.parent_id,
        what,
        text,
        strategy,
        metadata_strategy,
        who,
        None,
    )
    return MergeResult("revert", snapshot_id, reverted.parent_id, target_id, settled)


def _commit_three_way(
    objects: ObjectIO,
    head: RefHead,
    base_id: str,
    source_id: str,
    what: str,
    message: str,
    strategy: Strategy,
    metadata_strategy: Strategy,
    author: Author,
    merged: str | None,
) -> tuple[str, tuple[Conflict, ...]]:
    """Record the source's changes since the base on a session at ``head``, commit them (a
    merge commit when ``merged``), and return the new snapshot and the settled conflicts."""
    session = Session(objects, head.record.snapshot_id, head=head, read_only=False)

    async def merged_changes() -> tuple[list[Conflict], list[Conflict]]:
        base, source = await objects.get_snapshot(base_id), await objects.get_snapshot(source_id)
        content = await session._ensure_content()
        outcome = await merge_into_content(
            content, base, source, strategy=strategy, metadata_strategy=metadata_strategy
        )
        return outcome.conflicts, outcome.settled

    conflicts, settled = run_sync(merged_changes())
    if conflicts:
        raise _conflict_error(what, conflicts)
    snapshot_id = run_sync(
        session.commit_async(
            message,
            allow_empty=True,
            author=author,
            _merged_parents=() if merged is None else (merged,),
        )
    )
    return snapshot_id, tuple(settled)


def _conflict_error(what: str, conflicts: list[Conflict]) -> ConflictError:
    shown = "; ".join(map(str, conflicts[:10])) + (" ..." if len(conflicts) > 10 else "")
    error = ConflictError.advised(
        f"cannot {what}: {len(conflicts)} conflict(s), nothing was committed: {shown}",
        "settle chunk and object conflicts with strategy='source-wins' or 'dest-wins', "
        "metadata conflicts with metadata_strategy= likewise, or change one branch so they "
        "agree and merge again",
        "settle-merge",
    )
    error.conflicts = list(conflicts)
    return error


__all__ = ["MergeResult", "merge_into", "revert_on"]
