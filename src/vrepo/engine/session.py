"""Sessions: a read view of one snapshot plus, when writable, a change set to commit.

A writable session is tied to a branch; `commit` publishes its changes as one new snapshot by
creating the branch's next ref record. When other commits won the race it rebases onto them
and retries, or raises `ConflictError` when their changes overlap its own.
A `ForkSession` is a small picklable child for workers: it writes, its parent merges.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from vrepo._sync import run_sync
from vrepo.engine._html import session_html
from vrepo.engine.changeset import ChangeSet, Coords, OnConflict, chunk_conflict_error
from vrepo.engine.conflicts import SOLVERS, Solver, find_conflicts
from vrepo.engine.content import ChangeSummary, Content
from vrepo.engine.objects import ObjectIO
from vrepo.engine.refs import RefHead, read_head, write_record
from vrepo.errors import (
    ConflictError,
    InvalidArgumentError,
    NoChangesError,
    ReadOnlyError,
    VRepoError,
)
from vrepo.format import ChunkRef, RefRecord, RepoConfig, Snapshot

if TYPE_CHECKING:
    from vrepo.zarr.store import VRepoStore


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
        self._forks: dict[str, _ForkRecord] = {}
        self._store: VRepoStore | None = None
        self._commit_attempts = 0
        self._pending_changes: ChangeSet | None = None  # a fork's changes until it loads

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

    @property
    def store(self) -> VRepoStore:
        """A zarr store over this session (zarr-python 3, Zarr format 3)."""
        if self._store is None:
            from vrepo.zarr.store import VRepoStore  # the one upward reference; see design.md

            self._store = VRepoStore(self, read_only=self._read_only)
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

    def _savepoint(self) -> tuple[ChangeSet, dict[str, _ForkRecord]]:
        """This session's uncommitted state, for `_rollback` after a failed multi-step write."""
        content = run_sync(self._ensure_content())
        return content.changes.copy(), dict(self._forks)

    def _rollback(self, savepoint: tuple[ChangeSet, dict[str, _ForkRecord]]) -> None:
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
    ) -> str:
        """Publish the changes as one new snapshot on the branch and return its id.

        All or nothing: a reader sees either the old head or the whole new snapshot. If other
        commits landed on the branch meanwhile and changed different things, the changes are
        rebased onto them and the commit retried (with jittered backoff, up to the
        repository's ``commit_retries``). If they overlap, `ConflictError` lists every
        conflict and the session keeps its changes, unless ``rebase_with`` settles chunk
        conflicts: "ours" keeps this session's chunks, "theirs" keeps the other commits'.
        Metadata conflicts are never settled silently.
        """
        return run_sync(
            self.commit_async(message, metadata, allow_empty=allow_empty, rebase_with=rebase_with)
        )

    async def commit_async(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        allow_empty: bool = False,
        rebase_with: Solver = "fail",
    ) -> str:
        """Async form of `commit`."""
        self._check_writable()
        if not isinstance(message, str):
            raise InvalidArgumentError(
                f"commit message must be a str, not {type(message).__name__}"
            )
        _check_solver(rebase_with)
        metadata = _validated_metadata(metadata)
        content = await self._ensure_content()
        if content.changes.is_empty() and not allow_empty:
            raise NoChangesError(
                "nothing to commit: this session has no changes (pass allow_empty=True to "
                "record an empty commit)"
            )
        config = self._objects.config
        durable: set[str] = set()
        for attempt in range(config.commit_retries + 1):
            if attempt:  # lost the race: wait, then rebase onto the newest head and go at once
                await asyncio.sleep(_backoff_seconds(attempt, config))
                await self._rebase(rebase_with)
                content = self._content
            snapshot, keys = await content.flush(message, metadata)
            await self._objects.make_durable([k for k in keys if k not in durable])
            durable.update(keys)
            record = await write_record(self._objects.storage, self._head, "commit", snapshot.id)
            if record is not None:
                self._advance(record, snapshot)
                self._commit_attempts = attempt + 1
                return snapshot.id
        raise ConflictError(
            f"gave up committing to {self._head.name!r} after {config.commit_retries} retries: "
            "other writers kept winning. Your changes are kept in the session; commit again, "
            "or raise RepoConfig.commit_retries for a busier branch"
        )

    def amend(self, message: str, metadata: dict[str, Any] | None = None) -> str:
        """Replace the branch's head commit with one holding its changes and this session's.

        Like ``git commit --amend``: the new snapshot takes the head's parent, and the branch
        history records an "amend". Only while this session is based on the branch head;
        sessions others opened on the replaced commit get `ConflictError` when they commit.
        """
        return run_sync(self._amend(message, metadata))

    async def _amend(self, message: str, metadata: dict[str, Any] | None) -> str:
        self._check_writable()
        metadata = _validated_metadata(metadata)
        content = await self._ensure_content()
        storage, branch = self._objects.storage, self._head.name
        head = await read_head(storage, "branch", branch)
        if not head.exists or head.record.snapshot_id != self._snapshot_id:
            raise ConflictError(
                f"amend replaces the head of {branch!r}, but the branch moved since this session "
                "started; rebase() and make a new commit instead"
            )
        if content.base.parent_id is None:
            raise InvalidArgumentError("the repository's first commit cannot be amended")
        base_log = await self._objects.get_transaction_log(self._snapshot_id)
        snapshot, keys = await content.flush(message, metadata, amending=base_log)
        await self._objects.make_durable(keys)
        record = await write_record(storage, head, "amend", snapshot.id)
        if record is None:
            raise ConflictError(
                f"another commit landed on {branch!r} while amending; nothing was changed. "
                "rebase() and make a new commit instead"
            )
        self._advance(record, snapshot)
        return snapshot.id

    def _advance(self, record: RefRecord, snapshot: Snapshot) -> None:
        """After publishing ``snapshot``: continue from it, with no changes and no forks."""
        self._head = RefHead("branch", self._head.name, record)
        self._snapshot_id = snapshot.id
        self._content = Content(self._objects, snapshot)
        self._forks.clear()

    def rebase(self, solver: Solver = "fail") -> None:
        """Move this session's changes onto the branch's current head, without committing.

        Raises `ConflictError` listing every conflict with the commits made since the session
        started, unless ``solver`` settles the chunk conflicts ("ours" or "theirs").
        """
        self._check_writable()
        _check_solver(solver)
        run_sync(self._rebase(solver))

    async def _rebase(self, solver: Solver) -> None:
        content = await self._ensure_content()
        storage, branch = self._objects.storage, self._head.name
        head = await read_head(storage, "branch", branch)
        if not head.exists:
            raise ConflictError(
                f"branch {branch!r} was deleted while this session was open; your changes are "
                "kept: create the branch again and commit, or discard them"
            )
        winners = await self._commits_since_base(head.record.snapshot_id)
        if not winners:  # the ref moved (e.g. reset) but still points at our base
            self._head = head
            return
        logs = await asyncio.gather(*(self._objects.get_transaction_log(s.id) for s in winners))
        ours = content.transaction_log()
        conflicts = find_conflicts(ours, content.changes.nodes, logs, winners[0])
        unsolved = [c for c in conflicts if not c.solvable or solver == "fail"]
        if unsolved:
            listed = "\n  ".join(map(str, conflicts[:50]))
            more = f"\n  ... and {len(conflicts) - 50} more" if len(conflicts) > 50 else ""
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
        self._content = Content(self._objects, winners[0], content.changes)
        self._snapshot_id = winners[0].id
        self._head = head

    async def _commits_since_base(self, head_id: str) -> list[Snapshot]:
        """The snapshots from ``head_id`` back to (excluding) this session's base, newest first."""
        found: list[Snapshot] = []
        current: str | None = head_id
        while current != self._snapshot_id:
            if current is None:
                raise ConflictError(
                    f"branch {self._head.name!r} was reset to {head_id}, which does not descend "
                    f"from this session's base {self._snapshot_id}; your changes cannot be "
                    "rebased onto it: discard them, or reset the branch back"
                )
            snapshot = await self._objects.get_snapshot(current)
            found.append(snapshot)
            current = snapshot.parent_id
        return found

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
            self._forks[base_id] = _ForkRecord.of(content.changes)
        return ForkSession(self._objects, base_id, parent_id=self._id, branch=self.branch)

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
        staged = []
        for base_id in dict.fromkeys(fork._snapshot_id for fork in forks):
            combined = ChangeSet()
            for fork in forks:
                if fork._snapshot_id == base_id:
                    combined.merge(fork._change_set(), on_conflict)
            clashes = self._forks[base_id].overlaps(content.changes, combined)
            if clashes and on_conflict == "error":
                raise chunk_conflict_error(
                    [c for c in clashes if isinstance(c, tuple)],
                    [c for c in clashes if isinstance(c, str)],
                )
            staged.append((combined, clashes if on_conflict == "ours" else set()))
        for combined, keep in staged:
            _apply(content, combined, keep)

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


