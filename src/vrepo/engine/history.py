"""`History`: the lazy, newest-first iterator `Repository.ancestry` returns.

It fetches snapshots only as they are iterated (a history can be long), and shows its first
entries as a table in notebooks without using them up.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from vrepo.engine._html import COUNT_LIMIT, history_html
from vrepo.engine.ancestors import iter_ancestors

if TYPE_CHECKING:
    from vrepo.engine.objects import ObjectIO
    from vrepo.engine.snapshot_info import SnapshotInfo

DISPLAY_LIMIT = 20


def count_snapshots(objects: ObjectIO, start: str, limit: int = COUNT_LIMIT) -> int:
    """How many snapshots the history from ``start`` has, through every parent (expiry's
    cuts applied), counting at most ``limit`` + 1."""
    walk = iter_ancestors(objects, start, whole=False)  # no snapshot read for metadata
    return sum(1 for _ in itertools.islice(walk, limit + 1))


class History(Iterator["SnapshotInfo"]):
    """Snapshots newest first, read as you iterate; ``next()``, ``for`` and ``list()`` work.

    In a notebook it displays its next `DISPLAY_LIMIT` entries (without consuming them).
    """

    def __init__(
        self,
        entries: Iterator[SnapshotInfo],
        start: str,
        count: Callable[[], int] | None = None,
    ) -> None:
        self._entries = entries
        self._start = start
        self._count = count  # how many the whole history has, for the display
        self._peeked: deque[SnapshotInfo] = deque()

    def __iter__(self) -> History:
        return self

    def __next__(self) -> SnapshotInfo:
        if self._peeked:
            return self._peeked.popleft()
        return next(self._entries)

    def _peek(self, n: int) -> tuple[list[SnapshotInfo], bool]:
        """The next ``n`` entries without consuming them, and whether more follow."""
        while len(self._peeked) <= n:
            try:
                self._peeked.append(next(self._entries))
            except StopIteration:
                break
        return list(self._peeked)[:n], len(self._peeked) > n

    def __repr__(self) -> str:
        return f"<vrepo.History from snapshot {self._start}>"

    def _repr_html_(self) -> str:
        return history_html(lambda: self._peek(DISPLAY_LIMIT), self._start, self._total)

    def _total(self) -> int | None:
        """How many snapshots the history has from where it was started (None: unknown)."""
        return None if self._count is None else self._count()
