"""The CLI's wording of what errors advise: shell commands and options, not Python API.

Errors that end with Python advice ("move it with reset_branch") carry it as a
`vrepo.errors.Hint` too (see `VRepoError.advised`); `cli_message` gives that advice the
command line's way, keeping the error's statement of fact as it is. Errors without a hint,
or with a kind this module does not know, print as they are.
"""

from __future__ import annotations

import contextvars
import shlex

from vrepo.errors import Hint, VRepoError

# the repository the command names, as typed (set when a command opens one)
repository_text: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vrepo_cli_repository_text", default=None
)


def _repo(hint: Hint) -> str:
    """The repository as the user typed it, quoted for a shell (``REPO`` if unknown)."""
    text = repository_text.get() or hint.params.get("url")
    return shlex.quote(text) if text else "REPO"


def _advice(hint: Hint) -> str | None:
    """The advice of ``hint`` as shell commands, None for a kind not known here."""
    params = hint.params
    match hint.kind:
        case "reset-branch":
            command = f"'vrepo branch reset {_repo(hint)} {params['name']} REVISION'"
            if params["name"] == "main":
                return f"reset it with {command} instead"
            return f"move it with {command} or pick another name"
        case "open-repository":
            return f"look at it with 'vrepo log {_repo(hint)}'"
        case "create-repository":
            return f"create one with 'vrepo init {_repo(hint)}'"
        case "set-config":
            return (
                f"fix it in {params['path']}, in ${params['env_var']}, or with "
                f"'vrepo config set {params['key']} VALUE'"
            )
        case "s3-credentials":
            return (
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, ~/.aws), "
                "or pass '-s anonymous=true' for a public bucket"
            )
        case "list-snapshots":
            return f"find ids with 'vrepo log {_repo(hint)}'"
        case "import-elsewhere":
            return "import into a new group (--group GROUP) or another branch (--branch BRANCH)"
        case "settle-merge":
            return (
                "settle chunk and object conflicts with '--strategy source-wins' or "
                "'--strategy dest-wins', metadata conflicts with '--metadata-strategy' "
                "likewise, or change one branch so they agree and merge again"
            )
    return None


def cli_message(error: VRepoError) -> str:
    """What the command prints for ``error``: its advice in CLI words where it has a hint."""
    hint = error.hint
    advice = None if hint is None else _advice(hint)
    return str(error) if advice is None else f"{hint.fact}; {advice}"
