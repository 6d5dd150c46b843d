"""Checking chunk bytes read from storage against the ref that points to them.

A ref records each stored chunk's length and (from format version 2 on) its CRC-32C. A read
of the whole chunk is checked against both (the checksum unless the caller turned that off);
a read of part of it can only be checked for length: exactly the bytes asked for, clipped to
the chunk's recorded length. Inline chunks are not checked here: the checksum of the manifest
or snapshot that carries them covered them when it was read.
"""

from __future__ import annotations

from vrepo.errors import FormatError
from vrepo.format import ChunkRef, crc32c

_SETTING = "read.verify-checksums"


def check_chunk_bytes(
    data: bytes, *, ref: ChunkRef, start: int, end: int, verify_checksum: bool, what: object
) -> None:
    """Raise `FormatError` unless ``data`` is bytes ``[start, end)`` of the chunk ``ref`` names.

    ``start`` and ``end`` are already clipped to ``ref.length``; ``str(what)`` names the chunk
    for people, e.g. ``"chunk (0, 1) of array /temp"`` (made only for an error message).
    """
    if len(data) != end - start:
        if (start, end) == (0, ref.length):
            problem = f"storage returned {len(data)} bytes, its ref records {ref.length}"
        else:
            problem = (
                f"storage returned {len(data)} bytes for bytes [{start}, {end}) of its {ref.length}"
            )
        raise _corrupt(ref, what, problem, hint="")
    if verify_checksum and ref.checksum is not None and (start, end) == (0, ref.length):
        actual = crc32c(data)
        if actual != ref.checksum:
            raise _corrupt(
                ref,
                what,
                f"its bytes have CRC-32C {actual:08x} where its ref records {ref.checksum:08x}",
                hint=(
                    " To read the damaged bytes anyway, read through a store that skips "
                    "checksums: vrepo.VRepoStore(session, verify_checksums=False), or set "
                    f"{_SETTING!r} to false (read when a session's store is made)."
                ),
            )


def _corrupt(ref: ChunkRef, what: object, problem: str, *, hint: str) -> FormatError:
    return FormatError(
        f"{what} is corrupt: {problem}. The object chunks/{ref.chunk_id} was truncated or "
        f"damaged after it was written; restore it from a copy of the repository, or write "
        f"that chunk again and commit.{hint}"
    )
