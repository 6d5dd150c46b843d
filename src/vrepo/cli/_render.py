"""Output: rich markup and tables on a terminal, plain aligned text when piped, and JSON.

Rich is imported only when stdout is a terminal. Commands call `console` through this module
(``render.console()``), so that tests can replace it with a console of their own.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from vrepo.engine.tree import human_bytes as human_bytes  # re-exported: B, KiB, MiB, ...
from vrepo.engine.tree import shape_text

if TYPE_CHECKING:
    from rich.console import Console


def console() -> Console | None:
    """A rich console when stdout is a terminal, else None (plain text)."""
    if not sys.stdout.isatty():
        return None
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def out(console: Console | None, line: str) -> None:
    """One line: rich markup on a terminal, plain text otherwise."""
    if console is None:
        typer.echo(line)
    else:
        console.print(line)


def print_json(data: Any) -> None:
    """``--json`` output: indented, non-ASCII characters kept as they are."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(moment: dt.datetime) -> str:
    """A time as the tables show it, in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def first_line(message: str) -> str:
    """A commit message's first line ("" for an empty message)."""
    return message.splitlines()[0] if message else ""


shape = shape_text  # a shape as Python writes a tuple: (a, b), (a,), (); "" for none


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Columns aligned with spaces, for pipes."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for row in [list(headers), *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal, a `plain_table` otherwise."""
    terminal = console()
    if terminal is None:
        plain_table(headers, rows)
        return
    from rich.table import Table

    grid = Table(*headers, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        grid.add_row(*map(str, row))
    terminal.print(grid)
