"""What ``vrepo branch`` and ``vrepo tag`` share: a group that lists when given only a
repository, and its ``list``, ``create`` and ``delete``, written once for both kinds of ref.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import vrepo.cli._render as render
from vrepo.cli._lookup import Labels, open_repo_only, start_point
from vrepo.cli._options import JsonOpt, RepoArg
from vrepo.engine.refs import RefKind
from vrepo.engine.repository import Repository


class ListByDefault(TyperGroup):
    """``vrepo branch REPO`` means ``vrepo branch list REPO`` (likewise for tags)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Put ``list`` in front of arguments that name no subcommand."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


# the help of the commands written here, by kind: (list, delete)
_HELP: dict[RefKind, tuple[str, str]] = {
    "branch": (
        "List branches with their head snapshots.",
        "Delete a branch (not main); its snapshots stay readable by id.",
    ),
    "tag": ("List tags with their snapshots.", "Delete a tag; its name stays reserved."),
}


def ref_commands(kind: RefKind, help: str, create: Callable[..., None]) -> typer.Typer:
    """The group of one kind of ref: ``list``, then the kind's own ``create``, then ``delete``.

    Commands the kind adds later (``branch reset``) come after these in ``--help``.
    """
    list_help, delete_help = _HELP[kind]
    group = typer.Typer(cls=ListByDefault, help=help, no_args_is_help=True)

    def list_refs(repo_ref: RepoArg, as_json: JsonOpt = False) -> None:
        repo = open_repo_only(repo_ref, f"{kind} list")
        labels = Labels(repo)
        targets = labels.branch_heads if kind == "branch" else labels.tag_targets
        _print_refs(_ref_rows(repo, targets), as_json)

    def delete(repo_ref: RepoArg, name: Annotated[str, typer.Argument()]) -> None:
        repo = open_repo_only(repo_ref, f"{kind} delete")
        if kind == "branch":
            sid = repo.lookup_branch(name)
            repo.delete_branch(name)
        else:
            sid = repo.lookup_tag(name)
            repo.delete_tag(name)
        typer.echo(f"deleted {kind} {name} (was {sid})")

    group.command("list", help=list_help)(list_refs)
    group.command("create")(create)
    group.command("delete", help=delete_help)(delete)
    return group


def create_ref(kind: RefKind, repo_ref: str, name: str, given: str | None, option: str) -> None:
    """``create``: a new branch or tag at the start point (``REPO@REVISION`` or ``option``)."""
    repo, sid = start_point(repo_ref, given, option)
    if kind == "branch":
        repo.create_branch(name, sid)
    else:
        repo.create_tag(name, sid)
    typer.echo(f"created {kind} {name} at {sid}")


def _ref_rows(repo: Repository, targets: dict[str, str]) -> list[dict[str, Any]]:
    """Refs (name to snapshot id) with their snapshots' times and messages, by name."""
    infos = {sid: repo.lookup_snapshot(sid) for sid in set(targets.values())}
    return [
        {
            "name": name,
            "snapshot_id": sid,
            "written_at": infos[sid].written_at.isoformat(),
            "message": infos[sid].message,
        }
        for name, sid in sorted(targets.items())
    ]


def _print_refs(rows: list[dict[str, Any]], as_json: bool) -> None:
    """``list`` output: the rows as JSON, or a table with each message's first line."""
    if as_json:
        render.print_json(rows)
        return
    render.table(
        ("NAME", "SNAPSHOT", "WRITTEN", "MESSAGE"),
        [
            (
                r["name"],
                r["snapshot_id"],
                render.when(dt.datetime.fromisoformat(r["written_at"])),
                render.first_line(r["message"]),
            )
            for r in rows
        ],
    )
