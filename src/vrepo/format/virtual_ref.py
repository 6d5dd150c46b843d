"""Virtual chunk refs: bytes of an object outside the repository (a NetCDF or HDF5 file).

A `VirtualRef` names ``length`` bytes at ``offset`` of ``location`` (a URL such as
``file:///data/a.nc``) and the source's ``validator``, taken when the ref was made
(opaque here; ``mtime_ns=...;size=...`` for a local file, ``etag=...`` for an object store,
as `vrepo.storage.sources` makes them): a read checks it, so a source changed since gives an
error, never other bytes.
"""

from __future__ import annotations

import msgspec

from vrepo.format.chunk_ref import MAX_CHUNK_LENGTH


class VirtualRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A reference to one chunk's encoded bytes inside an object the repository does not own."""

    location: str
    offset: int
    length: int
    validator: str

    def __post_init__(self) -> None:
        if self.offset < 0 or not 0 <= self.length <= MAX_CHUNK_LENGTH:
            raise ValueError(
                f"a VirtualRef needs offset >= 0 and 0 <= length < 4 GiB, got offset "
                f"{self.offset}, length {self.length}"
            )

    # what code written for `ChunkRef` asks of any ref: a virtual one is neither kind
    @property
    def chunk_id(self) -> None:
        """Always None: the bytes are in no ``chunks/`` object."""
        return None

    @property
    def inline(self) -> None:
        """Always None: the bytes are not carried inline."""
        return None

    @property
    def checksum(self) -> None:
        """Always None: the validator stands in for a checksum."""
        return None

    @property
    def is_inline(self) -> bool:
        """Always False."""
        return False
