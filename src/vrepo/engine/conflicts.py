"""Conflict detection between a session's changes and the commits that won the race.

Both sides are described by transaction logs (ours is built in memory from the session), so
the comparison is symmetric: chunks written by both, metadata changed by both, a node created
by both, or a node one side deleted while the other changed it. Changes that end in identical
metadata (two writers creating the same group) are no conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vrepo.engine._rows import common_rows
from vrepo.engine.node import NodeMetadata
from vrepo.format import Snapshot, TransactionLog

ConflictKind = Literal[
    "chunks",
    "object",
    "metadata",
    "node_created_twice",
    "update_of_deleted_node",
    "delete_of_updated_node",
    "appended_on_both",
]
Solver = Literal["fail", "ours", "theirs"]
SOLVERS: tuple[Solver, ...] = ("fail", "ours", "theirs")

_EXPLAIN = {
    "chunks": "chunks written by both",
    "object": "object written by both",
    "metadata": "metadata changed by both",
    "node_created_twice": "created by both, differently",
    "update_of_deleted_node": "changed here, but deleted by the other commit",
    "delete_of_updated_node": "deleted here, but changed by the other commit",
    "appended_on_both": "appended to along one dimension on both branches",
}


@dataclass(frozen=True)
class Conflict:
    """One conflict: its kind, the node path (or object key), for chunks their coordinates,
    and a detail where the kind has one (the dimension of ``appended_on_both``)."""

    kind: ConflictKind
    path: str
    chunks: tuple[tuple[int, ...], ...] = field(default=())
    detail: str = ""

    @property
    def solvable(self) -> bool:
        """Whether a solver may settle it (chunk and object data; never metadata)."""
        return self.kind in ("chunks", "object")

    def __str__(self) -> str:
        text = f"{self.path}: {_EXPLAIN[self.kind]}"
        if self.kind == "appended_on_both":
            text += (
                f" ({self.detail!r}): the two appends would overlap; merge without one of"
                " them, then append its data again after the other's"
            )
        if self.chunks:
            shown = ", ".join(map(str, self.chunks[:8]))
            more = f" and {len(self.chunks) - 8} more" if len(self.chunks) > 8 else ""
            text += f" ({len(self.chunks)}: {shown}{more})"
        return text


@dataclass
class _Side:
    """One side's changes, merged over one or more transaction logs."""

    created: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    chunks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    objects: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, logs: Iterable[TransactionLog]) -> _Side:
        side = cls()
        for log in logs:
            side.created.update(log.new_groups, log.new_arrays)
            side.updated.update(log.updated_metadata)
            side.deleted.update(log.deleted_nodes)
            side.objects.update(log.loose_keys)
            for changes in log.chunks:
                side.chunks.setdefault(changes.path, []).append(changes.coords_array())
        return side

    def touched(self) -> set[str]:
        return self.created | self.updated | set(self.chunks)


def find_conflicts(
    ours: TransactionLog,
    our_nodes: dict[str, NodeMetadata],
    theirs: Iterable[TransactionLog],
    their_head: Snapshot,
) -> list[Conflict]:
    """Every conflict between our changes and theirs, sorted by path.

    ``our_nodes`` holds the metadata we wrote, ``their_head`` the snapshot the other commits
    produced, so metadata both sides set to the same bytes is not reported.
    """
    mine, other = _Side.of([ours]), _Side.of(theirs)

    def same_metadata(path: str) -> bool:
        node = their_head.node(path)
        meta = our_nodes.get(path)
        return node is not None and meta is not None and node.zarr_json == meta.zarr_json

    found: list[Conflict] = []
    for path in sorted(mine.created & other.created):
        if not same_metadata(path):
            found.append(Conflict("node_created_twice", path))
    for path in sorted(mine.updated & other.updated):
        if not same_metadata(path):
            found.append(Conflict("metadata", path))
    for path in sorted(mine.touched() & (other.deleted - other.created)):
        found.append(Conflict("update_of_deleted_node", path))
    for path in sorted((mine.deleted - mine.created) & other.touched()):
        found.append(Conflict("delete_of_updated_node", path))
    for path in sorted(mine.chunks.keys() & other.chunks.keys()):
        both = common_rows(np.concatenate(mine.chunks[path]), np.concatenate(other.chunks[path]))
        if len(both):
            found.append(Conflict("chunks", path, tuple(tuple(map(int, row)) for row in both)))
    found.extend(Conflict("object", key) for key in sorted(mine.objects & other.objects))
    return found
