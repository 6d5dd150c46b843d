"""Importing existing Zarr stores: `import_zarr` copies one (format 3, or format 2 converted
to format 3) into a repository as one commit, chunk bytes as they are."""

from vrepo.importing._importer import import_zarr

__all__ = ["import_zarr"]
