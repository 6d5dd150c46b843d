"""Paths of the fsspec view: which part names a repository and revision, which a zarr key.

A path is ``<location>[@<revision>][/<zarr key>]``. Revisions never contain ``/`` (see
`vrepo.engine.reference`), so the repository part ends at a ``/``: the root of a path is its
*shortest* prefix, ending at a ``/`` or at the end, that names a repository. Within one prefix
the revision is split off as everywhere else (after the last ``@`` followed by a valid
revision; a folder named ``a@b`` is tried whole when ``a`` holds no repository). Taking the
shortest prefix means a key can never reach another repository: everything after the root is
a key, and a key with a ``.`` or ``..`` part is refused.

Pure functions: probing storage for a repository is the caller's part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vrepo.engine.reference import parse_reference
from vrepo.errors import InvalidArgumentError, InvalidKeyError

PROTOCOL = "vrepo"
_PREFIXES = (f"{PROTOCOL}::", f"{PROTOCOL}://")


@dataclass(frozen=True)
class Candidate:
    """One way to read a path: ``text`` names the repository (``location`` plus ``revision``,
    None for branch main), and ``rest`` is what follows it: the zarr key, unchecked."""

    text: str
    location: str
    revision: str | None
    rest: str


def strip_protocol(path: str) -> str:
    """``path`` without a leading ``vrepo::`` or ``vrepo://`` and without trailing ``/``."""
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return path.rstrip("/")


def candidates(path: str, scheme: str | None = None) -> Iterator[Candidate]:
    """Every reading of ``path`` as repository plus key, shortest repository first.

    ``scheme`` (such as ``"s3"``) is prefixed to each location as ``scheme://``; a path that
    carries its own (``s3://bucket/r@v1/zarr.json``) keeps it.
    """
    head = ""
    if scheme is None and "://" in path:
        scheme, _, path = path.partition("://")
        head = f"{scheme}://"
    where = f"{scheme}://" if scheme else ""
    ends = [i for i, char in enumerate(path) if char == "/"] + [len(path)]
    for end in ends:
        prefix = path[:end]
        if not prefix.strip("/"):
            continue  # "" or the file system root
        rest = path[end:].lstrip("/")
        try:
            parsed = parse_reference(prefix)
        except InvalidArgumentError:
            parsed = None
        if parsed is not None and parsed.revision is not None:
            location = where + parsed.location
            yield Candidate(head + prefix, location, parsed.revision, rest)
        yield Candidate(head + prefix, where + prefix, None, rest)


def check_key(key: str, path: str) -> str:
    """``key`` if it is a key of the repository: relative, no empty, ``.`` or ``..`` part.

    The empty key is the repository's root directory. `InvalidKeyError` names ``path``.
    """
    if key == "":
        return key
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in key or not key.isprintable():
        raise InvalidKeyError(
            f"invalid path {path!r}: after the repository (and @revision) comes a zarr key "
            f"such as 'group/array/zarr.json'; {key!r} has an empty, '.' or '..' part or a "
            "control character, and a key never leaves its repository"
        )
    return key


def join(prefix: str, key: str) -> str:
    """The path of ``key`` below ``prefix`` (the repository's path, '' when pinned)."""
    if not prefix:
        return key
    return f"{prefix}/{key}" if key else prefix


__all__ = ["PROTOCOL", "Candidate", "candidates", "check_key", "join", "strip_protocol"]
