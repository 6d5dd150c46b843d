"""Branches and tags as sequences of write-once ref records.

Moving a ref means creating record ``seq + 1`` with `put_if_absent`: of many concurrent movers
exactly one wins. Record keys sort newest-first, so the head is the first key of a one-key
listing. The sequence doubles as the ref's history (reflog): create, commit, reset, delete.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from vrepo.errors import FormatError
from vrepo.format import (
    RefRecord,
    decode_ref_record,
    encode_ref_record,
    ref_dir,
    ref_record_key,
    validate_ref_name,
)
from vrepo.storage import Storage

RefKind = Literal["branch", "tag"]
RefAction = Literal["create", "commit", "reset", "delete", "amend"]


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class RefHead:
    """The newest record of a ref, or the fact that it has none."""

    kind: RefKind
    name: str
    record: RefRecord | None

    @property
    def exists(self) -> bool:
        """Whether the ref currently points at a snapshot (it is neither absent nor deleted)."""
        return self.record is not None and self.record.snapshot_id is not None

    @property
    def next_seq(self) -> int:
        return 0 if self.record is None else self.record.seq + 1


async def _read_record(storage: Storage, key: str) -> RefRecord:
    return decode_ref_record(await storage.get(key), what=f"ref record {key}")


async def read_head(storage: Storage, kind: RefKind, name: str) -> RefHead:
    """The current head record of ``kind.name`` (one listing of one key, one read)."""
    validate_ref_name(kind, name)
    keys = await storage.list(ref_dir(kind, name), limit=1)
    if not keys:
        return RefHead(kind, name, None)
    return RefHead(kind, name, await _read_record(storage, keys[0]))


async def write_record(
    storage: Storage,
    head: RefHead,
    action: RefAction,
    snapshot_id: str | None,
) -> RefRecord | None:
    """Create the record after ``head``; None if another writer created it first."""
    previous = head.record.snapshot_id if head.record else None
    record = RefRecord(
        ref=f"{head.kind}.{head.name}",
        seq=head.next_seq,
        action=action,
        snapshot_id=snapshot_id,
        previous_snapshot_id=previous,
        written_at=now_us(),
    )
    key = ref_record_key(head.kind, head.name, record.seq)
    created = await storage.put_if_absent(key, encode_ref_record(record))
    return record if created else None


async def list_names(storage: Storage, kind: RefKind) -> list[str]:
    """Names of the refs of a kind that currently exist (not deleted), sorted."""
    heads: dict[str, str] = {}
    prefix = f"refs/{kind}."
    for key in await storage.list(prefix):
        name = key[len(prefix) :].split("/", 1)[0]
        heads.setdefault(name, key)  # keys sort newest-first within each ref
    records = await asyncio.gather(*(_read_record(storage, key) for key in heads.values()))
    return sorted(name for name, record in zip(heads, records, strict=True) if record.snapshot_id)


async def history(storage: Storage, kind: RefKind, name: str) -> list[RefRecord]:
    """Every record of a ref, newest first: its reflog."""
    validate_ref_name(kind, name)
    keys = await storage.list(ref_dir(kind, name))
    records = await asyncio.gather(*(_read_record(storage, key) for key in keys))
    for expected_seq, record in enumerate(reversed(records)):
        if record.seq != expected_seq:
            raise FormatError(
                f"{kind} {name!r} has a gap in its ref records at seq {expected_seq}; "
                "the repository's refs/ folder was edited by hand"
            )
    return records
