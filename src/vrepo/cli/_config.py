"""``vrepo config``: show and change vrepo's configuration (`vrepo.config`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

import vrepo.cli._render as render
from vrepo.cli._options import JsonOpt

commands = typer.Typer(help="Show and change vrepo's configuration.", no_args_is_help=True)

KeyArg = Annotated[str, typer.Argument(help="Dotted key, e.g. dask.split-every.")]


def _settings() -> Any:
    """`vrepo.config`, imported when a config command runs."""
    from vrepo import config as settings

    return settings


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _scalar(value: Any) -> str:
    """A value as ``config list`` and ``config get`` print it: strings bare, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@commands.command("list")
def config_list(as_json: JsonOpt = False) -> None:
    """Every setting with its current value (defaults, files, VREPO_* variables, --config)."""
    settings = _settings()
    values = {key: settings.get(key) for key in sorted(_flat(settings.config.config))}
    if as_json:
        render.print_json(values)
        return
    if render.console() is None:
        for key, value in values.items():
            typer.echo(f"{key}={_scalar(value)}")
        return
    keys = getattr(settings, "KEYS", {})
    helps = {k: getattr(keys.get(k), "help", "") for k in values}
    render.table(
        ("KEY", "VALUE", "MEANING"), [(k, _scalar(v), helps[k]) for k, v in values.items()]
    )
    typer.echo(f"\nuser settings file: {settings.user_config_path()}")


@commands.command("get")
def config_get(key: KeyArg, as_json: JsonOpt = False) -> None:
    """Print one setting's current value."""
    value = _settings().get(key)
    typer.echo(json.dumps(value) if as_json else _scalar(value))


@commands.command("set")
def config_set(
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="New value (checked against the key's type).")],
) -> None:
    """Save a setting in the user's configuration file (applies to later commands)."""
    settings = _settings()
    path = settings.save_user_setting(key, value)
    typer.echo(f"{key} = {value} (saved in {path})")
