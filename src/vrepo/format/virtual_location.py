"""Virtual chunk containers and the locations virtual refs may name (pure, no I/O).

A container is a location prefix the repository's configuration allows virtual refs to read
(``file:///data/archive/``; later ``s3://bucket/prefix/`` and ``https://host/path/``), with
options for reaching it. A location is normalized before it is matched (duplicate and ``.``
segments dropped), and one with a ``..`` segment is refused, so no ref escapes its container.
"""

from __future__ import annotations

import posixpath
from typing import Any

import msgspec

from vrepo.errors import InvalidArgumentError

SCHEMES = ("file",)
"""Schemes whose containers vrepo reads today (``s3`` and ``https`` are planned)."""

_PLANNED = ("s3", "gs", "az", "http", "https")


class VirtualChunkContainer(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A location prefix virtual refs may read, and how to reach it.

    ``url_prefix``: e.g. ``file:///data/archive/`` (normalized to end with ``/``).
    ``storage_options``: options for the backend that reads it (none for local files).
    """

    url_prefix: str
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        prefix = normalize_location(self.url_prefix, what="a virtual chunk container prefix")
        msgspec.structs.force_setattr(self, "url_prefix", prefix.rstrip("/") + "/")

    @property
    def scheme(self) -> str:
        """The prefix's URL scheme, e.g. ``file``."""
        return self.url_prefix.split("://", 1)[0]

    def holds(self, location: str) -> bool:
        """Whether the normalized ``location`` lies inside this container."""
        return location.startswith(self.url_prefix)


def split_location(location: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a location URL; `InvalidArgumentError` if it has no scheme."""
    scheme, sep, rest = location.partition("://")
    if not sep or not scheme.isascii() or not scheme.isalnum():
        raise InvalidArgumentError(
            f"virtual ref location {location!r} is not a URL; give an absolute one such as "
            "'file:///data/a.nc'"
        )
    return scheme.lower(), rest


def normalize_location(location: str, *, what: str = "virtual ref location") -> str:
    """``location`` in canonical form, or `InvalidArgumentError` (a ``..`` segment, a relative
    or empty path, a scheme vrepo cannot read)."""
    if not isinstance(location, str) or "\x00" in location:
        raise InvalidArgumentError(f"{what} must be a string URL, got {location!r}")
    scheme, rest = split_location(location)
    if scheme not in SCHEMES:
        planned = " (planned, not yet supported)" if scheme in _PLANNED else ""
        raise InvalidArgumentError(
            f"{what} {location!r}: scheme {scheme!r} is not readable{planned}; vrepo reads "
            f"virtual chunks from {', '.join(s + '://' for s in SCHEMES)} locations"
        )
    path = rest
    if not path.startswith("/"):
        raise InvalidArgumentError(
            f"{what} {location!r} is not absolute; file URLs have three slashes: "
            "'file:///data/a.nc'"
        )
    if ".." in path.split("/"):
        raise InvalidArgumentError(
            f"{what} {location!r} has a '..' segment; give the path without it, so it cannot "
            "leave its virtual chunk container"
        )
    trailing = "/" if path.endswith("/") and path != "/" else ""
    return f"{scheme}://{posixpath.normpath(path).replace('//', '/')}{trailing}"


def container_for(
    location: str, containers: tuple[VirtualChunkContainer, ...]
) -> VirtualChunkContainer | None:
    """The container holding ``location`` (normalized), the longest prefix first; or None."""
    best = None
    for container in containers:
        if container.holds(location) and (
            best is None or len(container.url_prefix) > len(best.url_prefix)
        ):
            best = container
    return best
