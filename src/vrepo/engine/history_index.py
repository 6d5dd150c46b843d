"""The history index: ancestry, ``as_of`` and ``~N`` without reading one snapshot per step.

A new snapshot carries its parent and the parent's recent ancestors (`RECENT_ANCESTORS` at
most); when they overflow, the oldest `RECENT_ANCESTORS` go to a page, put before the
parent's pages and merged like a binary counter (two pages of equal size become one, up to
`MAX_PAGE_ENTRIES`). So a commit writes a page once per `RECENT_ANCESTORS` commits on average,
and a history of n commits is about log2(n) + n / `MAX_PAGE_ENTRIES` pages, read a few at a
time, concurrently. Snapshots without an index (written before it, or by a vrepo without it)
are walked one by one, and the walk takes the index up again at the first one that has it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping

import msgspec

from vrepo._sync import run_sync
from vrepo.engine.history_cuts import current_cuts
from vrepo.engine.objects import ObjectIO
from vrepo.errors import FormatError
from vrepo.format import (
    MAX_INDEXED_METADATA_BYTES,
    MAX_PAGE_ENTRIES,
    RECENT_ANCESTORS,
    HistoryEntry,
    HistoryPage,
    HistoryPageRef,
    Snapshot,
)

_FIRST_READS = 2  # pages read at once at the start of a walk; doubled per round up to 8
_MOST_READS = 8


def entry_of(snapshot: Snapshot, *, whole: bool = False) -> HistoryEntry:
    """What a history shows of ``snapshot``; as the index keeps it (metadata only if small)
    unless ``whole``."""
    metadata: dict | None = snapshot.metadata
    if not whole and len(msgspec.json.encode(metadata)) > MAX_INDEXED_METADATA_BYTES:
        metadata = None
    return HistoryEntry(
        snapshot.id,
        snapshot.parent_id,
        snapshot.created_at,
        snapshot.message,
        metadata,
        snapshot.author,
        snapshot.merged_parents,
    )


def _as_kept(objects: ObjectIO, entries: Iterable[HistoryEntry]) -> Iterator[HistoryEntry]:
    return iter(entries)


def _complete(objects: ObjectIO, entries: Iterable[HistoryEntry]) -> Iterator[HistoryEntry]:
    """``entries``, each with its metadata: read from its snapshot where the index left it."""
    for entry in entries:
        if entry.metadata is None:
            entry = entry_of(run_sync(objects.get_snapshot(entry.id)), whole=True)
        yield entry


async def index_of_child(
    objects: ObjectIO, parent: Snapshot
) -> tuple[tuple[HistoryEntry, ...], tuple[HistoryPageRef, ...], list[str]]:
    """The history index (recent ancestors, pages) of a new child of ``parent``, and the
    storage key of the page written for it, if one was (to make durable with the snapshot)."""
    recent = (entry_of(parent), *parent.recent_ancestors)
    if len(recent) <= RECENT_ANCESTORS:
        return recent, parent.ancestor_pages, []
    entries, kept = list(recent[-RECENT_ANCESTORS:]), recent[:-RECENT_ANCESTORS]
    older = list(parent.ancestor_pages)
    while older and older[0].count == len(entries) and 2 * len(entries) <= MAX_PAGE_ENTRIES:
        entries.extend((await objects.get_history_page(older.pop(0))).entries)
    ref, key = await objects.put_history_page(HistoryPage(tuple(entries)))
    return kept, (ref, *older), [key]


def iter_entries(
    objects: ObjectIO,
    snapshot_id: str,
    cuts: Mapping[str, str] | None = None,
    *,
    whole: bool = True,
) -> Iterator[HistoryEntry]:
    """``snapshot_id`` and its ancestors, newest first, read page by page as iterated (and
    the snapshot of an entry whose metadata was too large for the index).

    Expiry's ``cuts`` apply (by default those in force now): a cut snapshot's entry names the
    ancestor its history goes on from as its parent, and the walk goes on there. Without
    ``whole``, entries come as the index keeps them (no snapshot read for large metadata).
    """
    if cuts is None:
        cuts = run_sync(current_cuts(objects))
    current: str | None = snapshot_id
    while current is not None:
        entries, current = _indexed_entries(objects, current, whole), None
        for entry in entries:
            entry, current = _through_cut(entry, cuts)
            yield entry
            if current is not None:
                break


def _indexed_entries(objects: ObjectIO, snapshot_id: str, whole: bool) -> Iterator[HistoryEntry]:
    """The whole history of ``snapshot_id`` as its index (and older snapshots) list it."""
    complete = _complete if whole else _as_kept
    current: str | None = snapshot_id
    while current is not None:
        snapshot = run_sync(objects.get_snapshot(current))
        yield entry_of(snapshot, whole=True)
        yield from complete(objects, snapshot.recent_ancestors)
        expected = _after_recent(snapshot)
        refs, start, batch = snapshot.ancestor_pages, 0, _FIRST_READS
        while start < len(refs):
            pages = run_sync(_read_pages(objects, refs[start : start + batch]))
            for page in pages:
                _check_follows(page, expected, snapshot.id)
                expected = page.entries[-1].parent_id
                yield from complete(objects, page.entries)
            start, batch = start + batch, min(2 * batch, _MOST_READS)
        current = expected


async def walk_index(
    objects: ObjectIO, snapshot_id: str, cuts: Mapping[str, str]
) -> AsyncIterator[HistoryEntry]:
    """As `iter_entries` with ``cuts``, for coroutines; entries as the index keeps them (no
    metadata read for those whose metadata it left out), pages read as the walk reaches them."""
    current: str | None = snapshot_id
    while current is not None:
        snapshot = await objects.get_snapshot(current)
        async with contextlib.aclosing(_listed_by(objects, snapshot)) as listed:
            async for entry in listed:
                shown, current = _through_cut(entry, cuts)
                yield shown
                if current is not None:
                    break
            else:
                current = entry.parent_id


async def _listed_by(objects: ObjectIO, snapshot: Snapshot) -> AsyncIterator[HistoryEntry]:
    """``snapshot`` and the ancestors its index lists, each page read when it is reached."""
    yield entry_of(snapshot)
    for entry in snapshot.recent_ancestors:
        yield entry
    for ref in snapshot.ancestor_pages:
        for entry in (await objects.get_history_page(ref)).entries:
            yield entry


def _through_cut(entry: HistoryEntry, cuts: Mapping[str, str]) -> tuple[HistoryEntry, str | None]:
    """``entry`` as a walk shows it, and where the walk jumps if expiry cut its history there
    (the entry then names that ancestor as its parent)."""
    ancestor = cuts.get(entry.id)
    if ancestor is None:
        return entry, None
    return msgspec.structs.replace(entry, parent_id=ancestor), ancestor


async def _in_force(objects: ObjectIO, cuts: Mapping[str, str] | None) -> Mapping[str, str]:
    return await current_cuts(objects) if cuts is None else cuts


async def newest_at_or_before(
    objects: ObjectIO, snapshot_id: str, limit_us: int, cuts: Mapping[str, str] | None = None
) -> str | None:
    """The first snapshot, walking back from ``snapshot_id``, written at or before
    ``limit_us`` (microseconds since the epoch); None if there is none. Pages whose every
    entry is newer are skipped unread, unless expiry cut the history (``cuts``, by default
    those in force)."""
    if cuts := await _in_force(objects, cuts):
        async for entry in walk_index(objects, snapshot_id, cuts):
            if entry.created_at <= limit_us:
                return entry.id
        return None
    current: str | None = snapshot_id
    while current is not None:
        snapshot = await objects.get_snapshot(current)
        for entry in (snapshot, *snapshot.recent_ancestors):
            if entry.created_at <= limit_us:
                return entry.id
        for ref in snapshot.ancestor_pages:
            if ref.earliest_us <= limit_us:
                page = await objects.get_history_page(ref)
                return next(e.id for e in page.entries if e.created_at <= limit_us)
        current = _after_index(snapshot)
    return None


async def nth_ancestor(
    objects: ObjectIO, snapshot_id: str, n: int, cuts: Mapping[str, str] | None = None
) -> tuple[str | None, int]:
    """The ``n``-th first-parent ancestor of ``snapshot_id`` (0: itself), or None when the
    history is shorter; and how many ancestors were passed (all of them, if None). Whole
    pages are skipped unread, unless expiry cut the history (``cuts``, by default those in
    force)."""
    if cuts := await _in_force(objects, cuts):
        depth = -1
        async for entry in walk_index(objects, snapshot_id, cuts):
            depth += 1
            if depth == n:
                return entry.id, depth
        return None, depth
    current: str | None = snapshot_id
    left, depth = n, 0
    while current is not None:
        if left == 0:
            return current, depth
        snapshot = await objects.get_snapshot(current)
        recent = snapshot.recent_ancestors
        if left <= len(recent):
            return recent[left - 1].id, depth + left
        left, depth = left - len(recent), depth + len(recent)
        for ref in snapshot.ancestor_pages:
            if left <= ref.count:
                page = await objects.get_history_page(ref)
                return page.entries[left - 1].id, depth + left
            left, depth = left - ref.count, depth + ref.count
        current = _after_index(snapshot)
        if current is not None:
            left, depth = left - 1, depth + 1
    return None, depth


def _after_recent(snapshot: Snapshot) -> str | None:
    """The ancestor after ``snapshot``'s recent ones: the first its pages list, if any."""
    recent = snapshot.recent_ancestors
    return recent[-1].parent_id if recent else snapshot.parent_id


def _after_index(snapshot: Snapshot) -> str | None:
    """The ancestor after all that ``snapshot``'s index lists: where a walk goes on."""
    pages = snapshot.ancestor_pages
    return pages[-1].parent_id if pages else _after_recent(snapshot)


async def _read_pages(objects: ObjectIO, refs: tuple[HistoryPageRef, ...]) -> list[HistoryPage]:
    return list(await asyncio.gather(*(objects.get_history_page(ref) for ref in refs)))


def _check_follows(page: HistoryPage, expected: str | None, snapshot_id: str) -> None:
    if page.entries[0].id != expected:
        raise FormatError(
            f"the history index of snapshot {snapshot_id} skips from {expected} to "
            f"{page.entries[0].id}; the repository was tampered with or mis-copied"
        )
