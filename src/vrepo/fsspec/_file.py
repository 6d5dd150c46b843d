"""The read-only file `VRepoFileSystem.open` returns: fsspec's buffered file over byte ranges."""

from __future__ import annotations

from fsspec.spec import AbstractBufferedFile


class VRepoFile(AbstractBufferedFile):
    """A stored value read in blocks: each block is one ranged read of the key (a chunk's
    bytes are checked as `VRepoStore` checks them)."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start=start, end=end)


__all__ = ["VRepoFile"]
