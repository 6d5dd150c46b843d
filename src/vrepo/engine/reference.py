"""References: one string naming a repository and a snapshot in it.

Syntax: ``<repository path or URL>[@<revision>]``, where a revision is
``[branch:|tag:|snapshot:]<name>[~N]``: a branch, a tag or a snapshot id, optionally followed
by ``~N``, its N-th first-parent ancestor (``~`` alone is ``~1``). Without a revision a
reference names the head of branch ``main``. Examples: ``data/ocean.vrepo``,
``data/ocean.vrepo@main~2``, ``s3://bucket/prefix@v1``, ``./r@0CHE4BJDYDQ2EZB98T6P``.

The revision starts after the *last* ``@`` whose suffix is a valid revision, so paths with
``@`` elsewhere (``/home/a@b/r``) still work. A bare name resolves as a branch, else a tag,
else a snapshot id or the start of one (at least 4 characters, any case, as git takes
abbreviated ids; several matches are an error listing them); a name that is both a branch
and a tag is ambiguous and must be written ``branch:NAME`` or ``tag:NAME``.

Parsing is pure; `resolve_revision` reads refs and snapshots through an `ObjectIO`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

from vrepo.engine.history_index import nth_ancestor
from vrepo.engine.objects import ObjectIO
from vrepo.engine.refs import RefHead, list_names, read_head
from vrepo.errors import InvalidArgumentError, RefNotFoundError
from vrepo.format import is_id_prefix, is_valid_id

RevisionKind = Literal["branch", "tag", "snapshot"]

DEFAULT_BRANCH = "main"

_REVISION_RE = re.compile(
    r"(?:(?P<kind>branch|tag|snapshot):)?"
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    r"(?:~(?P<steps>[0-9]{0,9}))?"
)


@dataclass(frozen=True)
class Revision:
    """A parsed revision: an optional kind, a name, and how many parents to go back."""

    name: str
    kind: RevisionKind | None = None
    ancestors: int = 0

    def __str__(self) -> str:
        prefix = f"{self.kind}:" if self.kind else ""
        suffix = f"~{self.ancestors}" if self.ancestors else ""
        return f"{prefix}{self.name}{suffix}"


@dataclass(frozen=True)
class Reference:
    """A parsed reference: where the repository is, and the revision text (None: none)."""

    location: str
    revision: str | None = None


def _match_revision(text: str) -> Revision | None:
    match = _REVISION_RE.fullmatch(text)
    if match is None:
        return None
    name = match["name"]
    if ".." in name or name.endswith(".json"):
        return None
    steps = match["steps"]
    ancestors = 0 if steps is None else int(steps or 1)
    return Revision(name, match["kind"], ancestors)  # type: ignore[arg-type]


def parse_revision(text: str) -> Revision:
    """Parse ``[branch:|tag:|snapshot:]NAME[~N]``; `InvalidArgumentError` if malformed."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"a revision is a str, not {type(text).__name__}")
    revision = _match_revision(text)
    if revision is None:
        raise InvalidArgumentError(
            f"{text!r} is not a revision: write a branch, a tag or a snapshot id, optionally "
            "followed by ~N for its N-th parent (e.g. 'main', 'v1~2', 'tag:v1'); names use "
            "A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        )
    return revision


def parse_reference(text: str) -> Reference:
    """Split ``LOCATION[@REVISION]`` at the last ``@`` followed by a valid revision."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"a reference is a str, not {type(text).__name__}")
    if not text:
        raise InvalidArgumentError("empty reference: give a repository path or URL")
    if text.endswith("@"):
        raise InvalidArgumentError(
            f"nothing follows '@' in {text!r}: write REPOSITORY@BRANCH, @TAG or @SNAPSHOT_ID "
            "(optionally ~N), or leave out '@' for branch main"
        )
    at = len(text)
    while (at := text.rfind("@", 0, at)) > 0:
        if _match_revision(text[at + 1 :]) is not None:
            return Reference(text[:at], text[at + 1 :])
    if at == 0 and _match_revision(text[1:]) is not None:
        raise InvalidArgumentError(
            f"{text!r} names no repository: write REPOSITORY@REVISION (e.g. data/r.vrepo@v1)"
        )
    return Reference(text)


async def resolve_revision(objects: ObjectIO, text: str) -> tuple[str, RefHead | None]:
    """The snapshot id a revision names, and the ref head when it names one (no ``~N``).

    A bare name is a branch, else a tag, else a snapshot id; `InvalidArgumentError` when it is
    both a branch and a tag, `RefNotFoundError` when it is none of them or ``~N`` goes back
    past the first snapshot.
    """
    revision = parse_revision(text)
    snapshot_id, head = await _resolve_name(objects, revision)
    if revision.ancestors:
        snapshot_id = await _ancestor(objects, revision, snapshot_id)
        head = None
    return snapshot_id, head


async def _resolve_name(objects: ObjectIO, rev: Revision) -> tuple[str, RefHead | None]:
    storage = objects.storage
    if rev.kind == "snapshot":
        if not is_valid_id(rev.name) and is_id_prefix(rev.name):
            found = await snapshot_by_prefix(objects, rev.name)
            if found is not None:
                return found, None
        await objects.get_snapshot(rev.name)  # SnapshotNotFoundError if absent or malformed
        return rev.name, None
    kinds = ("branch", "tag") if rev.kind is None else (rev.kind,)
    heads = await asyncio.gather(*(read_head(storage, kind, rev.name) for kind in kinds))
    found = [head for head in heads if head.exists]
    if len(found) == 2:
        branch_id, tag_id = (h.record.snapshot_id for h in found)
        raise InvalidArgumentError(
            f"{rev.name!r} is both a branch (at {branch_id}) and a tag (at {tag_id}); write "
            f"'branch:{rev.name}' or 'tag:{rev.name}' (or the snapshot id) to say which"
        )
    if found:
        return found[0].record.snapshot_id, found[0]
    if rev.kind is None and is_valid_id(rev.name) and await objects.snapshot_exists(rev.name):
        return rev.name, None
    if rev.kind is None and is_id_prefix(rev.name):
        found = await snapshot_by_prefix(objects, rev.name)
        if found is not None:
            return found, None
    raise RefNotFoundError(await _not_found_message(objects, rev, heads))


async def snapshot_by_prefix(objects: ObjectIO, prefix: str) -> str | None:
    """The one snapshot whose id starts with ``prefix`` (any case), None if none does;
    `InvalidArgumentError` listing the candidates if several do."""
    upper = prefix.upper()
    keys = await objects.storage.list(f"snapshots/{upper}", limit=_LISTED_CANDIDATES + 1)
    ids = [key.removeprefix("snapshots/") for key in keys]
    if len(ids) > 1:
        more = ", ..." if len(ids) > _LISTED_CANDIDATES else ""
        raise InvalidArgumentError(
            f"{prefix!r} is the start of several snapshot ids: "
            f"{', '.join(ids[:_LISTED_CANDIDATES])}{more}; give more of the id"
        )
    return ids[0] if ids else None


_LISTED_CANDIDATES = 10


async def _not_found_message(objects: ObjectIO, rev: Revision, heads: list[RefHead]) -> str:
    storage = objects.storage
    branches, tags = await asyncio.gather(list_names(storage, "branch"), list_names(storage, "tag"))
    deleted = [f"{h.kind} {rev.name!r} was deleted" for h in heads if h.record is not None]
    what = {"branch": "branch", "tag": "tag"}.get(rev.kind or "", "branch, tag or snapshot id")
    return (
        f"no {what} {rev.name!r} in {storage.url}"
        + (f" ({'; '.join(deleted)})" if deleted else "")
        + f"; branches: {', '.join(branches) or 'none'}; tags: {', '.join(tags) or 'none'}"
    )


async def _ancestor(objects: ObjectIO, rev: Revision, snapshot_id: str) -> str:
    found, step = await nth_ancestor(objects, snapshot_id, rev.ancestors)
    if found is None:
        base = Revision(rev.name, rev.kind)
        raise RefNotFoundError(
            f"{rev} goes back past the first snapshot: {base} ({snapshot_id}) has only "
            f"{step} ancestor{'s' if step != 1 else ''}, so use ~0 to ~{step}"
        )
    return found


__all__ = [
    "DEFAULT_BRANCH",
    "Reference",
    "Revision",
    "parse_reference",
    "parse_revision",
    "resolve_revision",
    "snapshot_by_prefix",
]
