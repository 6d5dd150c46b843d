"""Imported first by the package: quiet Ctrl-C while the ``vrepo`` command starts.

In the ``vrepo`` console script only (``sys.argv[0]`` is ``vrepo``), a Ctrl-C before
`vrepo.cli.main` runs (while this package is still importing) prints one line, not a
traceback, and the process ends by SIGINT as usual (status 130 in a shell). `vrepo.cli.main`
handles Ctrl-C from then on. In any other program, this does nothing.
"""

from __future__ import annotations

import os
import sys

COMMAND_NAMES = ("vrepo", "vrepo.exe")


def _is_the_command() -> bool:
    argv = getattr(sys, "argv", None) or [""]
    return os.path.basename(str(argv[0])) in COMMAND_NAMES


def quiet_interrupts() -> None:
    """Print an uncaught `KeyboardInterrupt` as one line (others as before)."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, traceback: object) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
        else:
            previous(kind, value, traceback)  # type: ignore[arg-type]

    sys.excepthook = hook


if _is_the_command():
    quiet_interrupts()
