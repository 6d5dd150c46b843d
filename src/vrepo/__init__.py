"""vrepo: version control for Zarr array data on object storage.

Snapshots, branches, tags, time travel and atomic commits for Zarr v3 data on local disk,
S3 and S3-compatible stores, with no server; any number of uncoordinated writers may commit
to one branch. Start with `Repository.open_or_create(path)`.
"""

from vrepo import _startup  # noqa: F401  (first of all: a quiet Ctrl-C as the command starts)

# isort: split
import importlib
from typing import TYPE_CHECKING, Any

from vrepo.engine.content import ChangeSummary
from vrepo.engine.diff import ArrayChunkDiff, SnapshotDiff
from vrepo.engine.history import History
from vrepo.engine.listing import NodeInfo
from vrepo.engine.merge import MergeResult
from vrepo.engine.opening import open_reference, split_reference
from vrepo.engine.repository import Repository
from vrepo.engine.session import ForkSession, Session
from vrepo.engine.snapshot_info import SnapshotInfo
from vrepo.engine.transaction import Transaction
from vrepo.engine.tree import SnapshotTree, TreeNode
from vrepo.errors import (
    ChunkConflictError,
    ConflictError,
    FormatError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidRefNameError,
    NoChangesError,
    ObjectNotFoundError,
    ReadOnlyError,
    RefError,
    RefExistsError,
    RefNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    StorageError,
    UnsupportedZarrFormatError,
    VirtualContainerError,
    VirtualSourceChangedError,
    VRepoError,
)
from vrepo.format import Author, RefRecord, RepoConfig, VirtualChunkContainer, VirtualRef
from vrepo.storage import (
    FsspecStorage,
    LocalStorage,
    Storage,
    fsspec_storage,
    local_storage,
    memory_storage,
    s3_storage,
    swift_storage,
)
from vrepo.xarray._hook import install as _install_xarray_accessor

if TYPE_CHECKING:
    from vrepo.storage import MemoryStorage, S3Credentials, S3Storage, SwiftStorage, SwiftToken
    from vrepo.zarr.store import VRepoStore

_install_xarray_accessor()  # ds.vrepo, without importing xarray before the user does


def _zarr_store(session: Session) -> Any:
    """`Session.store`: the engine sits below the zarr layer, so the package root plugs it in."""
    from vrepo.zarr.store import VRepoStore

    return VRepoStore(session, read_only=session.read_only)


Session._store_factory = _zarr_store

# names that load on first use, from their modules: the S3 and memory backends
# (`vrepo.storage` loads them when asked), the zarr store and the xarray and dask integrations
_LAZY_NAMES = {
    "GcReport": "vrepo.engine.gc",
    "Usage": "vrepo.engine.usage",
    "ArrayUsage": "vrepo.engine.usage",
    "MemoryStorage": "vrepo.storage",
    "S3Credentials": "vrepo.storage",
    "S3Storage": "vrepo.storage",
    "SwiftStorage": "vrepo.storage",
    "SwiftToken": "vrepo.storage",
    "VRepoStore": "vrepo.zarr.store",
    "import_zarr": "vrepo.importing",
}
_LAZY_MODULES = {"xarray": "vrepo.xarray", "dask": "vrepo.dask"}


def __getattr__(name: str) -> Any:
    """`VRepoStore`, the storage backends but local storage, and the `xarray` / `dask`
    integrations load on first use (zarr, xarray and dask take ~0.5 s to import; the CLI
    needs none of them)."""
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module 'vrepo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "ArrayChunkDiff",
    "ArrayUsage",
    "Author",
    "ChangeSummary",
    "ChunkConflictError",
    "ConflictError",
    "ForkSession",
    "FormatError",
    "FsspecStorage",
    "GcReport",
    "History",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidRefNameError",
    "LocalStorage",
    "MemoryStorage",
    "MergeResult",
    "NoChangesError",
    "NodeInfo",
    "ObjectNotFoundError",
    "ReadOnlyError",
    "RefError",
    "RefExistsError",
    "RefNotFoundError",
    "RefRecord",
    "RepoConfig",
    "Repository",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "S3Credentials",
    "S3Storage",
    "Session",
    "SnapshotDiff",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "SnapshotTree",
    "Storage",
    "StorageError",
    "SwiftStorage",
    "SwiftToken",
    "Transaction",
    "TreeNode",
    "UnsupportedZarrFormatError",
    "Usage",
    "VRepoError",
    "VRepoStore",
    "VirtualChunkContainer",
    "VirtualContainerError",
    "VirtualRef",
    "VirtualSourceChangedError",
    "fsspec_storage",
    "import_zarr",
    "local_storage",
    "memory_storage",
    "open_reference",
    "s3_storage",
    "split_reference",
    "swift_storage",
]
