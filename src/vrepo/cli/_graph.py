"""Text drawing of a history graph, as ``git log --graph`` draws it, for ``vrepo log --graph``.

vrepo snapshots have one parent at most, so the history is a tree growing from the first
snapshot: lanes only ever join (where branches forked), never split.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GraphNode:
    """A snapshot as the graph needs it: id, parent id and time (for ordering)."""

    id: str
    parent_id: str | None
    written_at: float


def topo_order(nodes: Iterable[GraphNode]) -> list[GraphNode]:
    """Newest first, but never a parent before any of its children (clocks can be skewed)."""
    by_id = {n.id: n for n in nodes}
    children = dict.fromkeys(by_id, 0)
    for node in by_id.values():
        if node.parent_id in children:
            children[node.parent_id] += 1
    ready = [(-n.written_at, n.id) for n in by_id.values() if children[n.id] == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        node = by_id[heapq.heappop(ready)[1]]
        ordered.append(node)
        parent = node.parent_id
        if parent in children:
            children[parent] -= 1
            if children[parent] == 0:
                heapq.heappush(ready, (-by_id[parent].written_at, parent))
    return ordered


def draw(nodes: Sequence[GraphNode]) -> list[tuple[str, GraphNode | None]]:
    """Rows of graph art, each with its snapshot (None for the rows that join lanes).

    ``nodes`` must be in `topo_order`. Each lane is a column waiting for one snapshot; the
    lanes waiting for the same snapshot (a fork point) join with ``|/`` just above it.
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
    return rows


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
