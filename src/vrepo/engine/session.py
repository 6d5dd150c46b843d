"""Sessions: a read view of one snapshot plus, when writable, a change set to commit.

A writable session is tied to a branch; `commit` publishes its changes as one new snapshot by
creating the branch's next ref record. When other commits won the race it rebases onto them
and retries, or raises `ConflictError` when their changes overlap its own.
A `ForkSession` is a small picklable child for workers: it writes, its parent merges.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vrepo._sync import run_sync
from vrepo.engine._html import session_html
from vrepo.engine.authors import as_author
from vrepo.engine.changeset import ChangeSet, OnConflict
from vrepo.engine.commit_loop import UnansweredWrites, amend_head, commit_changes
from vrepo.engine.commit_rules import validated_metadata
from vrepo.engine.conflicts import Solver
from vrepo.engine.content import ChangeSummary, Content
from vrepo.engine.forks import ForkRecord, merge_fork_changes
from vrepo.engine.objects import ObjectIO
from vrepo.engine.rebase import check_solver, rebase_onto_head
from vrepo.engine.refs import RefHead
from vrepo.engine.virtual_writes import set_virtual_refs
from vrepo.errors import (
    InvalidArgumentError,
    NoChangesError,
    ReadOnlyError,
    VRepoError,
)
from vrepo.format import Author, RefRecord, Snapshot

if TYPE_CHECKING:
    from zarr.abc.store import Store

StoreFactory = Callable[["Session"], "Store"]
"""Builds the zarr store over a session; the zarr layer (above this one) provides it."""


class Session:
    """A view of one snapshot; writable sessions also hold uncommitted changes for a branch.

    Open sessions with `Repository.writable_session` / `Repository.readonly_session`.
    """

    def __init__(
        self,
        objects: ObjectIO,
        snapshot_id: str,
        *,
        head: RefHead | None = None,
        read_only: bool = True,
    ) -> None:
        self._objects = objects
        self._snapshot_id = snapshot_id
        self._head = head
        self._read_only = read_only
        self._id = uuid.uuid4().hex
        self._content: Content | None = None
        self._content_lock = asyncio.Lock()
        self._forks: dict[str, ForkRecord] = {}
        self._store: Store | None = None
        self._commit_attempts = 0
        self._pending_changes: ChangeSet | None = None  # a fork's changes until it loads
        self._unanswered = UnansweredWrites()  # the next commit or amend looks for them

    # --- properties ------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """Whether this session refuses writes."""
        return self._read_only

    @property
    def snapshot_id(self) -> str:
        """The snapshot this session reads from (its base, for a writable session)."""
        return self._snapshot_id

    @property
    def branch(self) -> str | None:
        """The branch a writable session commits to; for read-only ones, the branch read."""
        return self._head.name if self._head and self._head.kind == "branch" else None

    _store_factory: StoreFactory | None = None  # set by `vrepo` itself: vrepo.zarr.VRepoStore

    @property
    def store(self) -> Store:
        """A zarr store over this session (zarr-python 3, Zarr format 3): a `vrepo.VRepoStore`."""
        if self._store is None:
            if Session._store_factory is None:
                raise VRepoError("no zarr store is registered; import vrepo to register VRepoStore")
            self._store = Session._store_factory(self)
        return self._store

    @property
    def commit_attempts(self) -> int:
        """How many tries the last successful commit took (1 = no other writer interfered)."""
        return self._commit_attempts

    @property
    def has_uncommitted_changes(self) -> bool:
        return self._content is not None and not self._content.changes.is_empty()

    def __repr__(self) -> str:
        mode = "read-only" if self._read_only else "writable"
        where = f"branch={self.branch!r}, " if self.branch else ""
        return f"<{type(self).__name__} {mode} {where}snapshot={self._snapshot_id}>"

    def _repr_html_(self) -> str:
        """For notebooks: mode, branch, base snapshot and the uncommitted changes."""
        try:
            base = run_sync(self._objects.get_snapshot(self._snapshot_id))
        except VRepoError:
            base = None  # shown without it; the display must not fail
        ref = (self._head.kind, self._head.name) if self._head is not None else None
        return session_html(self, base, ref)

    # --- content -----------------------------------------------------------------------------

    async def _ensure_content(self) -> Content:
        if self._content is None:
            snapshot = await self._objects.get_snapshot(self._snapshot_id)
            if self._content is None:
                self._content = Content(self._objects, snapshot, self._pending_changes)
        return self._content

    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyError(
                "this session is read-only; open one with repo.writable_session(branch) to write"
            )

    def status(self) -> ChangeSummary:
        """What this session would commit: new, updated and deleted nodes, chunk counts."""
        return run_sync(self._ensure_content()).summary()

    def discard_changes(self) -> None:
        """Forget every uncommitted change (written chunks become garbage, collected later)."""
        self._check_writable()
        content = run_sync(self._ensure_content())
        self._content = Content(self._objects, content.base)
        self._forks.clear()

    def _savepoint(self) -> tuple[ChangeSet, dict[str, ForkRecord]]:
        """This session's uncommitted state, for `_rollback` after a failed multi-step write."""
        content = run_sync(self._ensure_content())
        return content.changes.copy(), dict(self._forks)

    def _rollback(self, savepoint: tuple[ChangeSet, dict[str, ForkRecord]]) -> None:
        """Return to a `_savepoint`: changes made since then are forgotten."""
        changes, forks = savepoint
        content = run_sync(self._ensure_content())
        self._content = Content(self._objects, content.base, changes.copy())
        self._forks = dict(forks)

    # --- commit ------------------------------------------------------------------------------

    def commit(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        allow_empty: bool = False,
        rebase_with: Solver = "fail",
        author: Author | str | None = None,
    ) -> str:
        """Publish the changes as one new snapshot on the branch and return its id.

        All or nothing: a reader sees either the old head or the whole new snapshot. If other
        commits landed on the branch meanwhile and changed different things, the changes are
        rebased onto them and the commit retried (with jittered backoff, up to the
        repository's ``commit_retries``). If they overlap, `ConflictError` lists every
        conflict and the session keeps its changes, unless ``rebase_with`` settles chunk
        conflicts: "ours" keeps this session's chunks, "theirs" keeps the other commits'.
        Metadata conflicts are never settled silently.

        The snapshot records ``author`` (a `vrepo.Author` or ``"Name <email>"``), by default
        the configured ``user.name`` / ``user.email``, else the operating system's user name:
        set it to commit on someone else's behalf, e.g. in a service that ingests their data.
        """
        return run_sync(
            self.commit_async(
                message, metadata, allow_empty=allow_empty, rebase_with=rebase_with, author=author
            )
        )

    async def commit_async(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        allow_empty: bool = False,
        rebase_with: Solver = "fail",
        author: Author | str | None = None,
        _merged_parents: tuple[str, ...] = (),
    ) -> str:
        """Async form of `commit`. (``_merged_parents``: `Repository.merge`'s, internal.)"""
        self._check_writable()
        if (landed := await self._adopt_unanswered()) is not None:
            return landed
        if not isinstance(message, str):
            raise InvalidArgumentError(
                f"commit message must be a str, not {type(message).__name__}"
            )
        check_solver(rebase_with)
        metadata = validated_metadata(metadata)
        who = as_author(author)
        content = await self._ensure_content()
        if content.changes.is_empty() and not allow_empty:
            raise NoChangesError(
                "nothing to commit: this session has no changes (pass allow_empty=True to "
                "record an empty commit)"
            )
        landed = await commit_changes(
            self._objects,
            self._head,
            content,
            message,
            metadata,
            rebase=lambda head: self._rebase_for_commit(rebase_with, head),
            unanswered=self._unanswered,
            author=who,
            merged_parents=_merged_parents,
        )
        self._advance(landed.record, landed.snapshot)
        self._commit_attempts = landed.attempts
        return landed.snapshot.id

    def amend(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        author: Author | str | None = None,
    ) -> str:
        """Replace the branch's head commit with one holding its changes and this session's.

        Like ``git commit --amend``: the new snapshot takes the head's parent, and the branch
        history records an "amend". Only while this session is based on the branch head;
        sessions others opened on the replaced commit get `ConflictError` when they commit.
        As in git, the amended commit keeps the author of the one it replaces unless
        ``author`` is given (a head from before vrepo recorded authors gets the configured
        one, as `commit` would).
        """
        return run_sync(self._amend(message, metadata, author))

    async def _amend(
        self, message: str, metadata: dict[str, Any] | None, author: Author | str | None = None
    ) -> str:
        self._check_writable()
        if (landed := await self._adopt_unanswered()) is not None:
            return landed
        metadata = validated_metadata(metadata)
        content = await self._ensure_content()
        kept = content.base.author if author is None else None
        who = kept if kept is not None else as_author(author)
        landed = await amend_head(
            self._objects, self._head.name, content, message, metadata, self._unanswered, who
        )
        self._advance(landed.record, landed.snapshot)
        return landed.snapshot.id

    async def _adopt_unanswered(self) -> str | None:
        """If a commit or amend whose write went unanswered landed after all, adopt it.

        Returns the snapshot id it published (the session continues from it, as after a
        successful commit), or None when none of them is on the branch.
        """
        landed = await self._unanswered.landed(self._objects, self._head.name)
        if landed is None:
            return None
        self._advance(landed.record, landed.snapshot)
        return landed.snapshot.id

    def _advance(self, record: RefRecord, snapshot: Snapshot) -> None:
        """After publishing ``snapshot``: continue from it, with no changes and no forks."""
        self._head = RefHead("branch", self._head.name, record)
        self._snapshot_id = snapshot.id
        self._content = Content(self._objects, snapshot)
        self._forks.clear()
        self._unanswered.clear()

    def rebase(self, solver: Solver = "fail") -> None:
        """Move this session's changes onto the branch's current head, without committing.

        Raises `ConflictError` listing every conflict with the commits made since the session
        started, unless ``solver`` settles the chunk conflicts ("ours" or "theirs").
        """
        self._check_writable()
        check_solver(solver)
        run_sync(self._rebase(solver))

    async def _rebase(self, solver: Solver, head: RefHead | None = None) -> None:
        content = await self._ensure_content()
        rebased = await rebase_onto_head(
            self._objects, self._head.name, self._snapshot_id, content, solver, head
        )
        if rebased.base is not None:
            self._content = Content(self._objects, rebased.base, content.changes)
            self._snapshot_id = rebased.base.id
        self._head = rebased.head

    async def _rebase_for_commit(
        self, solver: Solver, head: RefHead | None
    ) -> tuple[Content, RefHead]:
        await self._rebase(solver, head)
        return self._content, self._head

    # --- forks ---------------------------------------------------------------------------------

    def fork(self) -> ForkSession:
        """A small, picklable session for a worker, seeing everything this session sees.

        Uncommitted changes are flushed to an unpublished snapshot the fork reads from, so
        the fork's size does not grow with this session's changes. Merge it back with
        `merge`; only this session can.
        """
        self._check_writable()
        return run_sync(self._fork())

    async def _fork(self) -> ForkSession:
        await self._objects.storage._prepare_for_workers()  # e.g. fetch credentials to scatter
        content = await self._ensure_content()
        base_id = self._snapshot_id
        if not content.changes.is_empty():
            snapshot, _ = await content.flush("fork base (unpublished)", {})
            base_id = snapshot.id
        if base_id not in self._forks:
            self._forks[base_id] = ForkRecord.of(content.changes)
        return ForkSession(self._objects, base_id, parent_id=self._id, branch=self.branch)

    def set_virtual_refs(
        self,
        array_path: str,
        chunk_coords: Any,
        locations: Any,
        offsets: Any,
        lengths: Any,
        *,
        location_index: Any | None = None,
        validators: Mapping[str, str] | None = None,
    ) -> int:
        """Point chunks of an array at byte ranges of files outside the repository.

        Columns in, one row per chunk: ``chunk_coords`` (n, ndim), ``locations`` (n URLs such
        as ``file:///data/a.nc``; or, with ``location_index`` (n,), the k distinct ones),
        ``offsets`` and ``lengths`` (n). Each location must lie in a virtual chunk container
        of the repository (`VirtualContainerError`). Its validator (mtime and size of a local
        file) is read now, or taken from ``validators`` (location -> validator); a read of a
        changed source raises `VirtualSourceChangedError`. Returns how many refs were set.
        """
        self._check_writable()
        content = run_sync(self._ensure_content())
        return run_sync(
            set_virtual_refs(
                content,
                array_path,
                chunk_coords,
                locations,
                offsets,
                lengths,
                location_index=location_index,
                validators=validators,
            )
        )

    def merge(self, *forks: ForkSession, on_conflict: OnConflict = "error") -> None:
        """Fold forks' changes into this session (they commit with it).

        A chunk written by two forks, or by a fork and by this session after it forked, is a
        conflict: `ChunkConflictError` naming array and coordinates, and nothing is merged;
        unless ``on_conflict`` is "ours" (keep what was there first) or "theirs" (take the
        fork's). Merging is associative: forks may first be merged into each other.
        """
        self._check_writable()
        for fork in forks:
            if not isinstance(fork, ForkSession) or fork._parent_id != self._id:
                raise InvalidArgumentError(
                    "can only merge forks made by this session's fork(); got "
                    f"{fork!r}, which belongs to another session"
                )
            if fork._snapshot_id not in self._forks:
                raise InvalidArgumentError(
                    f"fork based on {fork._snapshot_id} predates this session's last commit or "
                    "discard; fork again and redo its work"
                )
        content = run_sync(self._ensure_content())
        changes = [(fork._snapshot_id, fork._change_set()) for fork in forks]
        merge_fork_changes(content, self._forks, changes, on_conflict)

    # --- pickling ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        if not self._read_only:
            raise VRepoError(
                "a writable session cannot be pickled: its uncommitted changes would be "
                "silently split. Call session.fork() and send the fork to workers instead, "
                "then session.merge(*forks)."
            )
        return {"objects": self._objects, "snapshot_id": self._snapshot_id, "head": self._head}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Session.__init__(
            self, state["objects"], state["snapshot_id"], head=state["head"], read_only=True
        )


