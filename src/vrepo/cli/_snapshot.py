"""Snapshot commands: ``vrepo show`` (one snapshot), ``vrepo diff`` (two), and ``vrepo ls``
and ``vrepo tree`` (the groups and arrays of one: a table, a tree).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

import vrepo.cli._render as render
from vrepo.cli._lookup import Labels, by_id, open_reference, open_snapshot, record
from vrepo.cli._options import JsonOpt, RefArg
from vrepo.engine.reference import DEFAULT_BRANCH
from vrepo.errors import InvalidArgumentError, RepositoryNotFoundError

if TYPE_CHECKING:
    from vrepo.engine.diff import SnapshotDiff
    from vrepo.engine.listing import NodeInfo

commands = typer.Typer()  # merged into the root app: ``vrepo show``, ``diff`` and ``ls``


@commands.command()
def show(ref: RefArg, as_json: JsonOpt = False) -> None:
    """One snapshot: id, parent, time, message, metadata, labels and its changes."""
    repo, sid = open_snapshot(ref)
    info = repo.lookup_snapshot(sid)
    labels = Labels(repo)
    changes = repo.diff(by_id(info.parent_id), by_id(sid))
    if as_json:
        render.print_json({**record(info, labels), "changes": changes.to_dict()})
        return
    branches, tags = labels.of(sid)
    fields = [
        ("snapshot", info.id),
        ("parent", info.parent_id or "none (first snapshot)"),
        *([("merged", ", ".join(info.merged_parent_ids))] if info.is_merge else []),
        ("written", render.when(info.written_at)),
        ("author", str(info.author) if info.author is not None else "unknown (not recorded)"),
        ("branches", ", ".join(branches) or "-"),
        ("tags", ", ".join(tags) or "-"),
        ("metadata", json.dumps(info.metadata, ensure_ascii=False) if info.metadata else "-"),
    ]
    console = render.console()
    for name, value in fields:
        if console is None:
            typer.echo(f"{name + ':':<10} {value}")
        else:
            from rich.markup import escape

            console.print(f"[bold]{name + ':':<10}[/] {escape(value)}")
    typer.echo("")
    for line in (info.message or "(no message)").splitlines():
        typer.echo(f"    {line}")
    typer.echo("")
    typer.echo(
        "changes from first parent:"
        if info.is_merge
        else "changes from parent:"
        if info.parent_id
        else "changes:"
    )
    _print_diff(changes)


@commands.command()
def diff(
    from_ref: Annotated[str, typer.Argument(metavar="FROM", help="REPOSITORY[@REVISION].")],
    to_ref: Annotated[
        str | None,
        typer.Argument(
            metavar="[TO]",
            help="REPOSITORY[@REVISION] or @REVISION in FROM's repository (default: FROM's "
            "parent to FROM).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed from one snapshot to another: nodes, chunk counts, objects."""
    repo, from_id = open_snapshot(from_ref)
    if to_ref is None:
        to_id = from_id
        from_id = repo.lookup_snapshot(to_id).parent_id
    elif to_ref.startswith("@"):
        to_id = repo.resolve(to_ref[1:])
    else:
        try:
            other, to_id = open_snapshot(to_ref)
        except RepositoryNotFoundError as exc:
            if "@" in to_ref:
                raise
            raise RepositoryNotFoundError(
                f"{exc}; to compare with a revision of {from_ref!r}, write @{to_ref}"
            ) from None
        if other.storage.url != repo.storage.url:
            raise InvalidArgumentError(
                f"{from_ref!r} and {to_ref!r} are in different repositories; diff compares two "
                "snapshots of one repository"
            )
    changes = repo.diff(by_id(from_id), by_id(to_id))
    if as_json:
        render.print_json(changes.to_dict())
        return
    _print_diff(changes)


def _print_diff(changes: SnapshotDiff) -> None:
    """A diff as one table row per changed node or object, sorted by path."""
    if changes.is_empty():
        typer.echo("no changes")
        return
    counts = {c.path: f"+{c.added} ~{c.changed} -{c.removed}" for c in changes.chunks}
    rows = [
        (what, path, counts.pop(path, ""))
        for field, what in (
            ("added_groups", "added group"),
            ("added_arrays", "added array"),
            ("removed_groups", "removed group"),
            ("removed_arrays", "removed array"),
            ("metadata_changed", "metadata"),
        )
        for path in getattr(changes, field)
    ]
    rows += [("chunks", path, text) for path, text in counts.items()]
    rows += [
        (what, key, "")
        for field, what in (
            ("objects_added", "added object"),
            ("objects_changed", "changed object"),
            ("objects_removed", "removed object"),
        )
        for key in getattr(changes, field)
    ]
    rows.sort(key=lambda r: r[1])
    render.table(("CHANGE", "PATH", "CHUNKS +added ~changed -removed"), rows)


@commands.command()
def ls(ref: RefArg, as_json: JsonOpt = False) -> None:
    """The groups and arrays of a snapshot: shape, dtype, chunks and stored bytes."""
    repo, sid = open_snapshot(ref)
    nodes = repo.list_nodes(by_id(sid))
    total = sum(n.stored_bytes for n in nodes)
    if as_json:
        render.print_json(
            {"snapshot_id": sid, "stored_bytes": total, "nodes": [n.to_dict() for n in nodes]}
        )
        return
    console = render.console()
    if console is None:
        rows = [
            (
                n.path,
                n.kind,
                n.dtype or "",
                render.shape(n.shape),
                render.shape(n.chunk_shape),
                str(n.chunk_count) if n.kind == "array" else "",
                str(n.stored_bytes) if n.kind == "array" else "",
            )
            for n in nodes
        ]
        render.plain_table(("PATH", "KIND", "DTYPE", "SHAPE", "CHUNKS", "STORED", "BYTES"), rows)
        return
    console.print(_tree(nodes, sid, total))


def _tree(nodes: list[NodeInfo], sid: str, total: int) -> Any:
    """``ls`` on a terminal: a rich tree of groups, with each array's details."""
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(f"[yellow]{sid}[/]  [dim]{render.human_bytes(total)} stored[/]")
    branches: dict[str, Tree] = {}
    for node in nodes:
        parent_path = node.path.rsplit("/", 1)[0] or "/"
        parent = branches.get(parent_path, root) if node.path != "/" else root
        if node.kind == "group":
            branches[node.path] = parent.add(f"[bold blue]{escape(node.name)}[/]")
            continue
        parent.add(
            f"[bold]{escape(node.name)}[/]  {escape(node.dtype or '')} "
            f"{render.shape(node.shape)}  [dim]chunks {render.shape(node.chunk_shape)} · "
            f"{node.chunk_count} stored · {render.human_bytes(node.stored_bytes)}[/]"
        )
    return root


@commands.command()
def tree(ref: RefArg, as_json: JsonOpt = False) -> None:
    """A snapshot's hierarchy: groups, and arrays with shape, dtype, chunks and bytes."""
    repo, revision = open_reference(ref)
    hierarchy = repo.tree(revision or DEFAULT_BRANCH)
    if as_json:
        render.print_json(hierarchy.to_dict())
        return
    typer.echo(str(hierarchy))
