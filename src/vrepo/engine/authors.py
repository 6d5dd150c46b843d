"""Who a commit is by: the configured user, or the operating system's, or the caller's choice.

Read at the edge of the public API (when a commit or amend starts, and when a repository is
created), as every setting is: configuration ``user.name`` / ``user.email`` (files,
``VREPO_USER__NAME`` / ``VREPO_USER__EMAIL``, ``vrepo.config.set``), else the login name the
operating system gives (`getpass.getuser`), else ``"unknown"``, so that a container without a
passwd entry for its user still commits.
"""

from __future__ import annotations

import getpass

from vrepo import config
from vrepo.config import MAX_TEXT_CHARS
from vrepo.errors import InvalidArgumentError
from vrepo.format import Author

UNKNOWN_USER = "unknown"
MAX_AUTHOR_CHARS = MAX_TEXT_CHARS  # per part: a history index copies 16 authors per snapshot

_ADVICE = (
    "set user.name (and user.email) with `vrepo config set user.name 'Your Name'`, "
    "VREPO_USER__NAME, or vrepo.config.set({'user.name': ...})"
)


def os_user() -> str:
    """The operating system's name for the current user; ``"unknown"`` if it has none
    (``getpass.getuser`` raises in containers whose user has no passwd entry)."""
    try:
        name = getpass.getuser()
    except Exception:  # OSError (3.13+), KeyError or ImportError before: no name to be had
        return UNKNOWN_USER
    return name.strip() if isinstance(name, str) and name.strip() else UNKNOWN_USER


def configured_author() -> Author:
    """The author of commits made now: ``user.name`` / ``user.email``, else the OS user."""
    name, email = config.get("user.name"), config.get("user.email")
    if name is None or not name.strip():
        name = os_user()
    if email is not None and not email.strip():
        email = None
    return checked_author(Author(name.strip(), None if email is None else email.strip()))


def as_author(author: Author | str | None) -> Author:
    """The author a caller passed (an `Author` or ``"Name <email>"``), or the configured one."""
    if author is None:
        return configured_author()
    if isinstance(author, str):
        try:
            author = Author.parse(author)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"{exc}; for example author='Ada Lovelace <ada@example.org>'"
            ) from None
    if not isinstance(author, Author):
        raise InvalidArgumentError(
            f"author must be a vrepo.Author or a 'Name <email>' string, not {type(author).__name__}"
        )
    return checked_author(author)


def checked_author(author: Author) -> Author:
    """``author`` if it is one line of readable text (name non-empty, no angle brackets),
    else `InvalidArgumentError` saying how to set it."""
    for part, value in (("name", author.name), ("email", author.email)):
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidArgumentError(f"an author's {part} is a str, not {type(value).__name__}")
        if len(value) > MAX_AUTHOR_CHARS:
            raise InvalidArgumentError(
                f"an author's {part} is at most {MAX_AUTHOR_CHARS} characters, got "
                f"{len(value)}; {_ADVICE}"
            )
        if any(c in value for c in "<>") or not value.isprintable():
            raise InvalidArgumentError(
                f"an author's {part} is one line without '<' or '>', got {value!r}; {_ADVICE}"
            )
    if not author.name.strip():
        raise InvalidArgumentError(f"an author needs a name; {_ADVICE}")
    return author