class ForkSession(Session):
    """A writable child of a session, for workers; picklable; merged back by its parent."""

    def __init__(self, objects: ObjectIO, snapshot_id: str, *, parent_id: str, branch: str | None):
        super().__init__(objects, snapshot_id, read_only=False)
        self._parent_id = parent_id
        self._branch_name = branch
        self._pending_changes = ChangeSet()

    @property
    def branch(self) -> str | None:
        return self._branch_name

    def commit(self, *args: Any, **kwargs: Any) -> str:
        raise VRepoError(
            "a fork cannot commit; return it to the coordinator, which calls "
            "session.merge(*forks) and then session.commit(...)"
        )

    commit_async = commit  # type: ignore[assignment]

    def fork(self) -> ForkSession:
        raise VRepoError("fork the coordinator's session, not a fork")

    def rebase(self, solver: Solver = "fail") -> None:
        raise VRepoError("a fork cannot rebase; its coordinator rebases when it commits")

    def amend(self, *args: Any, **kwargs: Any) -> str:
        raise VRepoError("a fork cannot amend; its coordinator commits")

    def merge(self, *forks: ForkSession, on_conflict: OnConflict = "error") -> None:
        """Combine sibling forks into this one (for tree reductions)."""
        for fork in forks:
            if not isinstance(fork, ForkSession) or (fork._parent_id, fork._snapshot_id) != (
                self._parent_id,
                self._snapshot_id,
            ):
                raise InvalidArgumentError("can only merge forks made by the same fork() call")
        mine = run_sync(self._ensure_content()).changes
        for fork in forks:
            mine.merge(fork._change_set(), on_conflict)

    def _sibling(self) -> ForkSession:
        """A fork of the same fork() call with no changes: one per task, merged later."""
        return ForkSession(
            self._objects, self._snapshot_id, parent_id=self._parent_id, branch=self._branch_name
        )

    def _change_set(self) -> ChangeSet:
        """This fork's changes, whether or not it has loaded its base snapshot yet."""
        if self._content is not None:
            return self._content.changes
        return self._pending_changes

    def __getstate__(self) -> dict[str, Any]:
        changes = self._change_set()
        return {
            "objects": self._objects,
            "snapshot_id": self._snapshot_id,
            "id": self._id,
            "parent_id": self._parent_id,
            "branch": self._branch_name,
            "changes": changes,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        ForkSession.__init__(
            self,
            state["objects"],
            state["snapshot_id"],
            parent_id=state["parent_id"],
            branch=state["branch"],
        )
        self._id = state["id"]
        self._pending_changes = state["changes"]
