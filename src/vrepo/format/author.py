"""Authors: who made a commit, as snapshots and history entries record it.

Stored as a two-element MessagePack array ``[name, email]`` (email null when unknown):
compact, since every snapshot copies the authors of its newest ancestors into its history
index, and extensible (new elements go at the end, with defaults).
"""

from __future__ import annotations

import re

import msgspec

_NAME_AND_EMAIL = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*$")


class Author(msgspec.Struct, frozen=True, array_like=True):
    """Who made a commit: a name and, when known, an email address.

    ``str(author)`` is ``"Name <email>"`` as git writes it (``"Name"`` without an email);
    `Author.parse` reads that form back.
    """

    name: str
    email: str | None = None

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name

    @classmethod
    def parse(cls, text: str) -> Author:
        """``"Name <email>"`` or a bare ``"Name"`` as an `Author` (surrounding spaces dropped).

        Raises ValueError for text with unbalanced or extra angle brackets.
        """
        match = _NAME_AND_EMAIL.match(text)
        if match is not None:
            return cls(match["name"], match["email"].strip() or None)
        if "<" in text or ">" in text:
            raise ValueError(f"an author is 'Name <email>' or 'Name', got {text!r}")
        return cls(text.strip())
