"""Repository commands: ``vrepo init``."""

from __future__ import annotations

from typing import Annotated

import typer

from vrepo.cli._advice import repository_text
from vrepo.cli._options import storage_options
from vrepo.cli._places import check_init_place
from vrepo.engine.reference import DEFAULT_BRANCH
from vrepo.engine.repository import Repository
from vrepo.storage import as_storage

commands = typer.Typer()  # merged into the root app: ``vrepo init``


@commands.command()
def init(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Directory or URL to create.")],
    parents: Annotated[
        bool, typer.Option("--parents", "-p", help="Create missing parent directories.")
    ] = False,
) -> None:
    """Create an empty repository (main at an empty snapshot) in a new or empty directory."""
    repository_text.set(path)
    storage = as_storage(path, storage_options.get())
    check_init_place(path, parents=parents)
    repo = Repository.create(storage)
    head = repo.lookup_branch(DEFAULT_BRANCH)
    typer.echo(f"Initialized empty vrepo repository at {repo.storage.url} (main at {head})")
