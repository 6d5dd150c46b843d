"""Branches and tags as sequences of write-once ref records.

Moving a ref means creating record ``seq + 1`` with `put_if_absent`: of many concurrent movers
exactly one wins. Record keys sort newest-first, so the head is the first key of a one-key
listing. The sequence doubles as the ref's history (reflog): create, commit, reset, delete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from vrepo.engine.create_once import create_once
from vrepo.errors import FormatError, ObjectNotFoundError
from vrepo.format import (
    REFS_PREFIX,
    RefRecord,
    decode_ref_record,
    encode_ref_record,
    new_id,
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


async def read_record(storage: Storage, kind: RefKind, name: str, seq: int) -> RefRecord | None:
    """Record ``seq`` of ``kind.name``, or None if it does not exist (yet)."""
    key = ref_record_key(kind, name, seq)
    try:
        return await _read_record(storage, key)
    except ObjectNotFoundError:
        return None


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
    operation: str,
) -> RefRecord | None:
    """Create the record after ``head``; None if another writer created it first.

    ``operation`` identifies the caller's operation (`new_operation`). When the storage call
    fails, the record may have landed anyway (a timeout or reset after the write, a 5xx after
    success): the key is read back, and a record naming ``operation`` counts as written. One
    that names another operation means the race was lost; no record means the write did not
    happen, and it is tried again (`create_once`).
    """
    record = next_record(head, action, snapshot_id, operation)
    return record if await create_record(storage, head.kind, head.name, record) else None


def next_record(
    head: RefHead, action: RefAction, snapshot_id: str | None, operation: str
) -> RefRecord:
    """The record that would follow ``head`` (not written: see `create_record`)."""
    return RefRecord(
        ref=f"{head.kind}.{head.name}",
        seq=head.next_seq,
        action=action,
        snapshot_id=snapshot_id,
        previous_snapshot_id=head.record.snapshot_id if head.record else None,
        written_at=now_us(),
        operation=operation,
    )


async def create_record(storage: Storage, kind: RefKind, name: str, record: RefRecord) -> bool:
    """Create ``record`` (from `next_record`) exactly once; False if another was there first."""
    key = ref_record_key(kind, name, record.seq)

    def ours(stored: bytes) -> bool:
        return decode_ref_record(stored, what=f"ref record {key}").operation == record.operation

    return await create_once(storage, key, encode_ref_record(record), ours=ours)


async def find_operation(
    storage: Storage,
    kind: RefKind,
    name: str,
    operations: Collection[str],
    after_seq: int,
    head: RefHead | None = None,
) -> RefRecord | None:
    """The newest record of ``kind.name`` after ``after_seq`` written by one of ``operations``.

    For an operation whose last attempt failed without an answer: did it land after all?
    Reads only the records written since ``after_seq`` (newest first); ``head`` is the ref's
    head if the caller has just read it.
    """
    if head is None:
        head = await read_head(storage, kind, name)
    if head.record is None or head.record.seq <= after_seq:
        return None
    keys = await storage.list(ref_dir(kind, name), limit=head.record.seq - after_seq)
    records = await asyncio.gather(*(_read_record(storage, key) for key in keys))
    return next((r for r in records if r.operation in operations), None)


def new_operation() -> str:
    """A fresh operation id, recorded in the ref records the operation writes."""
    return new_id()


async def list_names(storage: Storage, kind: RefKind) -> list[str]:
    """Names of the refs of a kind that currently exist (not deleted), sorted."""
    return sorted(name for k, name in await current_heads(storage, kind) if k == kind)


async def current_heads(
    storage: Storage, kind: RefKind | None = None
) -> dict[tuple[RefKind, str], str]:
    """``{(kind, name): snapshot id}`` of every existing ref (of ``kind``, if given)."""
    heads: dict[tuple[str, str], str] = {}
    prefix = REFS_PREFIX if kind is None else f"{REFS_PREFIX}{kind}."
    for key in await storage.list(prefix):
        ref_kind, _, name = key[len(REFS_PREFIX) :].split("/", 1)[0].partition(".")
        heads.setdefault((ref_kind, name), key)  # keys sort newest-first within each ref
    records = await asyncio.gather(*(_read_record(storage, key) for key in heads.values()))
    return {
        ref: record.snapshot_id  # type: ignore[misc]
        for ref, record in zip(heads, records, strict=True)
        if record.snapshot_id is not None
    }


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
