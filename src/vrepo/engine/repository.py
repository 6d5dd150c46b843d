"""The repository: configuration, branches, tags, history, and sessions over one storage.

Names follow Icechunk's Python API where the concepts match, so switching is easy.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

from vrepo import config as _settings
from vrepo._sync import run_sync
from vrepo.engine._html import repository_html
from vrepo.engine.create_once import create_once
from vrepo.engine.diff import SnapshotDiff, diff_snapshots
from vrepo.engine.history import History
from vrepo.engine.listing import NodeInfo, list_nodes
from vrepo.engine.objects import ObjectIO
from vrepo.engine.reference import resolve_revision
from vrepo.engine.refs import (
    RefAction,
    RefHead,
    RefKind,
    history,
    list_names,
    new_operation,
    now_us,
    read_head,
    write_record,
)
from vrepo.engine.session import Session
from vrepo.engine.snapshot_info import SnapshotInfo
from vrepo.errors import (
    ConflictError,
    InvalidArgumentError,
    ObjectNotFoundError,
    RefExistsError,
    RefNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
)
from vrepo.format import (
    FORMAT_VERSION,
    REPO_INFO_KEY,
    RefRecord,
    RepoConfig,
    RepoInfo,
    Snapshot,
    TransactionLog,
    decode_repo_info,
    encode_repo_info,
    new_id,
)
from vrepo.storage import Storage, as_storage, guarded, unguarded

INITIAL_MESSAGE = "Repository initialized"


def _configured_repo_config() -> RepoConfig:
    """A `RepoConfig` from the user's ``repository.*`` settings (see `vrepo.config`)."""
    return RepoConfig(
        inline_threshold_bytes=_settings.get("repository.inline-threshold-bytes"),
        commit_retries=_settings.get("repository.commit-retries"),
        commit_backoff_ms=_settings.get("repository.commit-backoff-ms"),
        commit_backoff_max_ms=_settings.get("repository.commit-backoff-max-ms"),
    )


def _checked_config(config: object) -> RepoConfig | None:
    """``config`` if it is a `RepoConfig` or None; else `InvalidArgumentError`, before any
    storage is touched (a config of the wrong type used to write an unreadable repo.json)."""
    if config is None or isinstance(config, RepoConfig):
        return config
    raise InvalidArgumentError(
        f"config must be a vrepo.RepoConfig or None, got {type(config).__name__} {config!r}; "
        "for example config=vrepo.RepoConfig(inline_threshold_bytes=1024)"
    )


def _storage_of(storage: Storage | str | os.PathLike[str]) -> Storage:
    """The storage a user's argument names, wrapped once so that whatever the backend raises
    reaches the user as `StorageError` (see `vrepo.storage.guarded`)."""
    return guarded(as_storage(storage))


def _to_us(when: dt.datetime) -> int:
    if not isinstance(when, dt.datetime):
        raise InvalidArgumentError(f"as_of must be a datetime, not {type(when).__name__}")
    if when.tzinfo is None:
        raise InvalidArgumentError(
            "as_of must be timezone-aware (e.g. datetime.now(timezone.utc)); a naive "
            "datetime is ambiguous"
        )
    return int(when.timestamp() * 1_000_000)


