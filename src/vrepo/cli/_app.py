"""The root ``vrepo`` app: global options, error handling and exit codes, and `run`.

Each command group lives in its own module with its own typer app, which this module
registers: `vrepo.cli._repository` (init), `vrepo.cli._import` (import), `vrepo.cli._history`
(log), `vrepo.cli._snapshot` (show, diff, ls, tree), `vrepo.cli._merge` (merge, revert),
`vrepo.cli._maintenance` (expire, gc, du), `vrepo.cli._branch`, `vrepo.cli._tag` and
`vrepo.cli._config`.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from vrepo.cli._advice import cli_message, repository_text
from vrepo.cli._branch import commands as branch_commands
from vrepo.cli._config import commands as config_commands
from vrepo.cli._convert import plain_conversions, untyped_flags
from vrepo.cli._history import commands as history_commands
from vrepo.cli._import import commands as import_commands
from vrepo.cli._maintenance import commands as maintenance_commands
from vrepo.cli._merge import commands as merge_commands
from vrepo.cli._options import STORAGE_OPTIONS, storage_options
from vrepo.cli._repository import commands as repository_commands
from vrepo.cli._snapshot import commands as snapshot_commands
from vrepo.cli._tag import commands as tag_commands
from vrepo.errors import VRepoError

EXIT_ERROR = 1  # a vrepo error: bad reference, missing repository, invalid name...
EXIT_USAGE = 2  # bad options or arguments (typer's own usage errors)


class _App(TyperGroup):
    """Turns vrepo errors into one line on stderr and exit status 1, with no traceback, and
    converts argument values without pydantic where it can (`vrepo.cli._convert`)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Parse the root's options, their values converted the plain way."""
        plain_conversions(self, ctx, subcommands=False)
        untyped_flags(self, ctx, subcommands=False)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: typer.Context, args: list[str]
    ) -> tuple[str | None, Any, list[str]]:
        """The command to run, with its values (and its subcommands') converted the plain
        way."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            plain_conversions(command, ctx)
            untyped_flags(command, ctx)
        return name, command, rest

    def invoke(self, ctx: typer.Context) -> Any:
        """Run the command, reporting `VRepoError` and `OSError` (but broken pipes) briefly."""
        try:
            return super().invoke(ctx)
        except VRepoError as exc:
            _fail(cli_message(exc))
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            _fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


app = typer.Typer(
    cls=_App,
    name="vrepo",
    help="Version control for Zarr data: inspect history, branches, tags and snapshots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# unnamed groups add their commands to the root: the order here is the order of --help
for group in (
    repository_commands,
    import_commands,
    history_commands,
    snapshot_commands,
    merge_commands,
    maintenance_commands,
):
    app.add_typer(group)
app.add_typer(branch_commands, name="branch")
app.add_typer(tag_commands, name="tag")
app.add_typer(config_commands, name="config")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vrepo {version('vrepo')}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            metavar="KEY=VALUE",
            help="Set a configuration key for this command only (repeatable).",
        ),
    ] = None,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            "-s",
            metavar="KEY=VALUE",
            help="For s3:// references: endpoint_url, region or anonymous; for swift://: "
            "preauthurl, authurl, user, single_writer or refs_storage (repeatable).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """vrepo: snapshots, branches and tags for Zarr data, from the command line."""
    named = repository_text.set(None)  # each command names its own (tests run many in one)
    ctx.call_on_close(lambda: repository_text.reset(named))
    if storage_option:
        options = {}
        for key, value in _pairs(storage_option, "--storage-option").items():
            kind = STORAGE_OPTIONS.get(key)
            if kind is None:
                raise typer.BadParameter(
                    f"unknown storage option {key!r}; use {', '.join(STORAGE_OPTIONS)}",
                    param_hint="--storage-option",
                )
            options[key] = _flag(value) if kind is bool else value
        token = storage_options.set(options)
        ctx.call_on_close(lambda: storage_options.reset(token))
    if config:
        from vrepo import config as settings

        applied = settings.set(_pairs(config, "--config"))
        ctx.call_on_close(lambda: applied.__exit__(None, None, None))


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise typer.BadParameter(f"expected true or false, got {value!r}", param_hint="-s")
    return value.lower() in ("true", "1", "yes")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        pairs[key.strip()] = value
    return pairs


def run() -> None:
    """Run one command (`vrepo.cli.main` calls this), then end the process with
    `SystemExit`; a Ctrl-C is left to `vrepo.cli.main`.

    On the way out, every object is frozen out of the garbage collector (`gc.freeze`): the
    interpreter's final collection then has nothing to scan, which takes a ``vrepo log`` about
    25 ms (of about 0.3 s) less. Shutdown is otherwise as before (atexit handlers, threads,
    open files flushed and closed); only reference cycles left behind go uncollected, which
    the end of the process frees anyway.
    """
    try:
        app(prog_name="vrepo")
    except BrokenPipeError:  # e.g. `vrepo log r | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_ERROR)
    finally:
        gc.freeze()
