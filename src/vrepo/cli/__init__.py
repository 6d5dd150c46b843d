"""The ``vrepo`` command: a typer application, one module per command group.

Read commands take a reference, ``REPOSITORY[@REVISION]`` (see `vrepo.engine.reference`), and
print rich tables and trees on a terminal, plain aligned text when piped, and JSON with
``--json``. Errors print one line on stderr and exit with status 1 (2 for usage errors).
docs/cli.md is the reference. Rich is imported only when output goes to a terminal.

Modules: `_app` (the root app, global options, errors, `main`), one per command group
(`_repository`, `_history`, `_snapshot`, `_branch`, `_tag`, `_config`), and below them
`_refs` (what branch and tag share), `_options` (shared argument types), `_lookup` (opening
references, labels), `_render` (output) and `_graph` (the ``log --graph`` drawing).
"""

from vrepo.cli._app import app, main

__all__ = ["app", "main"]
