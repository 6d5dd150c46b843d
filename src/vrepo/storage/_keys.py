"""Argument checks shared by every storage backend: keys, list prefixes, byte ranges, limits.

Keys are validated before any backend touches them, so a key can never name anything outside
the storage root (no absolute paths, no '..', no drive letters) and can never collide with a
backend's temporary files (which start with '.').
"""

from __future__ import annotations

import heapq
import operator
import re
from collections.abc import Iterable

from vrepo.errors import InvalidArgumentError, InvalidKeyError

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
    """Check a ``(start, end)`` half-open byte range (``0 <= start <= end``, integers) and
    return it as two Python ints (numpy integers are accepted); `InvalidArgumentError` if not.

    Negative values are refused rather than read as Python slices: S3 cannot express them
    (only a suffix), and a negative offset is almost always an arithmetic slip.
    """
    if byte_range is None:
        return None
    try:
        start, end = byte_range
        if isinstance(start, bool) or isinstance(end, bool):
            raise TypeError("bool")
        start, end = operator.index(start), operator.index(end)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"invalid byte range {byte_range!r}: expected a tuple (start, end) of two integers"
        ) from None
    if start < 0 or end < start:
        raise InvalidArgumentError(
            f"invalid byte range {byte_range!r}: expected (start, end) with 0 <= start <= end "
            "(bytes [start, end) of the object; negative and suffix ranges are not supported, "
            "read the whole object or compute the offsets from its size)"
        )
    return start, end


def first_keys(keys: Iterable[str], limit: int | None) -> list[str]:
    """Sorted keys, or only the ``limit`` smallest of them (without sorting them all)."""
    if limit is None:
        return sorted(keys)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidArgumentError(f"list limit must be an int >= 0 or None, got {limit!r}")
    return heapq.nsmallest(limit, keys)


def is_valid_key(key: str) -> bool:
    """Whether a listed object name is a valid key (not, say, a folder marker ending in '/')."""
    try:
        validate_key(key)
    except InvalidKeyError:
        return False
    return True
