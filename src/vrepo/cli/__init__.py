"""The ``vrepo`` command: a typer application, one module per command group."""

from vrepo.cli._commands import app, main

__all__ = ["app", "main"]
