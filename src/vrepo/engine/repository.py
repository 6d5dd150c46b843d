"""The repository: configuration, branches, tags, history, and sessions over one storage.

Names follow Icechunk's Python API where the concepts match, so switching is easy.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

import msgspec
import msgspec.structs

from vrepo._sync import run_sync
from vrepo.engine import ref_admin
from vrepo.engine._html import repository_html
from vrepo.engine.ancestors import iter_ancestors
from vrepo.engine.authors import configured_author
from vrepo.engine.conflicts import Solver
from vrepo.engine.diff import SnapshotDiff, diff_snapshots
from vrepo.engine.history import History, count_snapshots
from vrepo.engine.history_index import newest_at_or_before
from vrepo.engine.listing import NodeInfo, list_nodes
from vrepo.engine.merge import MergeResult, merge_into, revert_on
from vrepo.engine.objects import ObjectIO
from vrepo.engine.reference import resolve_revision
from vrepo.engine.refs import RefHead, RefKind, history, list_names
from vrepo.engine.repo_create import (
    checked_config,
    create_repository,
    read_repository_info,
    save_repository_config,
)
from vrepo.engine.repo_maintenance import RepositoryMaintenance
from vrepo.engine.session import Session
from vrepo.engine.snapshot_info import SnapshotInfo, to_us
from vrepo.engine.three_way import Strategy
from vrepo.engine.transaction import Transaction
from vrepo.engine.tree import SnapshotTree, snapshot_tree
from vrepo.errors import (
    InvalidArgumentError,
    RefNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from vrepo.format import (
    REPO_INFO_KEY,
    Author,
    RefRecord,
    RepoConfig,
    RepoInfo,
    VirtualChunkContainer,
)
from vrepo.storage import Storage, as_storage, guarded, unguarded


def _storage_of(storage: Storage | str | os.PathLike[str]) -> Storage:
    """The storage a user's argument names, wrapped once so that whatever the backend raises
    reaches the user as `StorageError` (see `vrepo.storage.guarded`)."""
    return guarded(as_storage(storage))


class Repository(RepositoryMaintenance):
    """A vrepo repository: open with `Repository.open`, `create` or `open_or_create`."""

    def __init__(self, storage: Storage, info: RepoInfo) -> None:
        self._storage = guarded(storage)  # every failure a StorageError (see storage._guarded)
        self._info = info
        self._objects = ObjectIO(self._storage, info.config)

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls, storage: Storage | str | os.PathLike[str], config: RepoConfig | None = None
    ) -> Repository:
        """Create a new repository with a ``main`` branch holding an empty first snapshot.

        Without ``config``, the settings come from vrepo's configuration (the
        ``repository.*`` keys, see `vrepo.config`).
        """
        storage, config = _storage_of(storage), checked_config(config)
        author = configured_author()  # the first snapshot's, as a commit's
        return cls(storage, run_sync(create_repository(storage, config, author)))

    @classmethod
    def open(cls, storage: Storage | str | os.PathLike[str]) -> Repository:
        """Open an existing repository; `RepositoryNotFoundError` if there is none."""
        storage = _storage_of(storage)
        return cls(storage, run_sync(read_repository_info(storage)))

    @classmethod
    def open_or_create(
        cls, storage: Storage | str | os.PathLike[str], config: RepoConfig | None = None
    ) -> Repository:
        """Open the repository at ``storage``, creating it first if there is none."""
        storage, config = _storage_of(storage), checked_config(config)
        try:
            return cls.open(storage)
        except RepositoryNotFoundError:
            try:
                return cls.create(storage, config)
            except RepositoryExistsError:
                return cls.open(storage)

    @staticmethod
    def exists(storage: Storage | str | os.PathLike[str]) -> bool:
        """Whether a repository exists at ``storage``."""
        return run_sync(_storage_of(storage).exists(REPO_INFO_KEY))

    # --- properties ------------------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The storage the repository was opened on (as given, not wrapped)."""
        return unguarded(self._storage)

    @property
    def config(self) -> RepoConfig:
        """The repository's persisted configuration."""
        return self._info.config

    def save_config(self, config: RepoConfig) -> None:
        """Persist a new configuration; later sessions use it."""
        self._info = run_sync(save_repository_config(self._storage, self._info, config))
        self._objects = ObjectIO(self._storage, self._info.config)

    def add_virtual_chunk_container(
        self, url_prefix: str, storage_options: Mapping[str, Any] | None = None
    ) -> VirtualChunkContainer:
        """Allow virtual refs to read below ``url_prefix`` (e.g. ``file:///data/archive/``),
        saving it in the configuration (replacing a container of the same prefix); later
        sessions use it. Returns the container, its prefix normalized."""
        container = VirtualChunkContainer(url_prefix, dict(storage_options or {}))
        kept = [
            c for c in self.config.virtual_chunk_containers if c.url_prefix != container.url_prefix
        ]
        config = msgspec.structs.replace(self.config, virtual_chunk_containers=(*kept, container))
        self.save_config(config)
        return container

    def __repr__(self) -> str:
        return f"<vrepo.Repository {self._storage.url}>"

    def _repr_html_(self) -> str:
        """For notebooks: location, branches and their heads, tags, the latest commits."""
        return repository_html(self)

    # --- sessions --------------------------------------------------------------------------

    def writable_session(self, branch: str = "main") -> Session:
        """A session that commits to ``branch``, starting from its current head."""
        head = self._existing_head("branch", branch)
        return Session(self._objects, head.record.snapshot_id, head=head, read_only=False)

    def transaction(
        self,
        branch: str = "main",
        *,
        message: str,
        metadata: dict[str, Any] | None = None,
        author: Author | str | None = None,
        rebase_with: Solver = "fail",
        allow_empty: bool = False,
    ) -> Transaction:
        """A ``with`` block that commits its writes to ``branch`` once, or not at all.

        ``with repo.transaction("main", message="...") as store:`` binds the zarr store of a
        new writable session on the branch's head. A clean exit commits, as
        `Session.commit` with these arguments (rebasing onto commits made meanwhile, or
        `ConflictError`); an exception discards the changes and propagates unchanged; a
        block that changed nothing commits nothing (unless ``allow_empty``). Keep the
        `Transaction` to read ``tx.snapshot_id`` afterwards.
        """
        session = self.writable_session(branch)
        return Transaction(
            session,
            message,
            metadata,
            author=author,
            rebase_with=rebase_with,
            allow_empty=allow_empty,
        )

    def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: dt.datetime | None = None,
        ref: str | None = None,
    ) -> Session:
        """A read-only session on a branch head (default ``main``), a tag, or a snapshot.

        ``ref`` names any of these as a revision string instead (``"v1~2"``, see `resolve`).
        With ``as_of``, reads the newest snapshot in that ref's history written at or before
        that (timezone-aware) time: time travel by date.
        """
        if ref is not None:
            if any(x is not None for x in (branch, tag, snapshot_id)):
                raise InvalidArgumentError(
                    "pass ref= alone, not with branch=, tag= or snapshot_id="
                )
            snapshot, head = run_sync(resolve_revision(self._objects, ref))
        else:
            snapshot, head = self._resolve(branch, tag, snapshot_id)
        if as_of is not None:
            found = run_sync(newest_at_or_before(self._objects, snapshot, to_us(as_of)))
            if found is None:
                raise RefNotFoundError(
                    f"no snapshot was written at or before {as_of.isoformat()}; the oldest "
                    "is the repository's first commit"
                )
            snapshot = found
        return Session(self._objects, snapshot, head=head, read_only=True)

    # --- history -----------------------------------------------------------------------------

    def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> History:
        """The snapshots from a ref (default: branch ``main``) back to the first, newest first.

        Through every parent: after a merge, the merged branch's commits are listed too,
        interleaved by time. A lazy iterator (read from the history index as you go) that
        displays as a table in notebooks.
        """
        start, _ = self._resolve(branch, tag, snapshot_id)
        entries = map(SnapshotInfo.from_entry, iter_ancestors(self._objects, start))
        return History(entries, start, lambda: count_snapshots(self._objects, start))

    def resolve(self, ref: str) -> str:
        """The snapshot id a revision names: ``"main"``, ``"v1~2"``, ``"tag:v1"``, an id...

        A bare name is a branch, else a tag, else a snapshot id or its first characters
        (at least 4, any case); ``~N`` goes back N first parents. `InvalidArgumentError` if
        a name is both a branch and a tag (write ``branch:NAME`` or ``tag:NAME``) or starts
        several ids, `RefNotFoundError` if nothing matches or ``~N`` goes back past the first
        snapshot.
        """
        return run_sync(resolve_revision(self._objects, ref))[0]

    def diff(self, from_ref: str | None, to_ref: str) -> SnapshotDiff:
        """What changed between two snapshots (any two: they need not be related).

        Both are revisions as for `resolve`; ``from_ref`` None compares with an empty
        repository. Lists added, removed and re-described nodes, per array the chunks added,
        changed and removed, and added, changed and removed opaque objects.
        """
        from_id = None if from_ref is None else self.resolve(from_ref)
        return run_sync(self._diff(from_id, self.resolve(to_ref)))

    # --- merges --------------------------------------------------------------------------

    def merge(
        self,
        source: str,
        into: str = "main",
        *,
        message: str | None = None,
        strategy: Strategy = "fail",
        metadata_strategy: Strategy = "fail",
        author: Author | str | None = None,
        fast_forward: bool = True,
    ) -> MergeResult:
        """Merge ``source`` (a branch, tag or any revision) into branch ``into``.

        A three-way merge against the newest common ancestor, at node, metadata and chunk
        granularity: what one side changed since then is taken, the same change on both is
        taken once, and different changes to one chunk, one opaque object or one node's
        metadata (or a node deleted on one side and changed on the other) are conflicts:
        `ConflictError` lists them all and nothing is committed. ``strategy="source-wins"``
        or ``"dest-wins"`` settles chunk and object conflicts, ``metadata_strategy`` likewise
        metadata ones; appends along one dimension on both sides are never merged. No chunk
        is copied: the merge commit points at the source's chunks.

        When ``into`` has not moved since the common ancestor the branch is fast-forwarded to
        the source (``fast_forward=False``: a merge commit all the same); when the source is
        in ``into``'s history already nothing changes. Otherwise the merge commit has two
        parents, ``into``'s head and the source (`SnapshotInfo.parent_ids`), and commits like
        a session: rebased over commits landing meanwhile, or `ConflictError`.
        """
        return merge_into(
            self._objects,
            source,
            into,
            message=message,
            strategy=strategy,
            metadata_strategy=metadata_strategy,
            author=author,
            fast_forward=fast_forward,
        )

    def revert(
        self,
        snapshot: str,
        branch: str = "main",
        *,
        message: str | None = None,
        strategy: Strategy = "fail",
        metadata_strategy: Strategy = "fail",
        author: Author | str | None = None,
    ) -> MergeResult:
        """Commit on ``branch`` the inverse of one snapshot's changes (any revision naming it).

        A three-way merge with that snapshot as the base and its parent as the source, so
        later changes to the same chunks or metadata conflict as in `merge` (settled by the
        same strategies). A merge commit is reverted against its first parent.
        """
        return revert_on(
            self._objects,
            snapshot,
            branch,
            message=message,
            strategy=strategy,
            metadata_strategy=metadata_strategy,
            author=author,
        )

    def list_nodes(self, ref: str = "main") -> list[NodeInfo]:
        """The groups and arrays of a revision (see `resolve`), sorted by path.

        With each array's shape, data type, chunk shape, and the number and encoded bytes of
        its stored chunks; read from the snapshot alone, however many chunks there are.
        """
        return list_nodes(run_sync(self._objects.get_snapshot(self.resolve(ref))))

    def tree(self, ref: str = "main") -> SnapshotTree:
        """The hierarchy of a revision (see `resolve`): groups, and arrays with shape, data
        type, chunk shape, chunks stored, stored and virtual bytes. HTML in a notebook, an
        indented tree as text; read from the snapshot alone."""
        return snapshot_tree(run_sync(self._objects.get_snapshot(self.resolve(ref))), ref)

    async def _diff(self, from_id: str | None, to_id: str) -> SnapshotDiff:
        old = await self._objects.get_snapshot(from_id) if from_id is not None else None
        return await diff_snapshots(self._objects, old, await self._objects.get_snapshot(to_id))

    def lookup_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """The id, parent, time, message and metadata of one snapshot."""
        return SnapshotInfo.from_snapshot(run_sync(self._objects.get_snapshot(snapshot_id)))

    def _resolve(
        self, branch: str | None, tag: str | None, snapshot_id: str | None
    ) -> tuple[str, RefHead | None]:
        given = [x is not None for x in (branch, tag, snapshot_id)]
        if sum(given) > 1:
            raise InvalidArgumentError("pass only one of branch=, tag= or snapshot_id=")
        if snapshot_id is not None:
            run_sync(self._objects.get_snapshot(snapshot_id))  # raises if absent
            return snapshot_id, None
        kind, name = ("tag", tag) if tag is not None else ("branch", branch or "main")
        head = self._existing_head(kind, name)
        return head.record.snapshot_id, head

    def _existing_head(self, kind: RefKind, name: str) -> RefHead:
        return run_sync(ref_admin.existing_head(self._objects, kind, name))

    # --- branches --------------------------------------------------------------------------

    def create_branch(self, name: str, snapshot_id: str) -> None:
        """Create branch ``name`` pointing at ``snapshot_id`` (a deleted name may be reused).

        ``snapshot_id`` may be any revision (``"main"``, ``"v1~1"``, an id's first
        characters). A name a tag has is refused: references to it would be ambiguous.

        Creating a branch that was just created at the same snapshot (a retry after an
        error that left it unclear whether the first call worked) returns normally.
        """
        run_sync(ref_admin.create_branch(self._objects, name, snapshot_id))

    def list_branches(self) -> list[str]:
        """Names of all existing branches, sorted."""
        return run_sync(list_names(self._storage, "branch"))

    def lookup_branch(self, name: str) -> str:
        """The snapshot id at the head of branch ``name``."""
        return self._existing_head("branch", name).record.snapshot_id

    def reset_branch(self, name: str, snapshot_id: str) -> None:
        """Point branch ``name`` at ``snapshot_id``, or any revision (recorded in the branch's
        history)."""
        run_sync(ref_admin.reset_branch(self._objects, name, snapshot_id))

    def delete_branch(self, name: str) -> None:
        """Delete branch ``name`` (its history stays readable through its snapshots).

        Deleting a branch that is already deleted returns normally; one that never existed
        raises `RefNotFoundError`.
        """
        run_sync(ref_admin.delete_ref(self._objects, "branch", name))

    def branch_history(self, name: str) -> list[RefRecord]:
        """Every move of branch ``name``, newest first: create, commit, reset, delete."""
        records = run_sync(history(self._storage, "branch", name))
        if not records:
            raise RefNotFoundError(f"branch {name!r} never existed")
        return records

    # --- tags --------------------------------------------------------------------------------

    def create_tag(self, name: str, snapshot_id: str) -> None:
        """Tag ``snapshot_id`` (or any revision) as ``name``. Tags never move, and names are
        never reused; a name a branch has is refused.

        Creating a tag that already points at ``snapshot_id`` (a retry after an error that
        left it unclear whether the first call worked) returns normally.
        """
        run_sync(ref_admin.create_tag(self._objects, name, snapshot_id))

    def list_tags(self) -> list[str]:
        """Names of all existing tags, sorted."""
        return run_sync(list_names(self._storage, "tag"))

    def lookup_tag(self, name: str) -> str:
        """The snapshot id tag ``name`` points at."""
        return self._existing_head("tag", name).record.snapshot_id

    def delete_tag(self, name: str) -> None:
        """Delete tag ``name``; the name stays reserved so it can never point elsewhere.

        Deleting a tag that is already deleted returns normally; one that never existed
        raises `RefNotFoundError`.
        """
        run_sync(ref_admin.delete_ref(self._objects, "tag", name))
