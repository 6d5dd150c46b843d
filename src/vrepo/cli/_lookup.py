"""What commands look up in a repository: the repository and snapshot a reference names,
the branches and tags at each snapshot, and the records that ``--json`` prints of snapshots.
"""

from __future__ import annotations

from typing import Any

from vrepo._sync import run_sync
from vrepo.cli._advice import repository_text
from vrepo.cli._options import storage_options
from vrepo.cli._places import no_repository_advice
from vrepo.engine.opening import split_reference
from vrepo.engine.reference import DEFAULT_BRANCH, parse_reference
from vrepo.engine.refs import current_heads
from vrepo.engine.repository import Repository
from vrepo.engine.snapshot_info import SnapshotInfo
from vrepo.errors import InvalidArgumentError, RepositoryNotFoundError

# --- opening references ------------------------------------------------------------------


def open_reference(text: str) -> tuple[Repository, str | None]:
    """The repository a reference names and its revision (None when it has none)."""
    parsed = parse_reference(text)
    repository_text.set(parsed.location)
    try:
        return split_reference(text, storage_options.get())
    except RepositoryNotFoundError:
        advice = no_repository_advice(parsed.location)
        if parsed.revision is None and "@" in text:
            after = text.rsplit("@", 1)[1]
            advice = (
                f"if {after!r} was meant as a revision, it is not a valid branch or tag name "
                "or snapshot id (write REPOSITORY@NAME[~N])"
            )
        raise RepositoryNotFoundError(
            f"no vrepo repository at {parsed.location!r}; {advice}"
        ) from None


def open_snapshot(text: str) -> tuple[Repository, str]:
    """The repository and the snapshot id a reference names."""
    repo, revision = open_reference(text)
    return repo, repo.resolve(revision or DEFAULT_BRANCH)


def by_id(snapshot_id: str | None) -> str | None:
    """A revision naming a snapshot by id only (no branch or tag lookups)."""
    return None if snapshot_id is None else f"snapshot:{snapshot_id}"


def open_repo_only(text: str, command: str) -> Repository:
    """For commands that change a ref: the repository, refusing ``REPO@REVISION``."""
    repo, revision = open_reference(text)
    if revision is not None:
        raise InvalidArgumentError(
            f"{command} takes a repository, not a revision: drop '@{revision}' from {text!r}"
        )
    return repo


def start_point(text: str, given: str | None, option: str) -> tuple[Repository, str]:
    """For create commands: the repository and the snapshot to start at (REPO@REV or REF)."""
    repo, revision = open_reference(text)
    if revision is not None and given is not None:
        raise InvalidArgumentError(
            f"two start points: '@{revision}' in {text!r} and {option} {given!r}; give one"
        )
    return repo, repo.resolve(given or revision or DEFAULT_BRANCH)


# --- labels and records ------------------------------------------------------------------


class Labels:
    """Which branches and tags point at each snapshot."""

    def __init__(self, repo: Repository) -> None:
        # every existing ref's head, from one listing of refs/ (not one per ref), by name
        heads = sorted(run_sync(current_heads(repo.storage)).items())
        self.branch_heads = {name: sid for (kind, name), sid in heads if kind == "branch"}
        self.tag_targets = {name: sid for (kind, name), sid in heads if kind == "tag"}
        self.branches: dict[str, list[str]] = {}
        self.tags: dict[str, list[str]] = {}
        for name, sid in self.branch_heads.items():
            self.branches.setdefault(sid, []).append(name)
        for name, sid in self.tag_targets.items():
            self.tags.setdefault(sid, []).append(name)

    def of(self, snapshot_id: str) -> tuple[list[str], list[str]]:
        """The branches and the tags at a snapshot."""
        return self.branches.get(snapshot_id, []), self.tags.get(snapshot_id, [])

    def text(self, snapshot_id: str) -> str:
        """The labels as ``log`` shows them: ``(main, dev, tag: v1)``, "" for none."""
        branches, tags = self.of(snapshot_id)
        names = [*branches, *(f"tag: {t}" for t in tags)]
        return f"({', '.join(names)})" if names else ""


def record(info: SnapshotInfo, labels: Labels) -> dict[str, Any]:
    """A snapshot as ``log --json`` and ``show --json`` print it."""
    branches, tags = labels.of(info.id)
    return {
        "id": info.id,
        "parent_id": info.parent_id,
        "parent_ids": list(info.parent_ids),
        "written_at": info.written_at.isoformat(),
        "message": info.message,
        "metadata": info.metadata,
        "author": author_record(info),
        "branches": branches,
        "tags": tags,
    }


def author_record(info: SnapshotInfo) -> dict[str, str | None] | None:
    """A snapshot's author as ``--json`` prints it: ``{"name", "email"}``, or null when the
    snapshot was written before vrepo recorded authors."""
    if info.author is None:
        return None
    return {"name": info.author.name, "email": info.author.email}
