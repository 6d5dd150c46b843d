"""The zarr layer: `VRepoStore`, a `zarr.abc.store.Store` over a vrepo session."""

from vrepo.zarr.store import VRepoStore

__all__ = ["VRepoStore"]
