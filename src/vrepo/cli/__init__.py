"""The ``vrepo`` command: a typer application, one module per command group.

Read commands take a reference, ``REPOSITORY[@REVISION]`` (see `vrepo.engine.reference`), and
print rich tables and trees on a terminal, plain aligned text when piped, and JSON with
``--json``. Errors print one line on stderr and exit with status 1 (2 for usage errors).
docs/cli.md is the reference. Rich is imported only when output goes to a terminal.

Modules: `_app` (the root app, global options, errors, `run`), one per command group
(`_repository`, `_history`, `_snapshot`, `_branch`, `_tag`, `_config`, `_maintenance`), and
below them `_refs` (what branch and tag share), `_options` (shared argument types), `_lookup`
(opening references, labels), `_advice` (the CLI's wording of errors' advice), `_render`
(output) and `_graph` (the ``log --graph`` drawing).

This module imports nothing heavy: `main` imports the app itself, so that a Ctrl-C while
the command is still starting ends it as one anywhere else would (one line, status 130).
"""

from __future__ import annotations

import sys
from typing import Any

EXIT_INTERRUPTED = 130


def main() -> None:
    """Entry point of the ``vrepo`` console script: runs one command, then ends the process
    (it always raises `SystemExit`)."""
    try:
        from vrepo.cli._app import run

        run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def __getattr__(name: str) -> Any:
    """`app`, the typer application, loads on first use."""
    if name == "app":
        from vrepo.cli._app import app

        return app
    raise AttributeError(f"module 'vrepo.cli' has no attribute {name!r}")


__all__ = ["app", "main"]
