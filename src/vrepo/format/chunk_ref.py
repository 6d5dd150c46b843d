"""Where the bytes of one chunk live: a range of a chunk object, or inline bytes."""

from __future__ import annotations

import msgspec

from vrepo.format.ids import is_valid_id

_ZERO_ID = "0" * 20
MAX_CHUNK_LENGTH = 2**32 - 1  # manifests store lengths as uint32


class ChunkRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A reference to one chunk's encoded bytes.

    External: ``length`` bytes at ``offset`` in the object ``chunks/<chunk_id>``.
    Inline: the bytes themselves in ``inline`` (``chunk_id`` is None, ``offset`` 0).
    Build one with `ChunkRef.external` or `ChunkRef.inlined`, which validate.
    """

    chunk_id: str | None
    offset: int
    length: int
    inline: bytes | None = None

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

    @classmethod
    def external(cls, chunk_id: str, length: int, offset: int = 0) -> ChunkRef:
        """A ref to ``length`` bytes at ``offset`` of the chunk object ``chunk_id``."""
        if not is_valid_id(chunk_id) or chunk_id == _ZERO_ID:
            raise ValueError(f"{chunk_id!r} is not a valid chunk id")
        return cls(chunk_id, offset, length)

    @classmethod
    def inlined(cls, data: bytes) -> ChunkRef:
        """A ref that carries the chunk's bytes itself (small chunks live in the manifest)."""
        data = bytes(data)
        return cls(None, 0, len(data), data)

    @property
    def is_inline(self) -> bool:
        """True if the bytes are carried inline rather than stored in a chunk object."""
        return self.inline is not None
