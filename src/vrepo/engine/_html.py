"""HTML summaries for notebooks (``_repr_html_``) of repositories, sessions and histories.

Every value is escaped with `html.escape`: branch names are restricted, but commit messages,
metadata and paths are anything a user wrote. Nothing here shows credentials: locations are
storage URLs, which never carry them. Reading errors are shown in place of a section, since a
notebook's display must not raise.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from vrepo.engine.content import ChangeSummary
from vrepo.engine.snapshot_info import SnapshotInfo
from vrepo.errors import VRepoError
from vrepo.format import Snapshot


class _Repository(Protocol):
    """What the repository display reads (`Repository` has it; this module sits below it)."""

    @property
    def storage(self) -> Any: ...
    def list_branches(self) -> list[str]: ...
    def list_tags(self) -> list[str]: ...
    def lookup_branch(self, name: str) -> str: ...
    def lookup_tag(self, name: str) -> str: ...
    def lookup_snapshot(self, snapshot_id: str) -> SnapshotInfo: ...
    def ancestry(self, *, branch: str) -> Iterator[SnapshotInfo]: ...


class _Session(Protocol):
    """What the session display reads (`Session` has it; this module sits below it)."""

    @property
    def read_only(self) -> bool: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def snapshot_id(self) -> str: ...
    def status(self) -> ChangeSummary: ...


LIST_LIMIT = 20  # branches, tags or changed paths shown before "... and N more"
COUNT_LIMIT = 100_000  # snapshots a history display counts, at most (engine.history)
RECENT_COMMITS = 5
_TEXT_LIMIT = 120
_STYLE = (
    "<style>.vrepo-repr table{border-collapse:collapse;margin:0.2em 0 0.6em}"
    ".vrepo-repr th,.vrepo-repr td{text-align:left;padding:0.1em 0.8em 0.1em 0;"
    "vertical-align:top}.vrepo-repr code{font-size:90%}</style>"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str) -> str:
    """The first line of ``text``, cut to a readable length."""
    first = text.splitlines()[0] if text else ""
    cut = first if len(first) <= _TEXT_LIMIT else first[: _TEXT_LIMIT - 1] + "…"
    return cut + (" …" if first != text.strip() and cut == first else "")


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _metadata(metadata: dict[str, Any]) -> str:
    return _short(json.dumps(metadata, sort_keys=True, default=str)) if metadata else ""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of already escaped cells (no header row if ``headers`` is empty)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _section(title: str, body: str) -> str:
    return f"<div><strong>{_e(title)}</strong>{body}</div>"


def _more(count: int) -> str:
    return f"<div><em>… and {count} more</em></div>" if count > 0 else ""


def _guarded(title: str, build: Callable[[], str]) -> str:
    """``build()``, or a note saying why this section could not be read."""
    try:
        return build()
    except VRepoError as exc:
        return _section(title, f"<div><em>could not be read: {_e(exc)}</em></div>")


def _card(kind: str, subtitle: str, sections: Iterable[str]) -> str:
    """A display: its kind, its subtitle in code (none if empty), then its sections."""
    title = f"<strong>{_e(kind)}</strong>" + (f" <code>{_e(subtitle)}</code>" if subtitle else "")
    return f'{_STYLE}<div class="vrepo-repr"><div>{title}</div>{"".join(sections)}</div>'


def _snapshot_row(info: SnapshotInfo) -> list[str]:
    parents = "<br>".join(f"<code>{_e(p)}</code>" for p in info.parent_ids)
    return [
        f"<code>{_e(info.id)}</code>",
        parents or "<em>none</em>",
        _e(_when(info.written_at)),
        _e(info.author) if info.author is not None else "<em>unknown</em>",
        _e(_short(info.message)),
        _e(_metadata(info.metadata)),
    ]


_SNAPSHOT_HEADERS = ("snapshot", "parents", "written", "author", "message", "metadata")


# --- repository ----------------------------------------------------------------------------


def repository_html(repo: _Repository) -> str:
    """Location, branches with their heads, tags, and the latest commits on ``main``."""
    return _card(
        "vrepo.Repository",
        repo.storage.url,
        (
            _guarded("branches", lambda: _refs(repo, "branches")),
            _guarded("tags", lambda: _refs(repo, "tags")),
            _guarded("latest commits on main", lambda: _recent(repo)),
        ),
    )


def _refs(repo: _Repository, which: str) -> str:
    names = repo.list_branches() if which == "branches" else repo.list_tags()
    lookup = repo.lookup_branch if which == "branches" else repo.lookup_tag
    rows = []
    for name in names[:LIST_LIMIT]:
        info = repo.lookup_snapshot(lookup(name))
        rows.append([f"<code>{_e(name)}</code>", *_snapshot_row(info)[:3]])
    if not rows:
        return _section(which, "<div><em>none</em></div>")
    headers = (
        "branch" if which == "branches" else "tag",
        "head" if which == "branches" else "snapshot",
    )
    table = _table((*headers, "written", "message"), rows)
    return _section(f"{which} ({len(names)})", table + _more(len(names) - LIST_LIMIT))


def _recent(repo: _Repository) -> str:
    infos = list(itertools.islice(repo.ancestry(branch="main"), RECENT_COMMITS))
    return _section("latest commits on main", _table(_SNAPSHOT_HEADERS, map(_snapshot_row, infos)))


# --- history --------------------------------------------------------------------------------


def history_html(
    peek: Callable[[], tuple[list[SnapshotInfo], bool]],
    start: str = "",
    total: Callable[[], int | None] = lambda: None,
) -> str:
    """The next entries of a history (``peek`` returns them and whether more follow), under
    a header counting all of them (``total``: how many the history has from ``start``;
    `COUNT_LIMIT` at most, None if unknown)."""

    def build() -> str:
        infos, more = peek()
        table = _table(_SNAPSHOT_HEADERS, map(_snapshot_row, infos))
        count = total() if more else len(infos)
        if count is None or count > COUNT_LIMIT:
            shown = f"more than {len(infos) if count is None else COUNT_LIMIT:,} snapshots"
        else:
            shown = f"{count:,} snapshot(s)"
        if more:
            tail = f"<div><em>… the newest {len(infos)} shown; older snapshots follow</em></div>"
        else:
            tail = ""
        return _section(f"{shown}, newest first", table + tail)

    return _card("vrepo.History", f"from {start}" if start else "", (_guarded("history", build),))


# --- session --------------------------------------------------------------------------------


def session_html(session: _Session, base: Snapshot | None, ref: tuple[str, str] | None) -> str:
    """Mode, branch (or tag), base snapshot and a summary of the uncommitted changes."""
    if type(session).__name__ == "ForkSession":
        mode = "fork (writable; its parent session merges and commits it)"
    else:
        mode = "read-only" if session.read_only else "writable"
    rows = [["mode", _e(mode)]]
    if ref is not None:
        rows.append([_e(ref[0]), f"<code>{_e(ref[1])}</code>"])
    elif session.branch is not None:
        rows.append(["branch", f"<code>{_e(session.branch)}</code>"])
    rows.append(["base snapshot", f"<code>{_e(session.snapshot_id)}</code>"])
    if base is not None:
        written = dt.datetime.fromtimestamp(base.created_at / 1e6, tz=dt.UTC)
        rows.append(["base written", _e(_when(written))])
        rows.append(["base message", _e(_short(base.message))])
    sections = [_table((), rows)]
    if not session.read_only:
        sections.append(_guarded("uncommitted changes", lambda: _changes(session.status())))
    return _card(f"vrepo.{type(session).__name__}", "", sections)


def _changes(summary: ChangeSummary) -> str:
    if summary.is_empty():
        return _section("uncommitted changes", "<div><em>none</em></div>")
    rows: list[list[str]] = []
    for what, paths in (
        ("new group", summary.new_groups),
        ("new array", summary.new_arrays),
        ("updated metadata", summary.updated_metadata),
        ("deleted", summary.deleted_nodes),
        ("changed object", summary.objects_changed),
    ):
        rows.extend([_e(what), f"<code>{_e(p)}</code>", ""] for p in paths)
    for what, counts in (
        ("chunks written", summary.chunks_written),
        ("chunks deleted", summary.chunks_deleted),
    ):
        for path, count in sorted((counts or {}).items()):
            rows.append([_e(what), f"<code>{_e(path)}</code>", _e(count)])
    table = _table(("change", "path", "chunks"), rows[:LIST_LIMIT])
    return _section("uncommitted changes", table + _more(len(rows) - LIST_LIMIT))