@dataclass
class _ForkRecord:
    """What a session remembers of a fork() call: its own chunk refs at that moment."""

    chunks: dict[str, dict[Coords, ChunkRef | None]]
    objects: dict[str, ChunkRef | None]

    @classmethod
    def of(cls, changes: ChangeSet) -> _ForkRecord:
        return cls({p: dict(refs) for p, refs in changes.chunks.items()}, dict(changes.loose))

    def overlaps(self, now: ChangeSet, incoming: ChangeSet) -> set[tuple[str, Coords] | str]:
        """Chunks/objects ``incoming`` writes that the session changed after this fork.

        The session's writes from before the fork were visible to the fork (which may have
        read-modified-written them), so only later changes, by the session or by forks
        merged since, can be lost.
        """
        clashes: set[tuple[str, Coords] | str] = set()
        for path, refs in incoming.chunks.items():
            current = now.chunks.get(path)
            if current:
                then = self.chunks.get(path, {})
                clashes.update(
                    (path, c)
                    for c in refs.keys() & current.keys()
                    if (c not in then or current[c] is not then[c]) and current[c] != refs[c]
                )
        clashes.update(
            key
            for key in incoming.loose.keys() & now.loose.keys()
            if (key not in self.objects or now.loose[key] is not self.objects[key])
            and now.loose[key] != incoming.loose[key]
        )
        return clashes


