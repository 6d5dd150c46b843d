"""History commands: ``vrepo log``, as a list or (``--graph``) with every branch and tag."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Annotated

import typer

import vrepo.cli._render as render
from vrepo.cli._graph import GraphNode, draw, topo_order
from vrepo.cli._lookup import Labels, open_snapshot, record
from vrepo.cli._options import JsonOpt, RefArg
from vrepo.engine.repository import Repository
from vrepo.engine.snapshot_info import SnapshotInfo

if TYPE_CHECKING:
    from rich.console import Console

commands = typer.Typer()  # merged into the root app: ``vrepo log``


@commands.command()
def log(
    ref: RefArg,
    graph: Annotated[
        bool, typer.Option("--graph", help="Draw every branch and tag, like git log --graph --all.")
    ] = False,
    max_count: Annotated[
        int | None,
        typer.Option("-n", "--max-count", min=0, max=10**18, help="Show at most N snapshots."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Snapshots from REF back to the first, newest first."""
    repo, start = open_snapshot(ref)
    labels = Labels(repo)
    if graph:
        _log_graph(repo, start, labels, max_count, as_json)
        return
    infos = list(itertools.islice(repo.ancestry(snapshot_id=start), max_count))
    if as_json:
        render.print_json([record(info, labels) for info in infos])
        return
    console = render.console()
    for info in infos:
        render.out(console, _log_line(info, labels, console))


def _log_graph(
    repo: Repository, start: str, labels: Labels, max_count: int | None, as_json: bool
) -> None:
    """``log --graph``: the snapshots of REF and of every branch and tag, drawn as lanes."""
    starts = dict.fromkeys([start, *labels.branch_heads.values(), *labels.tag_targets.values()])
    infos: dict[str, SnapshotInfo] = {}
    for sid in starts:
        for info in repo.ancestry(snapshot_id=sid):
            if info.id in infos:
                break
            infos[info.id] = info
    order = topo_order(
        GraphNode(i.id, i.parent_id, i.written_at.timestamp(), i.merged_parent_ids)
        for i in infos.values()
    )
    if as_json:
        render.print_json([record(infos[n.id], labels) for n in order[:max_count]])
        return
    console = render.console()
    shown, joins = 0, []
    for art, node in draw(order):
        drawn = art if console is None else f"[red]{art}[/]"
        if node is None:  # a row joining lanes: printed only if a snapshot follows
            joins.append(drawn)
            continue
        if max_count is not None and shown == max_count:
            break
        shown += 1
        for line in joins:
            render.out(console, line)
        joins = []
        render.out(console, f"{drawn} {_log_line(infos[node.id], labels, console)}")


def _log_line(info: SnapshotInfo, labels: Labels, console: Console | None) -> str:
    """One snapshot in the log: id, time, author in brackets, labels and the message's first
    line (no brackets for a snapshot written before vrepo recorded authors)."""
    label = labels.text(info.id)
    author = f"[{info.author}]" if info.author is not None else ""
    if console is None:
        parts = [
            info.id,
            render.when(info.written_at),
            author,
            label,
            render.first_line(info.message),
        ]
        return " ".join(p for p in parts if p)
    from rich.markup import escape

    text = f"[yellow]{info.id}[/] [dim]{render.when(info.written_at)}[/]"
    if author:
        text += f" [cyan]{escape(author)}[/]"
    if label:
        text += f" [bold green]{escape(label)}[/]"
    return f"{text} {escape(render.first_line(info.message))}"
