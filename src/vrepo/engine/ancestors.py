"""Every ancestor of a snapshot, across the lines that merge commits joined, and merge bases.

A snapshot's first-parent line is read from the history index (`iter_entries`); a merge
commit's other parents (`Snapshot.merged_parents`) start further lines. The walk interleaves
all lines newest first (by commit time) and yields each snapshot once: a line stops where it
reaches a snapshot another line has shown, as that line goes on from there.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping

from vrepo._sync import run_sync
from vrepo.engine.history_cuts import current_cuts
from vrepo.engine.history_index import iter_entries
from vrepo.engine.objects import ObjectIO
from vrepo.errors import SnapshotNotFoundError
from vrepo.format import HistoryEntry


def iter_ancestors(
    objects: ObjectIO, start: str, cuts: Mapping[str, str] | None = None, *, whole: bool = True
) -> Iterator[HistoryEntry]:
    """``start`` and all its ancestors through every parent, newest first, each once
    (``whole``: with metadata the index left out, as `iter_entries`).

    Without merges this is `iter_entries` exactly. A merged line whose snapshots were
    collected (only possible in a repository a vrepo without merges collected) ends there.
    """
    if cuts is None:
        cuts = run_sync(current_cuts(objects))
    seen: set[str] = set()
    order = itertools.count()
    lines: list[tuple[int, int, HistoryEntry, Iterator[HistoryEntry]]] = []

    def add_line(root: str, required: bool) -> None:
        line = iter_entries(objects, root, cuts, whole=whole)
        try:
            entry = next(line)
        except SnapshotNotFoundError:
            if required:
                raise
            return
        heapq.heappush(lines, (-entry.created_at, next(order), entry, line))

    add_line(start, True)
    while lines:
        _, _, entry, line = heapq.heappop(lines)
        if entry.id in seen:
            continue  # another line showed it and goes on from it
        seen.add(entry.id)
        yield entry
        for merged in entry.merged_parents:
            if merged not in seen:
                add_line(merged, False)
        following = next(line, None)
        if following is not None:
            heapq.heappush(lines, (-following.created_at, next(order), following, line))


def merge_base(objects: ObjectIO, a: str, b: str) -> str | None:
    """The newest common ancestor of ``a`` and ``b`` (either itself included), or None when
    their histories never meet. Both histories are walked together, newest first, so the
    walk stops at the first snapshot both reach rather than reading either to its start."""
    cuts = run_sync(current_cuts(objects))
    walks = [iter_ancestors(objects, x, cuts, whole=False) for x in (a, b)]
    reached: list[set[str]] = [set(), set()]
    heads = [next(walk, None) for walk in walks]
    while heads[0] is not None or heads[1] is not None:
        side = _newer(heads[0], heads[1])
        entry = heads[side]
        assert entry is not None
        if entry.id in reached[1 - side]:
            return entry.id
        reached[side].add(entry.id)
        heads[side] = next(walks[side], None)
    return None


def _newer(x: HistoryEntry | None, y: HistoryEntry | None) -> int:
    if y is None:
        return 0
    if x is None:
        return 1
    return 0 if x.created_at >= y.created_at else 1


__all__ = ["iter_ancestors", "merge_base"]
