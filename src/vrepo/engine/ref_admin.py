"""Creating, moving and deleting branches and tags, each as one retry-safe operation.

Each call writes at most one ref record. A call repeated after an error that left unclear
whether it worked (a timeout after the write landed) returns normally when the ref already
shows its effect: created at that snapshot, reset to it, deleted.
"""

from __future__ import annotations

from vrepo.engine.objects import ObjectIO
from vrepo.engine.reference import resolve_revision
from vrepo.engine.refs import (
    RefAction,
    RefHead,
    RefKind,
    list_names,
    new_operation,
    read_head,
    write_record,
)
from vrepo.errors import (
    ConflictError,
    InvalidArgumentError,
    RefExistsError,
    RefNotFoundError,
    SnapshotNotFoundError,
)
from vrepo.format import RefRecord, is_valid_id


async def existing_head(objects: ObjectIO, kind: RefKind, name: str) -> RefHead:
    """The head of a ref that points at a snapshot; `RefNotFoundError` naming those there are."""
    head = await read_head(objects.storage, kind, name)
    if not head.exists:
        others = ", ".join(await list_names(objects.storage, kind)) or "none"
        gone = " (it was deleted)" if head.record is not None else ""
        plural = "branches" if kind == "branch" else "tags"
        raise RefNotFoundError(f"no {kind} named {name!r}{gone}; existing {plural}: {others}")
    return head


async def target_of(objects: ObjectIO, target: str) -> str:
    """The snapshot a ref operation's target names: a snapshot id as it is (checked later),
    anything else as a revision (``"main"``, ``"v1~1"``, an id's first characters)."""
    if is_valid_id(target):
        return target
    return (await resolve_revision(objects, target))[0]


async def _refuse_name_of_the_other_kind(objects: ObjectIO, kind: RefKind, name: str) -> None:
    other: RefKind = "tag" if kind == "branch" else "branch"
    if (await read_head(objects.storage, other, name)).exists:
        raise RefExistsError(
            f"a {other} named {name!r} exists: a {kind} of the same name would make "
            f"references to {name!r} ambiguous; choose another name"
        )


async def create_branch(objects: ObjectIO, name: str, snapshot_id: str) -> None:
    """Create branch ``name`` at ``snapshot_id``; a deleted name may be reused."""
    snapshot_id = await target_of(objects, snapshot_id)
    head = await read_head(objects.storage, "branch", name)
    if head.exists:
        if _created_at(head, snapshot_id):
            return
        raise RefExistsError.advised(
            f"branch {name!r} already exists",
            "move it with reset_branch or pick another name",
            "reset-branch",
            name=name,
        )
    await _refuse_name_of_the_other_kind(objects, "branch", name)
    await _check_snapshot(objects, snapshot_id)
    if await _write(objects, head, "create", snapshot_id) is None:
        if _created_at(await read_head(objects.storage, "branch", name), snapshot_id):
            return
        raise RefExistsError(f"branch {name!r} was created by someone else just now")


async def reset_branch(objects: ObjectIO, name: str, snapshot_id: str) -> None:
    """Point existing branch ``name`` at ``snapshot_id``."""
    snapshot_id = await target_of(objects, snapshot_id)
    head = await existing_head(objects, "branch", name)
    await _check_snapshot(objects, snapshot_id)
    if await _write(objects, head, "reset", snapshot_id) is None:
        if (await existing_head(objects, "branch", name)).record.snapshot_id == snapshot_id:
            return
        raise ConflictError(f"branch {name!r} moved while resetting it; try again")


async def move_if_at(objects: ObjectIO, head: RefHead, snapshot_id: str) -> bool:
    """Move branch ``head.name`` to ``snapshot_id`` only if it is still at ``head`` (as read);
    False when it moved meanwhile. (A merge's fast-forward: nothing it did not see is lost.)"""
    if await _write(objects, head, "reset", snapshot_id) is not None:
        return True
    return (await existing_head(objects, "branch", head.name)).record.snapshot_id == snapshot_id


async def create_tag(objects: ObjectIO, name: str, snapshot_id: str) -> None:
    """Tag ``snapshot_id`` as ``name``; a tag's name is never reused, even once deleted."""
    snapshot_id = await target_of(objects, snapshot_id)
    head = await read_head(objects.storage, "tag", name)
    if head.record is not None:
        if head.exists and head.record.snapshot_id == snapshot_id:
            return
        state = "exists" if head.exists else "existed and was deleted"
        raise RefExistsError(
            f"tag {name!r} {state}; tags never move and their names are not reused, "
            "so choose another name"
        )
    await _refuse_name_of_the_other_kind(objects, "tag", name)
    await _check_snapshot(objects, snapshot_id)
    if await _write(objects, head, "create", snapshot_id) is None:
        again = await read_head(objects.storage, "tag", name)
        if again.exists and again.record.snapshot_id == snapshot_id:
            return
        raise RefExistsError(f"tag {name!r} was created by someone else just now")


async def delete_ref(objects: ObjectIO, kind: RefKind, name: str) -> None:
    """Delete a branch or tag; one already deleted is left so, one never made is an error."""
    if kind == "branch" and name == "main":
        raise InvalidArgumentError.advised(
            "the main branch cannot be deleted",
            "reset it with reset_branch instead",
            "reset-branch",
            name="main",
        )
    head = await read_head(objects.storage, kind, name)
    if head.record is None:  # never existed: RefNotFoundError naming those there are
        head = await existing_head(objects, kind, name)
    if not head.exists:
        return  # deleted already: by this caller's earlier try, or by someone else
    if await _write(objects, head, "delete", None) is None:
        if not (await read_head(objects.storage, kind, name)).exists:
            return
        raise ConflictError(f"{kind} {name!r} moved while deleting it; try again")


async def _check_snapshot(objects: ObjectIO, snapshot_id: str) -> None:
    if not await objects.snapshot_exists(snapshot_id):
        raise SnapshotNotFoundError.advised(
            f"snapshot {snapshot_id!r} does not exist in this repository",
            "find ids with repo.ancestry()",
            "list-snapshots",
        )


async def _write(
    objects: ObjectIO, head: RefHead, action: RefAction, snapshot_id: str | None
) -> RefRecord | None:
    """Write the ref record after ``head`` as one operation (see `write_record`)."""
    return await write_record(objects.storage, head, action, snapshot_id, new_operation())


def _created_at(head: RefHead, snapshot_id: str) -> bool:
    """Whether the ref's newest record is its creation at ``snapshot_id``."""
    return (
        head.record is not None
        and head.record.action == "create"
        and head.record.snapshot_id == snapshot_id
    )
