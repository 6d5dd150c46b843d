"""``vrepo merge`` and ``vrepo revert``: three-way merges of branches, and inverse commits."""

from __future__ import annotations

from typing import Annotated

import typer

import vrepo.cli._render as render
from vrepo.cli._lookup import open_repo_only
from vrepo.cli._options import JsonOpt, RepoArg
from vrepo.engine.merge import MergeResult
from vrepo.engine.three_way import STRATEGIES

commands = typer.Typer()  # merged into the root app: ``vrepo merge``, ``vrepo revert``

_CHOICES = "|".join(STRATEGIES)
StrategyOpt = Annotated[
    str,
    typer.Option(
        "--strategy",
        metavar=_CHOICES,
        help="Settle chunk and object conflicts: the source's or the destination's wins.",
    ),
]
MetadataStrategyOpt = Annotated[
    str,
    typer.Option(
        "--metadata-strategy",
        metavar=_CHOICES,
        help="Settle metadata conflicts (shapes, attributes, deleted nodes) likewise.",
    ),
]
MessageOpt = Annotated[str | None, typer.Option("-m", "--message", help="Commit message.")]
AuthorOpt = Annotated[
    str | None,
    typer.Option("--author", metavar='"NAME <EMAIL>"', help="Commit as someone else."),
]


@commands.command()
def merge(
    repo_ref: RepoArg,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Branch or revision to merge.")],
    into: Annotated[
        str, typer.Option("--into", metavar="BRANCH", help="Branch to merge into.")
    ] = "main",
    message: MessageOpt = None,
    strategy: StrategyOpt = "fail",
    metadata_strategy: MetadataStrategyOpt = "fail",
    no_ff: Annotated[
        bool,
        typer.Option("--no-ff", help="Make a merge commit where a fast-forward would do."),
    ] = False,
    author: AuthorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge SOURCE into a branch: a three-way merge of nodes, metadata and chunks."""
    _check(strategy, metadata_strategy)
    repo = open_repo_only(repo_ref, "merge")
    result = repo.merge(
        source,
        into,
        message=message,
        strategy=strategy,  # type: ignore[arg-type]  (checked by merge)
        metadata_strategy=metadata_strategy,  # type: ignore[arg-type]
        author=author,
        fast_forward=not no_ff,
    )
    _report(result, f"{source} into {into}", as_json)


@commands.command()
def revert(
    repo_ref: RepoArg,
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="Snapshot to undo.")],
    branch: Annotated[
        str, typer.Option("--branch", metavar="BRANCH", help="Branch to commit on.")
    ] = "main",
    message: MessageOpt = None,
    strategy: StrategyOpt = "fail",
    metadata_strategy: MetadataStrategyOpt = "fail",
    author: AuthorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Commit on a branch the inverse of one snapshot's changes."""
    _check(strategy, metadata_strategy)
    repo = open_repo_only(repo_ref, "revert")
    result = repo.revert(
        revision,
        branch,
        message=message,
        strategy=strategy,  # type: ignore[arg-type]
        metadata_strategy=metadata_strategy,  # type: ignore[arg-type]
        author=author,
    )
    _report(result, f"{revision} on {branch}", as_json)


def _check(strategy: str, metadata_strategy: str) -> None:
    """A usage error (exit status 2) naming the option, before the repository is opened."""
    for option, value in (("--strategy", strategy), ("--metadata-strategy", metadata_strategy)):
        if value not in STRATEGIES:
            raise typer.BadParameter(f"{value!r} is not one of {_CHOICES}", param_hint=option)


def _report(result: MergeResult, what: str, as_json: bool) -> None:
    settled = [str(c) for c in result.settled]
    if as_json:
        render.print_json(
            {
                "kind": result.kind,
                "snapshot_id": result.snapshot_id,
                "source_id": result.source_id,
                "merge_base": result.merge_base,
                "settled": settled,
            }
        )
        return
    done = {
        "merge": f"merged {what}: {result.snapshot_id}",
        "fast-forward": f"fast-forwarded {what}: {result.snapshot_id}",
        "up-to-date": f"already up to date: {what} changes nothing ({result.snapshot_id})",
        "revert": f"reverted {what}: {result.snapshot_id}",
    }[result.kind]
    typer.echo(done)
    for line in settled:
        typer.echo(f"  settled by strategy: {line}")
