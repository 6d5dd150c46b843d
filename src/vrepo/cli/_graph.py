r"""Text drawing of a history graph, as ``git log --graph`` draws it, for ``vrepo log --graph``.

A snapshot has one parent, or several when it merged branches: lanes join where branches
forked (``|/``) and split where a merge commit's other parents go on (``|\``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GraphNode:
    """A snapshot as the graph needs it: id, parent id, time (for ordering) and the other
    parents of a merge commit."""

    id: str
    parent_id: str | None
    written_at: float
    merged_ids: tuple[str, ...] = ()

    @property
    def parent_ids(self) -> tuple[str, ...]:
        first = () if self.parent_id is None else (self.parent_id,)
        return (*first, *self.merged_ids)


def topo_order(nodes: Iterable[GraphNode]) -> list[GraphNode]:
    """Newest first, but never a parent before any of its children (clocks can be skewed)."""
    by_id = {n.id: n for n in nodes}
    children = dict.fromkeys(by_id, 0)
    for node in by_id.values():
        for parent in dict.fromkeys(node.parent_ids):
            if parent in children:
                children[parent] += 1
    ready = [(-n.written_at, n.id) for n in by_id.values() if children[n.id] == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        node = by_id[heapq.heappop(ready)[1]]
        ordered.append(node)
        for parent in dict.fromkeys(node.parent_ids):
            if parent in children:
                children[parent] -= 1
                if children[parent] == 0:
                    heapq.heappush(ready, (-by_id[parent].written_at, parent))
    return ordered


def draw(nodes: Sequence[GraphNode]) -> list[tuple[str, GraphNode | None]]:
    r"""Rows of graph art, each with its snapshot (None for the rows that join lanes).

    ``nodes`` must be in `topo_order`. Each lane is a column waiting for one snapshot; the
    lanes waiting for the same snapshot (a fork point) join with ``|/`` just above it, and
    a merge commit opens a lane for each other parent with ``|\`` just below it.
    """
    lanes: list[str | None] = []
    rows: list[tuple[str, GraphNode | None]] = []
    for node in nodes:
        hits = [i for i, waiting in enumerate(lanes) if waiting == node.id]
        if hits:
            col = hits[0]
        else:
            lanes.append(node.id)
            col = len(lanes) - 1
        for j in reversed(hits[1:]):
            rows.append((_join_row(len(lanes), col, j), None))
            del lanes[j]
        rows.append((" ".join("*" if i == col else "|" for i in range(len(lanes))), node))
        if node.parent_id is None:
            if col < len(lanes) - 1:
                rows.append((_join_row(len(lanes), col, col, drop=True), None))
            del lanes[col]
        else:
            lanes[col] = node.parent_id
            for k, merged in enumerate(node.merged_ids):
                lanes.insert(col + 1 + k, merged)
                rows.append((_split_row(len(lanes), col + k), None))
    return rows


def _split_row(n: int, lane: int) -> str:
    """A new lane opens right of lane ``lane``; lanes right of it shift one column right."""
    cells = [" "] * (2 * n - 1)
    for i in range(lane + 1):
        cells[2 * i] = "|"
    for i in range(lane + 1, n):
        cells[2 * i - 1] = "\\"
    return "".join(cells).rstrip()


def _join_row(n: int, into: int, lane: int, *, drop: bool = False) -> str:
    """Lane ``lane`` bends into lane ``into`` (or, with ``drop``, ends); lanes right of it
    shift one column left."""
    cells = [" "] * (2 * n - 1)
    for i in range(lane):
        cells[2 * i] = "|"
    for i in range(lane + 1, n):
        cells[2 * i - 1] = "/"
    if not drop:
        cells[2 * lane - 1] = "/"
        for k in range(2 * into + 1, 2 * lane - 1):
            if cells[k] == " ":
                cells[k] = "_"
    return "".join(cells).rstrip()


__all__ = ["GraphNode", "draw", "topo_order"]
