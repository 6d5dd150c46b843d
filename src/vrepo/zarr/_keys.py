"""Store keys: which are valid, and what each names in a session's content.

A key is a node's ``zarr.json`` (``a/b/zarr.json``), a chunk of an array (``a/b/c/0/1``, per
the array's chunk key encoding), or, for any other key, an opaque object.
"""

from __future__ import annotations

from typing import Any

from vrepo.engine.content import Content
from vrepo.errors import InvalidKeyError

META = "zarr.json"


def check_key(key: str) -> None:
    if not isinstance(key, str):
        raise InvalidKeyError(f"store keys are str, not {type(key).__name__}")
    if key == "" or key.startswith("/") or key.endswith("/") or "//" in key or "\\" in key:
        raise InvalidKeyError(
            f"invalid store key {key!r}: keys are relative '/'-separated paths such as "
            "'group/array/c/0/1'"
        )
    if any(part in (".", "..") for part in key.split("/")) or not key.isprintable():
        raise InvalidKeyError(f"invalid store key {key!r}: no '.', '..' or control characters")


def node_key_prefix(path: str) -> str:
    """The key prefix under which a node's keys live: '' for the root, 'a/b/' for /a/b."""
    return "" if path == "/" else path[1:] + "/"


def locate(content: Content, key: str) -> tuple[str, Any]:
    """Classify a key: ("node", path) | ("chunk", (path, coords)) | ("object", key)."""
    if key == META:
        return "node", "/"
    if key.endswith("/" + META):
        return "node", "/" + key[: -len(META) - 1]
    parts = key.split("/")
    for i in range(len(parts) - 1, -1, -1):
        view = content.node("/" + "/".join(parts[:i]))
        if view is not None:
            if view.kind == "array":
                coords = view.layout.parse_chunk_key("/".join(parts[i:]))
                if coords is not None:
                    return "chunk", (view.path, coords)
            break
    return "object", key


class Described:
    """What a key holds, for error messages ("chunk (0, 1) of array /a (key 'a/c/0/1')"),
    worked out only if a message is made."""

    __slots__ = ("content", "key")

    def __init__(self, content: Content, key: str) -> None:
        self.content, self.key = content, key

    def __str__(self) -> str:
        kind, where = locate(self.content, self.key)
        if kind == "chunk":
            path, coords = where
            return f"chunk {tuple(coords)} of array {path} (key {self.key!r})"
        return f"object {self.key!r}"


def as_dir_prefix(prefix: str) -> str:
    """``prefix`` as a directory: 'a' -> 'a/', so 'a' never matches 'ab/...'; '' stays ''."""
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
