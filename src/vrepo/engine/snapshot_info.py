"""`SnapshotInfo`: what a history shows of one snapshot, as plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from vrepo.format import Snapshot


def from_us(micros: int) -> dt.datetime:
    """A UTC datetime from microseconds since the epoch (how snapshots store time)."""
    return dt.datetime.fromtimestamp(micros / 1e6, tz=dt.UTC)


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of a history: a snapshot's id, parent, time, message and metadata."""

    id: str
    parent_id: str | None
    written_at: dt.datetime
    message: str
    metadata: dict[str, Any]

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> SnapshotInfo:
        return cls(
            id=snapshot.id,
            parent_id=snapshot.parent_id,
            written_at=from_us(snapshot.created_at),
            message=snapshot.message,
            metadata=dict(snapshot.metadata),
        )
