"""What the commands share: argument and option types, and the storage options given with -s.

The root callback (`vrepo.cli._app`) parses ``--storage-option`` into `storage_options` for
the one command it runs; commands read it back when they open a repository.
"""

from __future__ import annotations

import contextvars
from typing import Annotated, Any

import typer

# s3_storage and swift_storage keywords that --storage-option may set, and how to read their
# values (Swift's token and key come from OS_AUTH_TOKEN / ST_KEY, never from the command line)
STORAGE_OPTIONS = {
    "endpoint_url": str,
    "region": str,
    "anonymous": bool,
    "preauthurl": str,
    "authurl": str,
    "user": str,
    "single_writer": bool,
    "refs_storage": str,
}
storage_options: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "vrepo_cli_storage_options", default=None
)

RefArg = Annotated[
    str,
    typer.Argument(
        metavar="REF",
        help="REPOSITORY[@REVISION]: a path or URL, then a branch, tag or snapshot id, "
        "optionally ~N (default: branch main).",
    ),
]
RepoArg = Annotated[str, typer.Argument(metavar="REPO", help="Repository path or URL.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (see docs/cli.md).")]
