"""User configuration: built-in defaults, YAML files, ``VREPO_*`` variables, ``set``.

vrepo uses donfig, as dask does. Values come, lowest priority first, from the defaults below,
YAML files (``~/.config/vrepo/*.yaml``, or the directory or file named by ``VREPO_CONFIG``),
environment variables (``VREPO_DASK__SPLIT_EVERY=16``: ``__`` separates levels, ``_`` may
stand for ``-``) and `set` (a context manager, or global when not used as one).

Settings are read where the public API starts (`Repository.create`, `s3_storage`,
`LocalStorage`, `VRepoStore` and so ``session.store``, `vrepo.dask.store`), never deeper,
and never in ``vrepo.format``. This module imports nothing of vrepo but its errors, so every
layer's entry points may use it.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import donfig
import yaml
from donfig.config_obj import collect_env, collect_yaml, merge

from vrepo.errors import InvalidArgumentError

__all__ = [
    "KEYS",
    "Key",
    "config",
    "get",
    "refresh",
    "save_user_setting",
    "set",
    "user_config_path",
]

_NO_DEFAULT: Any = object()
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class Key:
    """One documented setting: its default, type, allowed range and meaning."""

    name: str
    default: Any
    kind: type
    help: str
    low: float | None = None
    high: float | None = None
    one_line: bool = False  # text: one printable line of at most `MAX_TEXT_CHARS`, no '<' '>'

    @property
    def env_var(self) -> str:
        """The environment variable that sets this key, e.g. ``VREPO_DASK__SPLIT_EVERY``."""
        return "VREPO_" + "__".join(p.replace("-", "_") for p in self.name.split(".")).upper()

    def coerce(self, value: Any) -> Any:
        """``value`` as this key's type, or `InvalidArgumentError` saying what is allowed.

        None stays None for keys whose default is None (unset: see their help)."""
        if value is None and self.default is None:
            return None
        converted = _CONVERTERS[self.kind](value)
        if self.one_line and converted is not None and not _one_line(converted):
            converted = None
        if converted is None or (
            (self.low is not None and converted < self.low)
            or (self.high is not None and converted > self.high)
        ):
            path = str(user_config_path())
            raise InvalidArgumentError.advised(
                f"vrepo configuration {self.name!r} must be {self.allowed}, got {value!r}",
                f"fix it in {path}, in ${self.env_var}, or with "
                f"vrepo.config.set({{{self.name!r}: ...}})",
                "set-config",
                key=self.name,
                env_var=self.env_var,
                path=path,
            )
        return converted

    @property
    def allowed(self) -> str:
        """What values this key takes, in words."""
        if self.kind is bool:
            return "true or false"
        if self.kind is str and self.one_line:
            return f"one line of at most {MAX_TEXT_CHARS} characters, without '<' or '>'"
        if self.kind is str:
            return "a string"
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            return f"{what} from {_num(self.low)} to {_num(self.high)}"
        return f"{what} of at least {_num(self.low)}" if self.low is not None else what


MAX_TEXT_CHARS = 256  # an author's name or email: every snapshot copies 16 authors


def _one_line(text: str) -> bool:
    return len(text) <= MAX_TEXT_CHARS and text.isprintable() and not any(c in text for c in "<>")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # VREPO_...=1 reads as the int 1
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _to_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # VREPO_USER__NAME=42 reads as the int 42
    return None


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    str: _to_str,
}

# Keep in step with RepoConfig's defaults and limits (vrepo/format/repo_info.py), which this
# module must not import, and with docs/configuration.md.
KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key(
            "repository.inline-threshold-bytes",
            512,
            int,
            "new repositories: chunks of at most this many bytes are stored inside the "
            "manifest (0 disables inlining)",
            0,
            65536,
        ),
        Key(
            "repository.commit-retries",
            100,
            int,
            "new repositories: how often a commit that lost a race rebases and retries",
            0,
            100_000,
        ),
        Key(
            "repository.commit-backoff-ms",
            1.0,
            float,
            "new repositories: the first retry's longest wait (jittered), doubling per retry",
            0,
            60_000,
        ),
        Key(
            "repository.commit-backoff-max-ms",
            64.0,
            float,
            "new repositories: the longest wait between two commit attempts",
            0,
            600_000,
        ),
        Key(
            "repository.manifest-split-refs",
            32768,
            int,
            "new repositories: an array's chunk refs are kept in pieces of at most this many "
            "(by block of the chunk grid); a commit rewrites only the pieces it wrote in",
            1,
            2**24,
        ),
        Key(
            "storage.local.fsync-threads",
            8,
            int,
            "local storage: threads that fsync a commit's files in parallel",
            1,
            1024,
        ),
        Key(
            "storage.s3.scatter-credentials",
            True,
            bool,
            "S3 storage with a credentials provider: forks sent to workers carry the "
            "credentials it returned (s3_storage's scatter_credentials default)",
        ),
        Key(
            "read.verify-checksums",
            True,
            bool,
            "zarr stores over a session: check each whole stored chunk read against the "
            "CRC-32C its manifest records (lengths are always checked)",
        ),
        Key(
            "dask.split-every",
            32,
            int,
            "vrepo.dask.store and to_repo: fan-in of the change-set merge tree",
            2,
            100_000,
        ),
        Key(
            "user.name",
            None,
            str,
            "commits: the author's name recorded in each snapshot (unset: the operating "
            "system's user name)",
            one_line=True,
        ),
        Key(
            "user.email",
            None,
            str,
            "commits: the author's email address recorded beside the name (unset: none)",
            one_line=True,
        ),
    )
}


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# Variables that say where the files are, not settings; donfig would also read them as keys.
_LOCATION_VARIABLES = frozenset({"VREPO_CONFIG", "VREPO_ROOT_CONFIG"})


class _Config(donfig.Config):
    """donfig's Config, without its location variables among the settings."""

    def collect(self, paths: list[str] | None = None, env: Mapping[str, str] | None = None) -> dict:
        env = self.env if env is None else env
        settings = {k: v for k, v in env.items() if k not in _LOCATION_VARIABLES}
        return super().collect(paths, settings)


