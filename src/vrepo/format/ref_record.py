"""Ref records: branches and tags as sequences of write-once JSON records.

Record ``seq`` of a ref lives at ``refs/<kind>.<name>/<MAX_SEQ - seq>.json`` (12 digits), so
an ascending listing of the ref's directory returns the newest record first.
"""

from __future__ import annotations

import re

import msgspec

from vrepo.errors import FormatError, InvalidRefNameError
from vrepo.format.envelope import FileType, RecordFile

MAX_SEQ = 10**12 - 1
SEQ_DIGITS = 12
REF_KINDS = ("branch", "tag")
REF_ACTIONS = ("create", "commit", "reset", "delete", "amend")
REFS_PREFIX = "refs/"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RECORD_RE = re.compile(r"[0-9]{12}\.json")


class RefRecord(msgspec.Struct, frozen=True):
    """One write-once record of a ref ("branch.main", "tag.v1").

    ``snapshot_id`` None means the ref is deleted as of this record. ``written_at`` is
    microseconds since the Unix epoch (UTC). ``operation`` is the random id of the operation
    that wrote the record (a commit, with all its retries, or a tag or branch change), so a
    writer whose storage call failed after the record landed recognises its own write;
    records written before vrepo recorded it have None.
    """

    ref: str
    seq: int
    action: str
    snapshot_id: str | None
    previous_snapshot_id: str | None
    written_at: int
    operation: str | None = None

    def __post_init__(self) -> None:
        if self.action not in REF_ACTIONS:
            raise ValueError(f"ref action is one of {', '.join(REF_ACTIONS)}; got {self.action!r}")
        if not 0 <= self.seq <= MAX_SEQ:
            raise ValueError(f"ref sequence number is 0..{MAX_SEQ}, got {self.seq}")


def _check_kind(kind: str) -> None:
    if kind not in REF_KINDS:
        raise ValueError(f"ref kind is 'branch' or 'tag', got {kind!r}")


def validate_ref_name(kind: str, name: str) -> str:
    """Return `name` if it is a valid branch or tag name, else raise `InvalidRefNameError`."""
    _check_kind(kind)
    if (
        not isinstance(name, str)
        or not _NAME_RE.fullmatch(name)
        or name.endswith(".json")
        or ".." in name
    ):
        raise InvalidRefNameError(
            f"invalid {kind} name {name!r}: use 1 to 128 characters from A-Z, a-z, 0-9, '.', "
            f"'_' and '-', starting with a letter or digit, without '..' and not ending in '.json'"
        )
    return name


def ref_dir(kind: str, name: str) -> str:
    """The storage prefix holding the records of a ref, e.g. ``"refs/branch.main/"``."""
    validate_ref_name(kind, name)
    return f"{REFS_PREFIX}{kind}.{name}/"


def ref_record_key(kind: str, name: str, seq: int) -> str:
    """The storage key of record `seq` of a ref (newest sorts first)."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"ref sequence number is 0..{MAX_SEQ}, got {seq}")
    return f"{ref_dir(kind, name)}{MAX_SEQ - seq:0{SEQ_DIGITS}d}.json"


def seq_from_record_key(key: str) -> int:
    """The sequence number of a record key (or its last path component); `FormatError` on junk."""
    base = key.rsplit("/", 1)[-1]
    if not _RECORD_RE.fullmatch(base):
        raise FormatError(
            f"{key!r} is not a ref record key (expected <12 digits>.json); remove the stray "
            f"object from the refs directory"
        )
    return MAX_SEQ - int(base[:SEQ_DIGITS])


def parse_ref(ref: str) -> tuple[str, str]:
    """Split ``"branch.main"`` into ``("branch", "main")``, validating both parts."""
    kind, sep, name = ref.partition(".")
    if not sep or kind not in REF_KINDS:
        raise InvalidRefNameError(f"{ref!r} is not a ref: expected 'branch.<name>' or 'tag.<name>'")
    return kind, validate_ref_name(kind, name)


_file = RecordFile(FileType.REF, RefRecord, "ref record")


def encode_ref_record(r: RefRecord) -> bytes:
    """Encode a ref record as a JSON record file."""
    return _file.encode(r)


def decode_ref_record(data: bytes | bytearray | memoryview, *, what: str) -> RefRecord:
    """Decode and verify a ref record file; `FormatError` if it is corrupt."""
    return _file.decode(data, what=what)
