"""Turn claims: who may try the next record of a contended branch (an advisory hint).

``turns/branch.<name>/<12 digits>.json`` claims record ``seq`` of the branch (digits as in
ref record keys). Created with put_if_absent by a committer that lost a race; the others wait
for that record instead of racing for it. Safety never depends on a claim: the ref record's
own atomic create decides every commit, and a stale claim only delays, up to its lease.

A claim may carry an `Offer`: the claimant's commit, small and chunk-only, in full (base
snapshot, message, metadata, chunk refs). Whoever holds the turn before it may land the offer
for it (rebased onto the head, checked for conflicts, recorded under the claimant's
operation), so a queue drains in one process's turn instead of one hand-off per commit.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vrepo.format.author import Author
from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.envelope import FileType, RecordFile
from vrepo.format.ids import is_valid_id
from vrepo.format.ref_record import MAX_SEQ, SEQ_DIGITS, validate_ref_name

TURNS_PREFIX = "turns/"


class OfferedChunks(msgspec.Struct, frozen=True):
    """The chunks of one array an offered commit writes (a ref) or deletes (None)."""

    path: str
    coords: list[list[int]]
    refs: list[ChunkRef | None]


class Offer(msgspec.Struct, frozen=True):
    """A commit that changes only chunks, offered for another committer to land (with its
    own author: the lander records the claimant's, not its own)."""

    base_id: str
    message: str
    metadata: dict[str, Any]
    chunks: list[OfferedChunks]
    author: Author | None = None

    def __post_init__(self) -> None:
        if not is_valid_id(self.base_id):
            raise ValueError(f"{self.base_id!r} is not a snapshot id")
        for array in self.chunks:
            if len(array.coords) != len(array.refs):
                raise ValueError(f"offered chunks of {array.path!r}: coords and refs differ")
            if any(c < 0 for coords in array.coords for c in coords):
                raise ValueError(f"offered chunks of {array.path!r}: negative coordinates")
            for ref in array.refs:  # ids name objects under chunks/: nothing else
                if ref is not None and ref.chunk_id is not None and not is_valid_id(ref.chunk_id):
                    raise ValueError(f"{ref.chunk_id!r} is not a chunk id")


class TurnClaim(msgspec.Struct, frozen=True):
    """A claim on the next record of a branch: by which operation, when (microseconds), and
    optionally the commit itself, for the turn before it to land (`Offer`)."""

    branch: str
    seq: int
    operation: str
    claimed_at: int
    offer: Offer | None = None


def turn_dir(branch: str) -> str:
    """The prefix holding a branch's claims, e.g. ``"turns/branch.main/"``."""
    validate_ref_name("branch", branch)
    return f"{TURNS_PREFIX}branch.{branch}/"


def turn_key(branch: str, seq: int) -> str:
    """The key of the claim on record ``seq`` of ``branch`` (newest sorts first)."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"ref sequence number is 0..{MAX_SEQ}, got {seq}")
    return f"{turn_dir(branch)}{MAX_SEQ - seq:0{SEQ_DIGITS}d}.json"


_file = RecordFile(FileType.TURN, TurnClaim, "turn claim")


def encode_turn_claim(claim: TurnClaim) -> bytes:
    """Encode a claim as a JSON record file."""
    return _file.encode(claim)


def decode_turn_claim(data: bytes | bytearray | memoryview, *, what: str) -> TurnClaim:
    """Decode and verify a claim file; `FormatError` if it is corrupt."""
    return _file.decode(data, what=what)
