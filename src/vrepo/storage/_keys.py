"""Argument checks shared by every storage backend: keys, list prefixes, byte ranges, limits.

Keys are validated before any backend touches them, so a key can never name anything outside
the storage root (no absolute paths, no '..', no drive letters) and can never collide with a
backend's temporary files (which start with '.').
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable

from vrepo.errors import InvalidKeyError

MAX_KEY_LENGTH = 1024

_VALID_KEY_HELP = (
    "a valid key is a relative '/'-separated path such as 'chunks/ABC' or "
    "'refs/branch.main/1.json': non-empty segments, none starting with '.', "
    "no backslashes, control characters or drive prefixes, at most "
    f"{MAX_KEY_LENGTH} characters"
)
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def _problem(text: str) -> str | None:
    """What is wrong with a key-shaped string (no trailing '/' handling), or None if fine."""
    if len(text) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    bad = _BAD_CHARS.search(text)
    if bad:
        return f"it contains the forbidden character {bad.group()!r}"
    if text.startswith("/"):
        return "it is absolute (starts with '/')"
    if text.endswith("/"):
        return "it ends with '/'"
    if "//" in text:
        return "it has an empty segment ('//')"
    if text.startswith(".") or "/." in text:
        return "a segment starts with '.' (this includes '.' and '..')"
    if ":" in text.partition("/")[0]:
        return "its first segment contains ':' (looks like a drive or URL prefix)"
    return None


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid storage key, else raise `InvalidKeyError`."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"storage key must be a str, got {type(key).__name__}")
    problem = "it is empty" if not key else _problem(key)
    if problem:
        raise InvalidKeyError(f"invalid storage key {key!r}: {problem}; {_VALID_KEY_HELP}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can prefix valid keys, else raise `InvalidKeyError`.

    Unlike a key, a prefix may be empty, may end with '/', and may end mid-segment
    (``'refs/branch.ma'``).
    """
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"list prefix must be a str, got {type(prefix).__name__}")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    problem = None
    if prefix == "/":
        problem = "it is absolute (starts with '/')"
    elif body:
        problem = _problem(body)
    if problem:
        raise InvalidKeyError(
            f"invalid list prefix {prefix!r}: {problem}; a prefix is '' or the start of a "
            f"valid key and may end with '/'; {_VALID_KEY_HELP}"
        )
    return prefix


def validate_byte_range(byte_range: tuple[int, int] | None) -> tuple[int, int] | None:
    """Check a ``(start, end)`` half-open byte range: ``0 <= start <= end``."""
    if byte_range is not None:
        start, end = byte_range
        if start < 0 or end < start:
            raise ValueError(
                f"invalid byte range {byte_range!r}: expected (start, end) with 0 <= start <= end"
            )
    return byte_range


def first_keys(keys: Iterable[str], limit: int | None) -> list[str]:
    """Sorted keys, or only the ``limit`` smallest of them (without sorting them all)."""
    if limit is None:
        return sorted(keys)
    if limit < 0:
        raise ValueError(f"list limit must be >= 0 or None, got {limit}")
    return heapq.nsmallest(limit, keys)


def is_valid_key(key: str) -> bool:
    """Whether a listed object name is a valid key (not, say, a folder marker ending in '/')."""
    try:
        validate_key(key)
    except InvalidKeyError:
        return False
    return True
