"""``vrepo branch``: list, create, delete and reset branches."""

from __future__ import annotations

from typing import Annotated

import typer

from vrepo.cli._lookup import open_repo_only
from vrepo.cli._options import RepoArg
from vrepo.cli._refs import create_ref, ref_commands

FromOpt = Annotated[
    str | None,
    typer.Option("--from", metavar="REVISION", help="Start point (default: main's head)."),
]


def branch_create(
    repo_ref: Annotated[
        str, typer.Argument(metavar="REPO", help="Repository (REPO@REVISION: start there).")
    ],
    name: Annotated[str, typer.Argument(help="New branch name.")],
    from_ref: FromOpt = None,
) -> None:
    """Create a branch at a snapshot."""
    create_ref("branch", repo_ref, name, from_ref, "--from")


commands = ref_commands("branch", "List, create, delete and reset branches.", branch_create)


@commands.command("reset")
def branch_reset(
    repo_ref: RepoArg,
    name: Annotated[str, typer.Argument()],
    to: Annotated[str, typer.Argument(metavar="REVISION", help="Where the branch will point.")],
) -> None:
    """Point a branch at another snapshot (recorded in its history)."""
    repo = open_repo_only(repo_ref, "branch reset")
    before = repo.lookup_branch(name)
    sid = repo.resolve(to)
    repo.reset_branch(name, sid)
    typer.echo(f"reset branch {name} to {sid} (was {before})")
