"""A read-only fsspec file system for the ``vrepo`` protocol: any version, by URL.

``xr.open_zarr("vrepo::data/ocean.vrepo@v1")``, ``zarr.open_group("vrepo::s3://b/r@main~1",
mode="r")`` and ``fsspec.open("vrepo::data/ocean.vrepo@v1/zarr.json")`` read through
`VRepoFileSystem`, registered with fsspec by the ``fsspec.specs`` entry point.
"""

from __future__ import annotations

from vrepo.fsspec._filesystem import VRepoFileSystem

__all__ = ["VRepoFileSystem"]
