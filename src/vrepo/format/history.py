"""History pages: a snapshot's ancestors, listed in a few immutable files.

Without an index, walking a history reads one snapshot per step. Instead every snapshot
carries its `RECENT_ANCESTORS` newest ancestors (`Snapshot.recent_ancestors`: what a history
shows of each, a `HistoryEntry`) and names the pages listing the older ones
(`Snapshot.ancestor_pages`), newest first, each page a run of consecutive ancestors. Pages
are built like a binary counter, so a commit writes a page only once per `RECENT_ANCESTORS`
commits on average, and a snapshot names about log2(commits) pages of at most
`MAX_PAGE_ENTRIES` entries each.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vrepo.format.author import Author
from vrepo.format.envelope import FileType, StructFile

RECENT_ANCESTORS = 16  # carried in every snapshot; then they move to a page
MAX_PAGE_ENTRIES = 2048  # a full page is never merged again: bounds what one commit writes


MAX_INDEXED_METADATA_BYTES = 2048  # larger metadata stays in its snapshot only


class HistoryEntry(msgspec.Struct, frozen=True, array_like=True):
    """One ancestor: id, parent, time (microseconds since the epoch, UTC), message, metadata,
    author, and the other parents of a merge commit.

    ``metadata`` is None when it is larger than `MAX_INDEXED_METADATA_BYTES` as JSON: it is
    then read from the snapshot itself, so big metadata is not copied into later snapshots.
    ``author`` is last and optional: entries written before authors have five elements (and
    a vrepo from then reads six, ignoring the last, as msgspec does for array-like structs).
    ``merged_parents`` (the seventh, optional likewise) lists a merge commit's other parents.
    """

    id: str
    parent_id: str | None
    created_at: int
    message: str
    metadata: dict[str, Any] | None
    author: Author | None = None
    merged_parents: tuple[str, ...] = ()


class HistoryPageRef(msgspec.Struct, frozen=True, array_like=True):
    """A page as a snapshot names it: its id, how many entries, the earliest ``created_at``
    among them (a search by time skips a page without reading it), and the parent of its
    oldest entry (where the walk goes on: ``~N`` skips whole pages)."""

    id: str
    count: int
    earliest_us: int
    parent_id: str | None


class HistoryPage(msgspec.Struct, frozen=True):
    """Consecutive ancestors, newest first: each entry's parent is the next entry."""

    entries: tuple[HistoryEntry, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a history page lists at least one snapshot")
        for newer, older in zip(self.entries, self.entries[1:], strict=False):
            if newer.parent_id != older.id:
                raise ValueError(
                    f"history page entries are not consecutive: {newer.id}'s parent is "
                    f"{newer.parent_id}, the next entry is {older.id}"
                )

    def ref(self, page_id: str) -> HistoryPageRef:
        """How a snapshot names this page, stored under ``page_id``."""
        earliest = min(e.created_at for e in self.entries)
        return HistoryPageRef(page_id, len(self.entries), earliest, self.entries[-1].parent_id)


_file = StructFile(FileType.HISTORY_PAGE, HistoryPage)


def encode_history_page(page: HistoryPage) -> bytes:
    """Encode a history page as a binary vrepo file."""
    return _file.encode(page)


def decode_history_page(data: bytes | bytearray | memoryview, *, what: str) -> HistoryPage:
    """Decode and verify a history page; `FormatError` if it is corrupt or not a page."""
    return _file.decode(data, what=what)
