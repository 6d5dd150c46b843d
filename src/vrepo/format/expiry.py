"""Expiry records: where branch histories skip the snapshots that expiry cut out of them.

Snapshots are immutable, so expiry cannot rewrite a retained snapshot's parent. Instead it
records *cuts*: for each retained snapshot whose parent was expired, the retained ancestor its
history goes on from. ``expiry/<12 digits>.json`` is a write-once sequence like a ref's
records (newest sorts first; created with put_if_absent), and each record holds every cut in
force, so a walk reads only the newest, and garbage collection the newest one older than its
grace period.
"""

from __future__ import annotations

import msgspec

from vrepo.format.envelope import FileType, RecordFile
from vrepo.format.ids import is_valid_id
from vrepo.format.ref_record import MAX_SEQ, SEQ_DIGITS

EXPIRY_PREFIX = "expiry/"


class ExpiryRecord(msgspec.Struct, frozen=True):
    """Record ``seq``: by which operation, when (µs since the epoch), the cut-off it used
    (µs), and every cut in force: ``{snapshot id: the ancestor its history goes on from}``."""

    seq: int
    operation: str
    written_at: int
    older_than: int
    cuts: dict[str, str]

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= MAX_SEQ:
            raise ValueError(f"expiry sequence number is 0..{MAX_SEQ}, got {self.seq}")
        for child, ancestor in self.cuts.items():
            if not (is_valid_id(child) and is_valid_id(ancestor)) or child == ancestor:
                raise ValueError(f"the cut {child!r} -> {ancestor!r} does not name two snapshots")


def expiry_record_key(seq: int) -> str:
    """The key of record ``seq`` (newest sorts first)."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"expiry sequence number is 0..{MAX_SEQ}, got {seq}")
    return f"{EXPIRY_PREFIX}{MAX_SEQ - seq:0{SEQ_DIGITS}d}.json"


_file = RecordFile(FileType.EXPIRY, ExpiryRecord, "expiry record")


def encode_expiry_record(record: ExpiryRecord) -> bytes:
    """Encode an expiry record as a JSON record file."""
    return _file.encode(record)


def decode_expiry_record(data: bytes | bytearray | memoryview, *, what: str) -> ExpiryRecord:
    """Decode and verify an expiry record; `FormatError` if it is corrupt."""
    return _file.decode(data, what=what)
