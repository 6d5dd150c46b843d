"""Turn claims: who may try the next record of a contended branch (an advisory hint).

``turns/branch.<name>/<12 digits>.json`` claims record ``seq`` of the branch (digits as in
ref record keys). Created with put_if_absent by a committer that lost a race; the others wait
for that record instead of racing for it. Safety never depends on a claim: the ref record's
own atomic create decides every commit, and a stale claim only delays, up to its lease.
"""

from __future__ import annotations

import msgspec

from vrepo.errors import FormatError
from vrepo.format.envelope import FileType, decode_json_record, encode_json_record
from vrepo.format.ref_record import MAX_SEQ, SEQ_DIGITS, validate_ref_name

TURNS_PREFIX = "turns/"


class TurnClaim(msgspec.Struct, frozen=True):
    """A claim on the next record of a branch: by which operation, when (microseconds)."""

    branch: str
    seq: int
    operation: str
    claimed_at: int


def turn_dir(branch: str) -> str:
    """The prefix holding a branch's claims, e.g. ``"turns/branch.main/"``."""
    validate_ref_name("branch", branch)
    return f"{TURNS_PREFIX}branch.{branch}/"


def turn_key(branch: str, seq: int) -> str:
    """The key of the claim on record ``seq`` of ``branch`` (newest sorts first)."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"ref sequence number is 0..{MAX_SEQ}, got {seq}")
    return f"{turn_dir(branch)}{MAX_SEQ - seq:0{SEQ_DIGITS}d}.json"


def encode_turn_claim(claim: TurnClaim) -> bytes:
    """Encode a claim as a JSON record file."""
    return encode_json_record(FileType.TURN, msgspec.to_builtins(claim))


def decode_turn_claim(data: bytes | bytearray | memoryview, *, what: str) -> TurnClaim:
    """Decode and verify a claim file; `FormatError` if it is corrupt."""
    body = decode_json_record(data, FileType.TURN, what=what)
    try:
        return msgspec.convert(body, TurnClaim)
    except msgspec.ValidationError as e:
        raise FormatError(f"{what} has an invalid turn claim ({e}); the file is corrupt") from e
