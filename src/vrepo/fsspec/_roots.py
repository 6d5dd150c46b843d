"""Opening what a path of the fsspec view names: a read-only session and its store.

Locations open as everywhere in vrepo (`vrepo.storage.as_storage`): local paths, ``s3://``
and ``swift://`` URLs, configured by storage options. Behind a chained URL of another fsspec
protocol (``vrepo::memory://r.vrepo@v1``, ``gcs://``, ...) the repository is read through
`FsspecStorage` on that filesystem. These calls block (they run on vrepo's event loop), so
the file system calls them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from vrepo.engine.opening import split_reference
from vrepo.engine.repository import Repository
from vrepo.errors import InvalidArgumentError, RepositoryNotFoundError, StorageError
from vrepo.fsspec._paths import Candidate, candidates, check_key
from vrepo.storage import FsspecStorage, Storage, as_storage

if TYPE_CHECKING:
    from vrepo.engine.session import Session
    from vrepo.zarr import VRepoStore

# Protocols whose locations vrepo opens itself; the others go through FsspecStorage.
_LOCAL = ("file", "local")
_NATIVE = {"s3": "s3", "s3a": "s3", "swift": "swift"}


@dataclass(frozen=True)
class Root:
    """An opened repository root: the path text naming it ('' when the file system is pinned
    to one) and the read-only session (so the snapshot) it reads."""

    text: str
    session: Session

    @property
    def store(self) -> VRepoStore:
        return cast("VRepoStore", self.session.store)


@dataclass(frozen=True)
class Opener:
    """How to reach locations: the chained protocol (None: local paths or URLs as vrepo
    takes them), its fsspec options, and vrepo storage options (s3_storage's keywords)."""

    protocol: str | None
    target_options: dict[str, Any]
    storage_options: dict[str, Any]

    @property
    def scheme(self) -> str | None:
        """The scheme prefixed to chained locations (None for local paths)."""
        if self.protocol is None or self.protocol in _LOCAL:
            return None
        return _NATIVE.get(self.protocol, self.protocol)

    def storage(self, location: str) -> Storage:
        """The storage at ``location`` (a path, or a URL of the chained protocol)."""
        if self.protocol is None or self.protocol in _LOCAL or self.protocol in _NATIVE:
            options = {**self.target_options, **self.storage_options} or None
            return as_storage(location, options)
        import fsspec

        fs = fsspec.filesystem(self.protocol, **self.target_options)
        return FsspecStorage(fs, location)

    def open_root(self, candidate: Candidate) -> Root | None:
        """The candidate's repository opened at its revision; None if no repository is there."""
        storage = self.storage(candidate.location)
        if not Repository.exists(storage):
            return None
        repo = Repository.open(storage)
        return Root(candidate.text, repo.readonly_session(ref=candidate.revision or "main"))

    def find_root(self, path: str, known: dict[str, Root]) -> tuple[Root, str]:
        """The root of ``path`` (the shortest prefix naming a repository) and its key.

        Roots found are added to ``known``, by their text. A prefix whose storage refuses
        the probe (`StorageError`: say, no access above one's own S3 prefix) is passed over;
        that error is raised if no deeper prefix holds a repository, otherwise
        `RepositoryNotFoundError`; `InvalidKeyError` when the rest is no key.
        """
        refused: StorageError | None = None
        for candidate in candidates(path, self.scheme):
            root = known.get(candidate.text)
            if root is None:
                try:
                    root = self.open_root(candidate)
                except StorageError as error:  # e.g. no access to a bucket's top: go deeper
                    refused = refused or error
                    continue
                if root is None:
                    continue
                known[candidate.text] = root
            return root, check_key(candidate.rest, path)
        if refused is not None:
            raise refused
        raise RepositoryNotFoundError(
            f"no vrepo repository at {path!r} nor at any folder above it; write "
            "'vrepo::LOCATION[@REVISION][/ZARR_KEY]' where LOCATION is a repository's path or "
            "URL (e.g. 'vrepo::data/ocean.vrepo@v1/zarr.json'), or create one with "
            "vrepo.Repository.create(LOCATION)"
        )


def pinned_root(location: str, ref: str | None, storage_options: dict[str, Any] | None) -> Session:
    """The read-only session ``location`` (``PATH_OR_URL[@REVISION]``) and ``ref`` name."""
    repo, revision = split_reference(location, storage_options or None)
    if revision is not None and ref is not None:
        raise InvalidArgumentError(
            f"the location {location!r} names revision {revision!r} and ref={ref!r} names "
            "another; give the revision one way only"
        )
    return repo.readonly_session(ref=revision or ref or "main")


__all__ = ["Opener", "Root", "pinned_root"]
