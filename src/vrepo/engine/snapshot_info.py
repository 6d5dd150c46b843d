"""`SnapshotInfo`: what a history shows of one snapshot, as plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from vrepo.errors import InvalidArgumentError
from vrepo.format import Author, HistoryEntry, Snapshot


def to_us(when: dt.datetime, name: str = "as_of") -> int:
    """A user's aware datetime as µs since the epoch; `InvalidArgumentError` naming ``name``
    (the argument it came as) for anything else."""
    if not isinstance(when, dt.datetime):
        raise InvalidArgumentError(f"{name} must be a datetime, not {type(when).__name__}")
    if when.tzinfo is None:
        raise InvalidArgumentError(
            f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)); a naive "
            "datetime is ambiguous"
        )
    return int(when.timestamp() * 1_000_000)


def from_us(micros: int) -> dt.datetime:
    """A UTC datetime from microseconds since the epoch (how snapshots store time)."""
    return dt.datetime.fromtimestamp(micros / 1e6, tz=dt.UTC)


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of a history: a snapshot's id, parent, time, message, metadata and author.

    ``author`` is a `vrepo.Author` (``author.name``, ``author.email``; ``str(author)`` is
    ``"Name <email>"``), or None for a snapshot written before vrepo recorded authors.
    ``merged_parent_ids`` are a merge commit's other parents (the merged branches' heads);
    ``parent_ids`` lists every parent, ``parent_id`` first.
    """

    id: str
    parent_id: str | None
    written_at: dt.datetime
    message: str
    metadata: dict[str, Any]
    author: Author | None = None
    merged_parent_ids: tuple[str, ...] = ()

    @property
    def parent_ids(self) -> tuple[str, ...]:
        """Every parent: the first (``parent_id``), then the merged ones; () for the first."""
        first = () if self.parent_id is None else (self.parent_id,)
        return (*first, *self.merged_parent_ids)

    @property
    def is_merge(self) -> bool:
        """Whether this snapshot merged other branches (it has several parents)."""
        return bool(self.merged_parent_ids)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> SnapshotInfo:
        return cls.from_entry(snapshot)

    @classmethod
    def from_entry(cls, entry: HistoryEntry | Snapshot) -> SnapshotInfo:
        """From a history index entry (or a snapshot: it has the same fields)."""
        return cls(
            id=entry.id,
            parent_id=entry.parent_id,
            written_at=from_us(entry.created_at),
            message=entry.message,
            metadata=dict(entry.metadata),
            author=entry.author,
            merged_parent_ids=tuple(entry.merged_parents),
        )