class Repository:
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
        config = _checked_config(config)
        if config is None:
            config = _configured_repo_config()
        return run_sync(cls._create(_storage_of(storage), config))

    @classmethod
    async def _create(cls, storage: Storage, config: RepoConfig) -> Repository:
        storage = guarded(storage)
        info = RepoInfo(format_version=FORMAT_VERSION, created_at=now_us(), config=config)
        encoded_info = encode_repo_info(info)  # fails, if at all, before anything is written
        if await storage.exists(REPO_INFO_KEY):
            raise RepositoryExistsError(
                f"a repository already exists at {storage.url}; open it with Repository.open"
            )
        repo = cls(storage, info)
        first = Snapshot(
            id=new_id(),
            parent_id=None,
            created_at=info.created_at,
            message=INITIAL_MESSAGE,
            metadata={},
            nodes=(),
        )
        log = TransactionLog(first.id, (), (), (), (), (), ())
        await storage.make_durable(await repo._objects.put_snapshot(first, log))
        # main before repo.json: a repository exists once repo.json does, and then it has a
        # main branch. A main without repo.json is a creation that died (or is under way):
        # adopt its main, and let the repo.json create decide who created the repository.
        main = await read_head(storage, "branch", "main")
        if main.record is None:
            await write_record(storage, main, "create", first.id, new_operation())
        created = await create_once(
            storage, REPO_INFO_KEY, encoded_info, ours=lambda stored: stored == encoded_info
        )
        if not created:
            raise RepositoryExistsError(
                f"another process created a repository at {storage.url} at the same time; "
                "open it with Repository.open"
            )
        return repo

    @classmethod
    def open(cls, storage: Storage | str | os.PathLike[str]) -> Repository:
        """Open an existing repository; `RepositoryNotFoundError` if there is none."""
        return run_sync(cls._open(_storage_of(storage)))

    @classmethod
    async def _open(cls, storage: Storage) -> Repository:
        storage = guarded(storage)
        try:
            data = await storage.get(REPO_INFO_KEY)
        except ObjectNotFoundError:
            raise RepositoryNotFoundError(
                f"no vrepo repository at {storage.url}; create one with Repository.create"
            ) from None
        return cls(storage, decode_repo_info(data, what=f"{storage.url}/{REPO_INFO_KEY}"))

    @classmethod
    def open_or_create(
        cls, storage: Storage | str | os.PathLike[str], config: RepoConfig | None = None
    ) -> Repository:
        """Open the repository at ``storage``, creating it first if there is none."""
        storage, config = _storage_of(storage), _checked_config(config)
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
        if not isinstance(config, RepoConfig):
            raise InvalidArgumentError(
                f"save_config takes a vrepo.RepoConfig, got {type(config).__name__}"
            )
        info = RepoInfo(self._info.format_version, self._info.created_at, config)
        encoded = encode_repo_info(info)  # before anything is written
        run_sync(self._storage.put(REPO_INFO_KEY, encoded))
        self._info = info
        self._objects = ObjectIO(self._storage, config)

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
            limit = _to_us(as_of)
            for older in self._walk(snapshot):
                if older.created_at <= limit:
                    snapshot = older.id
                    break
            else:
                raise RefNotFoundError(
                    f"no snapshot was written at or before {as_of.isoformat()}; the oldest "
                    "is the repository's first commit"
                )
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

        A lazy iterator (snapshots are read as you go) that displays as a table in notebooks.
        """
        start, _ = self._resolve(branch, tag, snapshot_id)
        return History(map(SnapshotInfo.from_snapshot, self._walk(start)), start)

    def resolve(self, ref: str) -> str:
        """The snapshot id a revision names: ``"main"``, ``"v1~2"``, ``"tag:v1"``, an id...

        A bare name is a branch, else a tag, else a snapshot id; ``~N`` goes back N
        first parents. `InvalidArgumentError` if a name is both a branch and a tag (write
        ``branch:NAME`` or ``tag:NAME``), `RefNotFoundError` if nothing matches or ``~N``
        goes back past the first snapshot.
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

    def list_nodes(self, ref: str = "main") -> list[NodeInfo]:
        """The groups and arrays of a revision (see `resolve`), sorted by path.

        With each array's shape, data type, chunk shape, and the number and encoded bytes of
        its stored chunks; read from the snapshot alone, however many chunks there are.
        """
        return list_nodes(run_sync(self._objects.get_snapshot(self.resolve(ref))))

    async def _diff(self, from_id: str | None, to_id: str) -> SnapshotDiff:
        old = await self._objects.get_snapshot(from_id) if from_id is not None else None
        return await diff_snapshots(self._objects, old, await self._objects.get_snapshot(to_id))

    def lookup_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """The id, parent, time, message and metadata of one snapshot."""
        return SnapshotInfo.from_snapshot(run_sync(self._objects.get_snapshot(snapshot_id)))

    def _walk(self, snapshot_id: str) -> Iterator[Snapshot]:
        current: str | None = snapshot_id
        while current is not None:
            snapshot = run_sync(self._objects.get_snapshot(current))
            yield snapshot
            current = snapshot.parent_id

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
        head = run_sync(read_head(self._storage, kind, name))
        if not head.exists:
            others = ", ".join(run_sync(list_names(self._storage, kind))) or "none"
            gone = " (it was deleted)" if head.record is not None else ""
            plural = "branches" if kind == "branch" else "tags"
            raise RefNotFoundError(f"no {kind} named {name!r}{gone}; existing {plural}: {others}")
        return head

    def _check_snapshot(self, snapshot_id: str) -> None:
        if not run_sync(self._objects.snapshot_exists(snapshot_id)):
            raise SnapshotNotFoundError(
                f"snapshot {snapshot_id!r} does not exist in this repository; "
                "find ids with repo.ancestry()"
            )

    # --- branches --------------------------------------------------------------------------

    def create_branch(self, name: str, snapshot_id: str) -> None:
        """Create branch ``name`` pointing at ``snapshot_id`` (a deleted name may be reused).

        Creating a branch that was just created at the same snapshot (a retry after an
        error that left it unclear whether the first call worked) returns normally.
        """
        head = run_sync(read_head(self._storage, "branch", name))
        if head.exists:
            if _created_at(head, snapshot_id):
                return
            raise RefExistsError(
                f"branch {name!r} already exists; move it with reset_branch or pick another name"
            )
        self._check_snapshot(snapshot_id)
        if self._write(head, "create", snapshot_id) is None:
            if _created_at(run_sync(read_head(self._storage, "branch", name)), snapshot_id):
                return
            raise RefExistsError(f"branch {name!r} was created by someone else just now")

    def list_branches(self) -> list[str]:
        """Names of all existing branches, sorted."""
        return run_sync(list_names(self._storage, "branch"))

    def lookup_branch(self, name: str) -> str:
        """The snapshot id at the head of branch ``name``."""
        return self._existing_head("branch", name).record.snapshot_id

    def reset_branch(self, name: str, snapshot_id: str) -> None:
        """Point branch ``name`` at ``snapshot_id`` (recorded in the branch's history)."""
        head = self._existing_head("branch", name)
        self._check_snapshot(snapshot_id)
        if self._write(head, "reset", snapshot_id) is None:
            if self._existing_head("branch", name).record.snapshot_id == snapshot_id:
                return
            raise ConflictError(f"branch {name!r} moved while resetting it; try again")

    def delete_branch(self, name: str) -> None:
        """Delete branch ``name`` (its history stays readable through its snapshots).

        Deleting a branch that is already deleted returns normally; one that never existed
        raises `RefNotFoundError`.
        """
        if name == "main":
            raise InvalidArgumentError(
                "the main branch cannot be deleted; reset it with reset_branch instead"
            )
        self._delete("branch", name)

    def branch_history(self, name: str) -> list[RefRecord]:
        """Every move of branch ``name``, newest first: create, commit, reset, delete."""
        records = run_sync(history(self._storage, "branch", name))
        if not records:
            raise RefNotFoundError(f"branch {name!r} never existed")
        return records

    # --- tags --------------------------------------------------------------------------------

    def create_tag(self, name: str, snapshot_id: str) -> None:
        """Tag ``snapshot_id`` as ``name``. Tags never move, and names are never reused.

        Creating a tag that already points at ``snapshot_id`` (a retry after an error that
        left it unclear whether the first call worked) returns normally.
        """
        head = run_sync(read_head(self._storage, "tag", name))
        if head.record is not None:
            if head.exists and head.record.snapshot_id == snapshot_id:
                return
            state = "exists" if head.exists else "existed and was deleted"
            raise RefExistsError(
                f"tag {name!r} {state}; tags never move and their names are not reused, "
                "so choose another name"
            )
        self._check_snapshot(snapshot_id)
        if self._write(head, "create", snapshot_id) is None:
            again = run_sync(read_head(self._storage, "tag", name))
            if again.exists and again.record.snapshot_id == snapshot_id:
                return
            raise RefExistsError(f"tag {name!r} was created by someone else just now")

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
        self._delete("tag", name)

    def _delete(self, kind: RefKind, name: str) -> None:
        head = run_sync(read_head(self._storage, kind, name))
        if head.record is None:  # never existed: RefNotFoundError naming those there are
            head = self._existing_head(kind, name)
        if not head.exists:
            return  # deleted already: by this caller's earlier try, or by someone else
        if self._write(head, "delete", None) is None:
            if not run_sync(read_head(self._storage, kind, name)).exists:
                return
            raise ConflictError(f"{kind} {name!r} moved while deleting it; try again")

    def _write(self, head: RefHead, action: RefAction, snapshot_id: str | None) -> RefRecord | None:
        """Write the ref record after ``head`` as one operation (see `write_record`)."""
        return run_sync(write_record(self._storage, head, action, snapshot_id, new_operation()))


def _created_at(head: RefHead, snapshot_id: str) -> bool:
    """Whether the ref's newest record is its creation at ``snapshot_id``."""
    return (
        head.record is not None
        and head.record.action == "create"
        and head.record.snapshot_id == snapshot_id
    )
