"""``vrepo tag``: list, create and delete tags."""

from __future__ import annotations

from typing import Annotated

import typer

from vrepo.cli._refs import create_ref, ref_commands


def tag_create(
    repo_ref: Annotated[
        str, typer.Argument(metavar="REPO", help="Repository (REPO@REVISION: tag that).")
    ],
    name: Annotated[str, typer.Argument(help="New tag name.")],
    target: Annotated[
        str | None,
        typer.Argument(metavar="[REVISION]", help="Snapshot to tag (default: main's head)."),
    ] = None,
) -> None:
    """Tag a snapshot. Tags never move, and a deleted tag's name is never reused."""
    create_ref("tag", repo_ref, name, target, "REVISION")


commands = ref_commands("tag", "List, create and delete tags.", tag_create)