def _apply(content: Content, changes: ChangeSet, keep: set[tuple[str, Coords] | str]) -> None:
    """Apply a fork-relative change set to a session's content, except the ``keep`` entries."""
    for path in changes.dropped:
        content.delete_node(path)
    for path, meta in changes.nodes.items():
        content.set_node(path, meta)
    current = content.changes
    for path, refs in changes.chunks.items():
        view = content.node(path)
        if view is None or view.kind != "array":
            raise VRepoError(
                f"a fork wrote chunks to {path}, which is no longer an array in this session"
            )
        for coords, ref in refs.items():
            if (path, coords) not in keep:
                current.set_chunk(path, coords, ref)
    for key, ref in changes.loose.items():
        if key not in keep:
            current.loose[key] = ref


def _check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        raise InvalidArgumentError(f"solver must be one of {SOLVERS}, not {solver!r}")


def _backoff_seconds(attempt: int, config: RepoConfig) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))] milliseconds."""
    cap = min(config.commit_backoff_max_ms, config.commit_backoff_ms * 2 ** (attempt - 1))
    return random.uniform(0, cap) / 1000


def _validated_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"commit metadata must be a dict, not {type(metadata).__name__}")
    try:
        return msgspec.json.decode(msgspec.json.encode(metadata))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidArgumentError(
            f"commit metadata must be JSON-compatible (str keys; str, number, bool, None, "
            f"list, dict values): {exc}"
        ) from exc
