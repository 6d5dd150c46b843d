"""The exception tree of vrepo: everything raised on purpose derives from `VRepoError`.

Each message says what was wrong and what to do about it. The tree sits below every layer,
so storage, format and engine code can all raise from it.

Where the advice names Python API (``reset_branch``, ``Repository.open``,
``vrepo.config.set``), the error also carries it as a `Hint`, so that another interface
(the ``vrepo`` command) can give the same advice in its own words: see `VRepoError.advised`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True)
class Hint:
    """What an error advises, in words of no interface: `kind` names the advice (one of
    `HINT_KINDS`), `fact` is the message without it, and `params` what the advice refers to
    (a branch name, a storage URL, a configuration key)."""

    kind: str
    fact: str
    params: dict[str, str] = field(default_factory=dict)


HINT_KINDS = {
    "reset-branch": "move the branch (params: name)",
    "open-repository": "open the repository that is there (params: url)",
    "create-repository": "create a repository there (params: url)",
    "set-config": "change the configuration key (params: key, env_var, path)",
    "s3-credentials": "give S3 credentials or ask for anonymous access",
    "list-snapshots": "look up snapshot ids in the history",
    "import-elsewhere": "import into another group or branch",
    "settle-merge": "settle a merge's conflicts by a strategy, or make the branches agree",
}


class VRepoError(Exception):
    """Base class of every error vrepo raises on purpose.

    `hint` is None, or the advice the message ends with, as a `Hint` (see `advised`).
    """

    hint: Hint | None = None

    @classmethod
    def advised(cls, fact: str, advice: str, kind: str, **params: str) -> Self:
        """An error whose message is ``"{fact}; {advice}"`` (the Python way), its `hint` the
        same advice by `kind` and `params`, for interfaces that say it their own way."""
        error = cls(f"{fact}; {advice}")
        error.hint = Hint(kind, fact, params)
        return error


# --- storage ---------------------------------------------------------------------------


class StorageError(VRepoError):
    """Reading or writing the underlying storage failed."""


class ObjectNotFoundError(StorageError):
    """A storage key that was expected to exist does not."""

    def __init__(self, key: str, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"no object at storage key {key!r}")


class InvalidKeyError(StorageError, ValueError):
    """A storage or zarr key is malformed or would escape the repository root."""


# --- format ----------------------------------------------------------------------------


class FormatError(VRepoError):
    """A stored file is corrupt, truncated, of the wrong type, or of an unknown version."""


class UnsupportedZarrFormatError(VRepoError, ValueError):
    """Something other than Zarr format 3 was written (vrepo stores Zarr v3 only)."""


# --- repositories and references -------------------------------------------------------


class InvalidArgumentError(VRepoError, ValueError):
    """An argument has the wrong type or value (the message says which and what to pass)."""


class RepositoryNotFoundError(VRepoError):
    """No repository exists at the given location."""


class RepositoryExistsError(VRepoError):
    """A repository already exists where a new one was to be created."""


class RefError(VRepoError):
    """Base class of branch and tag errors."""


class RefNotFoundError(RefError):
    """A branch, tag or snapshot named by the caller does not exist."""


class RefExistsError(RefError):
    """A branch or tag of that name exists (or, for tags, once existed)."""


class InvalidRefNameError(RefError, ValueError):
    """A branch or tag name uses characters or a shape vrepo does not allow."""


class SnapshotNotFoundError(RefNotFoundError):
    """No snapshot with the given id exists in the repository."""


# --- sessions and commits ----------------------------------------------------------------


class ReadOnlyError(VRepoError):
    """A write was attempted through a read-only session or store."""


class NoChangesError(VRepoError):
    """A commit was requested but the session holds no changes."""


class ConflictError(VRepoError):
    """The branch moved since the session started and the changes could not be applied.

    `conflicts` lists each conflict found (empty when the cause is only that the branch
    moved and automatic rebase is not available).
    """

    def __init__(self, message: str, conflicts: list[object] | None = None) -> None:
        self.conflicts = list(conflicts or [])
        super().__init__(message)


class ChunkConflictError(ConflictError):
    """Two change sets wrote the same chunk of the same array."""


# --- virtual refs ----------------------------------------------------------------------


class VirtualContainerError(VRepoError):
    """A virtual ref names a location outside every virtual chunk container the repository's
    configuration allows (refused on write and on read)."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        super().__init__(message)


class VirtualSourceChangedError(VRepoError):
    """The object a virtual ref points into changed after the ref was made (its validator,
    mtime and size or ETag, differs), so its bytes are no longer the chunk's."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        super().__init__(message)


__all__ = [
    "HINT_KINDS",
    "ChunkConflictError",
    "ConflictError",
    "FormatError",
    "Hint",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidRefNameError",
    "NoChangesError",
    "ObjectNotFoundError",
    "ReadOnlyError",
    "RefError",
    "RefExistsError",
    "RefNotFoundError",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "SnapshotNotFoundError",
    "StorageError",
    "UnsupportedZarrFormatError",
    "VRepoError",
    "VirtualContainerError",
    "VirtualSourceChangedError",
]
