"""Where the bytes of one chunk live: a range of a chunk object, or inline bytes."""

from __future__ import annotations

import msgspec

from vrepo.format.checksum import is_checksum
from vrepo.format.ids import is_valid_id

_ZERO_ID = "0" * 20
MAX_CHUNK_LENGTH = 2**32 - 1  # manifests store lengths as uint32


class ChunkRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A reference to one chunk's encoded bytes.

    External: ``length`` bytes at ``offset`` in the object ``chunks/<chunk_id>``, whose
    CRC-32C is ``checksum`` (None for refs written before vrepo recorded it: format version 1).
    Inline: the bytes themselves in ``inline`` (``chunk_id`` is None, ``offset`` 0, no
    ``checksum``: the manifest's or snapshot's own checksum covers them).
    Build one with `ChunkRef.external` or `ChunkRef.inlined`, which validate.
    """

    chunk_id: str | None
    offset: int
    length: int
    inline: bytes | None = None
    checksum: int | None = None

    def __post_init__(self) -> None:
        # cheap structural checks, also applied when decoding (ids are checked by `external`)
        if (self.chunk_id is None) == (self.inline is None):
            raise ValueError("a ChunkRef has exactly one of chunk_id and inline")
        if self.offset < 0 or not 0 <= self.length <= MAX_CHUNK_LENGTH:
            raise ValueError(
                f"a ChunkRef needs offset >= 0 and 0 <= length < 4 GiB, got offset "
                f"{self.offset}, length {self.length}"
            )
        if self.inline is not None and (self.offset != 0 or self.length != len(self.inline)):
            raise ValueError("an inline ChunkRef has offset 0 and length == len(inline)")
        if self.checksum is not None and (
            self.inline is not None or not is_checksum(self.checksum)
        ):
            raise ValueError(
                f"a ChunkRef's checksum is a CRC-32C (0 <= c < 2**32) of a stored chunk, got "
                f"{self.checksum!r}{' for inline bytes' if self.inline is not None else ''}"
            )

    @classmethod
    def external(
        cls, chunk_id: str, length: int, offset: int = 0, checksum: int | None = None
    ) -> ChunkRef:
        """A ref to ``length`` bytes at ``offset`` of the chunk object ``chunk_id``, whose
        CRC-32C is ``checksum`` (None: unknown, the bytes are then only checked for length)."""
        if not is_valid_id(chunk_id) or chunk_id == _ZERO_ID:
            raise ValueError(f"{chunk_id!r} is not a valid chunk id")
        return cls(chunk_id, offset, length, None, checksum)

    @classmethod
    def inlined(cls, data: bytes) -> ChunkRef:
        """A ref that carries the chunk's bytes itself (small chunks live in the manifest)."""
        data = bytes(data)
        return cls(None, 0, len(data), data)

    @property
    def is_inline(self) -> bool:
        """True if the bytes are carried inline rather than stored in a chunk object."""
        return self.inline is not None
