"""Dask integration: `store` writes dask arrays into a session through forks, one per task,
and merges their change sets up a tree, so the coordinator commits once."""

from vrepo.dask._store import store

__all__ = ["store"]
