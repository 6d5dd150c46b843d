"""Where a repository may be made, and what a path holds when it is not one.

`vrepo init` makes a repository only in a new or empty directory (or one that holds nothing
but what a creation that died left there), and makes missing parents only when asked; "no
repository here" advice names the repositories below a directory instead of suggesting
``vrepo init`` on it. These are rules of the command line: `vrepo.Repository.create` takes
any location a program gives it (see docs/cli.md, ``vrepo init``).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from vrepo.errors import InvalidArgumentError
from vrepo.format import REPO_INFO_KEY

# what a repository's root holds: a directory of these only is one (or a creation that died)
LAYOUT = frozenset(
    {
        REPO_INFO_KEY,
        "refs",
        "snapshots",
        "manifests",
        "transactions",
        "chunks",
        "history",
        "expiry",
        "gc",
        "turns",
        "jobs",
        "objects",
    }
)
_SEARCH_DEPTH = 3  # levels below a directory searched for repositories
_SEARCH_DIRS = 2000  # directories looked at, at most
_NAMED = 5  # repositories named before "and N more"


def local_path(location: str) -> Path | None:
    """The local directory a location names (a path or ``file://`` URL), None for others."""
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    if "://" in location:
        return None
    return Path(os.path.expanduser(location))


def repositories_below(root: Path) -> list[Path]:
    """Repositories in the directories below ``root`` (a few levels, hidden ones skipped),
    relative to it, sorted; those inside a repository are not searched for."""
    found: list[Path] = []
    level, seen = [root], 0
    for _ in range(_SEARCH_DEPTH):
        below = []
        for directory in level:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                seen += 1
                if seen > _SEARCH_DIRS:
                    return found
                if os.path.isfile(os.path.join(entry.path, REPO_INFO_KEY)):
                    found.append(Path(entry.path).relative_to(root))
                else:
                    below.append(Path(entry.path))
        level = below
    return sorted(found)


def named(paths: list[Path]) -> str:
    """The first few paths, comma-separated, then how many more."""
    shown = ", ".join(str(p) for p in paths[:_NAMED])
    return shown + (f" and {len(paths) - _NAMED} more" if len(paths) > _NAMED else "")


def no_repository_advice(location: str) -> str:
    """What to do when no repository is at ``location`` (a local path or a URL)."""
    quoted = shlex.quote(location)
    path = local_path(location)
    if path is None:
        return f"create one with 'vrepo init {quoted}'"
    if not path.exists():
        if not path.parent.is_dir():
            return f"create one with 'vrepo init --parents {quoted}'"
        return f"create one with 'vrepo init {quoted}'"
    if not path.is_dir():
        return "it is a file, not a repository"
    below = repositories_below(path)
    if below:
        first = shlex.quote(os.path.join(location, below[0]))
        return f"repositories below it: {named(below)} (for example 'vrepo log {first}')"
    if any(entry.name not in LAYOUT for entry in path.iterdir()):
        return "the directory holds other files, so it is no place for a new repository either"
    return f"create one with 'vrepo init {quoted}'"


def check_init_place(location: str, *, parents: bool) -> None:
    """Refuse to make a repository at a local ``location`` that is a file or a directory of
    other things, or whose parent is missing (unless ``parents``, which makes it)."""
    path = local_path(location)
    if path is None:
        return
    if path.exists():
        if not path.is_dir():
            raise InvalidArgumentError(f"{location!r} is a file; give a new or empty directory")
        if (path / REPO_INFO_KEY).exists():
            return  # the creation says a repository exists there, and what to do
        others = sorted(e.name for e in path.iterdir() if e.name not in LAYOUT)
        if others:
            below = repositories_below(path)
            listed = named(below) if below else named([Path(n) for n in others])
            holds = f"{'repositories' if below else 'other files'} ({listed})"
            raise InvalidArgumentError(
                f"{location!r} is not empty: it holds {holds}; vrepo init makes a repository "
                "only in a new or empty directory, so give another path"
            )
        return
    if not path.parent.is_dir():
        if not parents:
            raise InvalidArgumentError(
                f"the parent directory {str(path.parent)!r} does not exist; create it first, "
                "or pass --parents to create it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
