"""Opening what a reference string names: ``PATH_OR_URL[@REVISION]`` to a repository or session."""

from __future__ import annotations

import os
from typing import Any

from vrepo.engine.reference import parse_reference
from vrepo.engine.repository import Repository
from vrepo.engine.session import Session
from vrepo.errors import InvalidArgumentError, RepositoryNotFoundError
from vrepo.storage import as_storage


def split_reference(
    text: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> tuple[Repository, str | None]:
    """Open the repository a reference (``PATH_OR_URL[@REVISION]``) names; return its revision.

    The revision is None when the reference has none. If no repository exists where the text
    before the last ``@`` points but one exists at the whole text (a folder named ``a@b``),
    that one is opened, without a revision. ``storage_options`` configure ``s3://`` URLs.
    """
    if not isinstance(text, str | os.PathLike):
        raise InvalidArgumentError(
            f"a reference is a str or path such as 'data/r.vrepo@v1', got {type(text).__name__}"
        )
    text = os.fspath(text)
    parsed = parse_reference(text)
    try:
        return Repository.open(as_storage(parsed.location, storage_options)), parsed.revision
    except RepositoryNotFoundError:
        if parsed.revision is None:
            raise
        try:
            return Repository.open(as_storage(text, storage_options)), None
        except RepositoryNotFoundError:
            pass
        raise


def open_reference(
    text: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Session:
    """A read-only session on the snapshot a reference names, e.g. ``"data/r.vrepo@v1~2"``.

    Without ``@REVISION``, the head of branch main. See `vrepo.engine.reference` for the syntax.
    """
    repo, revision = split_reference(text, storage_options)
    return repo.readonly_session(ref=revision or "main")
