"""``vrepo import``: an existing Zarr store becomes one commit (see `vrepo.import_zarr`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vrepo.cli._advice import repository_text
from vrepo.cli._options import storage_options

commands = typer.Typer()  # merged into the root app: ``vrepo import``


@commands.command("import")
def import_store(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="Zarr store: a path or an s3:// URL.")
    ],
    repo: Annotated[
        str, typer.Argument(metavar="REPO", help="Repository path or URL (created if absent).")
    ],
    branch: Annotated[str, typer.Option("--branch", "-b", help="Branch to commit to.")] = "main",
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Commit message (default: import SOURCE).")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", help="Group the source's root goes to (default: the root)."),
    ] = None,
    source_option: Annotated[
        list[str] | None,
        typer.Option(
            "--source-option",
            metavar="KEY=VALUE",
            help="fsspec option for an s3:// SOURCE, e.g. endpoint_url or anon=true (repeatable).",
        ),
    ] = None,
) -> None:
    """Import a Zarr store (format 3, or format 2 converted to 3) as one commit: chunk bytes
    are copied as they are, on the Dask cluster if one is active. Nothing is overwritten."""
    from vrepo.importing import import_zarr  # zarr loads only for this command

    repository_text.set(repo)
    snapshot = import_zarr(
        source,
        repo,
        branch=branch,
        message=message,
        group=group,
        source_options=_source_options(source_option or []),
        storage_options=storage_options.get(),
    )
    where = f" at {group}" if group else ""
    typer.echo(f"Imported {source} into {repo}{where} on {branch} (snapshot {snapshot})")


def _source_options(items: list[str]) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as fsspec options; ``true`` and ``false`` as booleans."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"expected KEY=VALUE, got {item!r}", param_hint="--source-option"
            )
        flag = {"true": True, "false": False}.get(value.lower())
        options[key.strip()] = value if flag is None else flag
    return options or None