config = _Config("vrepo", defaults=[_nested({k.name: k.default for k in KEYS.values()})])
"""The donfig configuration object (``config.get``, ``config.set``, ``config.pprint``, ...)."""


def _canonical(key: str) -> str:
    """``key`` with '_' spelled '-' (as the documented names are)."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"a configuration key is a dotted string, got {key!r}")
    return key.replace("_", "-")


def _known(key: str) -> Key:
    name = _canonical(key)
    found = KEYS.get(name)
    if found is None:
        close = difflib.get_close_matches(name, KEYS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidArgumentError(
            f"unknown vrepo configuration key {key!r}; {hint}known keys: {', '.join(KEYS)}"
        )
    return found


def get(key: str, default: Any = _NO_DEFAULT) -> Any:
    """The value of ``key`` (dotted, e.g. ``"dask.split-every"``), validated.

    A documented key not set anywhere gives ``default`` if passed, else its built-in default;
    an invalid value raises `InvalidArgumentError` saying where to fix it. Other keys are
    looked up as stored (`InvalidArgumentError` if absent and no ``default``).
    """
    name = _canonical(key)
    spec = KEYS.get(name)
    value = config.get(name, default=_NO_DEFAULT)
    if value is _NO_DEFAULT:
        if default is not _NO_DEFAULT:
            return default
        if spec is None:
            _known(key)  # raises, with a suggestion
        return spec.default
    return spec.coerce(value) if spec is not None else value


def set(arg: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Set documented keys, checked: for a ``with`` block, or globally when not used as one.

    ``vrepo.config.set({"dask.split-every": 8})`` or ``set(dask__split_every=8)``. Unknown
    keys and invalid values raise `InvalidArgumentError` before anything changes.
    """
    given = dict(_flat(arg) if arg is not None else {})
    given.update({k.replace("__", "."): v for k, v in kwargs.items()})
    checked = {}
    for key, value in given.items():
        spec = _known(key)
        checked[spec.name] = spec.coerce(value)
    return config.set(checked)


def user_config_path() -> Path:
    """The YAML file `save_user_setting` writes: ``$VREPO_CONFIG/vrepo.yaml`` or
    ``~/.config/vrepo/vrepo.yaml`` (``$VREPO_CONFIG`` itself if it names a .yaml file)."""
    where = os.environ.get("VREPO_CONFIG")
    if not where:
        return Path.home() / ".config" / "vrepo" / "vrepo.yaml"
    path = Path(where).expanduser()
    return path if path.suffix.lower() in (".yaml", ".yml") else path / "vrepo.yaml"


def refresh() -> None:
    """Read files and environment variables again (after changing ``VREPO_CONFIG`` or them).

    Values set globally with `set` are dropped; built-in defaults stay.
    """
    fresh = donfig.Config("vrepo")  # donfig works out the search paths from the environment
    config.paths, config.main_path = fresh.paths, fresh.main_path
    config.refresh()


def save_user_setting(key: str, value: Any) -> Path:
    """Store ``key: value`` in the user's YAML file (created with its directory if needed).

    The value is validated first; ``None`` removes the setting. It also applies to this
    process at once, unless an environment variable sets the key (those win over files).
    Comments in the file are not kept. Returns the file's path.
    """
    spec = _known(key)
    checked = None if value is None else spec.coerce(value)
    path = user_config_path()
    stored = _read_yaml(path)
    _drop(stored, spec.name.split("."))
    if checked is not None:
        node = stored
        for part in spec.name.split(".")[:-1]:
            child = node.get(part)
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        node[spec.name.rsplit(".", 1)[-1]] = checked
    _write_yaml(path, stored)
    if _lookup(collect_env(config.env_prefix), spec.name) is None:  # else the variable wins
        if checked is None:
            checked = _lookup(merge(*collect_yaml(config.paths)), spec.name)
        config.set({spec.name: spec.default if checked is None else checked})
    return path


def _lookup(tree: Any, name: str) -> Any:
    """The value at dotted ``name`` in a nested dict, spelled with '-' or '_'; or None."""
    for part in name.split("."):
        if not isinstance(tree, Mapping):
            return None
        hits = [k for k in tree if isinstance(k, str) and k.replace("_", "-") == part]
        if not hits:
            return None
        tree = tree[hits[-1]]
    return tree


def _drop(tree: dict[str, Any], parts: list[str]) -> None:
    """Remove a dotted key from a nested dict, whatever mix of '-' and '_' it is spelled in."""
    for key in [k for k in tree if isinstance(k, str) and k.replace("_", "-") == parts[0]]:
        if len(parts) == 1:
            del tree[key]
        elif isinstance(tree[key], dict):
            _drop(tree[key], parts[1:])
            if not tree[key]:
                del tree[key]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read vrepo configuration file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(
            f"vrepo configuration file {path} is not valid YAML ({exc}); fix or remove it"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"vrepo configuration file {path} must hold a mapping of settings, not "
            f"{type(data).__name__}; fix or remove it"
        )
    return data


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(data, f, default_flow_style=False, sort_keys=True)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write vrepo configuration file {path}: {exc}") from exc
