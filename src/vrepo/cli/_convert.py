"""Argument and option values converted without pydantic, for the plain types commands take.

typer 0.29 converts every parameter's value (an absent one too) through a pydantic
``TypeAdapter``: importing pydantic and building the adapters costs about 60 ms, a fifth of a
``vrepo log``. For the types vrepo's commands declare (``str``, ``int`` with bounds, lists of
``str``), a value that typer would take as it is converts here directly, to the same value;
any other value, so every value that typer would reject, goes through typer's own conversion,
and errors read exactly as typer words them. `plain_conversions` installs this on a command
tree before it parses its arguments (`vrepo.cli._app`); with typer versions that convert
through click types instead (before 0.29), it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # typer < 0.29: click types convert values, pydantic is not involved
    RuntimeParam = build_runtime_param = None

_MAX_DIGITS = 18  # longer numbers go to typer (pydantic), whatever it makes of them
_NOT_PLAIN = object()


def _is_plain_int(value: Any) -> bool:
    """An int, or decimal digits with no sign, spaces, underscores or leading zeros."""
    if type(value) is int:
        return True
    return (
        type(value) is str
        and 0 < len(value) <= _MAX_DIGITS
        and value.isascii()
        and value.isdigit()
        and (value == "0" or value[0] != "0")
    )


def _plain_value(annotation: Any, info: Any, value: Any) -> Any:
    """``value`` as typer would convert it, or `_NOT_PLAIN` for typer to convert."""
    if annotation is str and type(value) is str:
        return value
    if annotation is int and _is_plain_int(value):
        number = int(value)
        if (info.min is None or number >= info.min) and (info.max is None or number <= info.max):
            return number
    if (
        annotation == list[str]
        and isinstance(value, list | tuple)
        and all(type(item) is str for item in value)
    ):
        return list(value)
    return _NOT_PLAIN  # bool flags come here only with values that are not bool


def _takes(descriptor: Any) -> bool:
    """Whether values of this parameter can convert here (else typer converts them all)."""
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or getattr(info, "parser", None) is not None:
        return False
    if descriptor.annotation is int:
        return not getattr(info, "clamp", False)
    return descriptor.annotation in (str, bool) or descriptor.annotation == list[str]


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainConversion(RuntimeParam):  # type: ignore[misc, valid-type]
        """typer's conversion of one parameter, short-cut for values it would keep as they are.

        typer's `RuntimeParam.coerce` handles ``None`` (an absent value) and calls this for
        the rest; typer does not convert values of ``bool`` flags that are already ``bool``.
        """

        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = _plain_value(self.annotation, self.parameter_info, value)
            if plain is not _NOT_PLAIN:
                return plain
            # typer's own conversion: errors, and anything `_plain_value` leaves alone
            typer_conversion = build_runtime_param(self.descriptor)  # type: ignore[misc]
            return typer_conversion._coerce_value(value, param=param, ctx=ctx)

else:
    _PlainConversion = None  # type: ignore[assignment, misc]


def _params(command: Any, ctx: Any, subcommands: bool) -> Iterator[Any]:
    """The parameters of ``command`` and (if ``subcommands``) of every command below it, each
    command's ``--help`` option included.

    ``ctx`` is the root command's context: each command's ``--help`` option is made with it
    (click makes a command's help option once, from the context's help option names, which
    a subcommand's context inherits unless its command's ``context_settings`` set them).
    """
    commands = [command]
    while commands:
        current = commands.pop()
        yield from current.params
        if "help_option_names" not in (current.context_settings or {}):
            help_option = current.get_help_option(ctx)
            if help_option is not None:
                yield help_option
        if subcommands:
            commands.extend(getattr(current, "commands", {}).values())


def plain_conversions(command: Any, ctx: Any, *, subcommands: bool = True) -> None:
    """Convert the values of ``command``'s parameters, and (unless told not to) those of its
    subcommands, here where possible (see the module's docstring); a no-op with typer before
    0.29. ``ctx`` is the root command's context (see `_params`)."""
    if _PlainConversion is None:
        return
    for param in _params(command, ctx, subcommands):
        descriptor = getattr(param, "type_descriptor", None)
        if (
            descriptor is not None
            and getattr(param, "_runtime_param", False) is None  # not built yet
            and _takes(descriptor)
        ):
            param._runtime_param = _PlainConversion(
                descriptor.parameter_info, descriptor.annotation, descriptor
            )


def untyped_flags(command: Any, ctx: Any, *, subcommands: bool = True) -> None:
    """Show no type for flags (``--json``, ``--help``) in help: typer 0.29 prints them as
    ``--json <bool>``, as if they took a value. ``ctx`` as for `plain_conversions`."""
    for param in _params(command, ctx, subcommands):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


__all__ = ["plain_conversions", "untyped_flags"]
