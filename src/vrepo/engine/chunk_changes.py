"""One array's uncommitted chunk refs: a dict for the newest writes, columns for the rest.

A session, or a coordinator merging the forks of a large distributed write, may hold millions
of uncommitted refs. As a dict of `ChunkRef` objects they cost about 540 bytes each (10M refs:
5 GiB). So once the dict holds `COMPACT_AT` written refs, they are folded into a `Manifest`
(columns, about 40 bytes a ref) and the dict starts again. Deletions stay in the dict: they
are few, and each must shadow the base snapshot's chunk until the commit. Reads look in the
dict first, then in the columns, so the newest write wins.

`ChunkChanges` is a mutable mapping from chunk coordinates to ref (None: deleted), so code
that changes a few chunks reads like dict code; `columns` hands a commit the whole change as
columns, and `update_from` folds another one in without a Python object per ref.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import numpy as np

from vrepo.engine._rows import rows_in
from vrepo.format import ChunkRef, Manifest
from vrepo.format.chunk_grid import as_coords, ravel

Coords = tuple[int, ...]

COMPACT_AT = 65_536
"""Written refs the dict holds before they are folded into the columns."""


class ChunkChanges(MutableMapping[Coords, ChunkRef | None]):
    """Chunk coordinates -> new ref, or None for a deleted chunk, for one array."""

    __slots__ = ("_deleted", "_levels", "_ndim", "_pending", "_recent")

    def __init__(self, ndim: int | None = None) -> None:
        self._ndim = ndim  # known from the first coordinates, if not given
        self._recent: dict[Coords, ChunkRef | None] = {}  # since the last fold
        # folded writes, oldest first, each at least `_LEVEL_RATIO` times the next: a newer
        # level's ref wins; none holds a chunk of `_deleted`
        self._levels: list[Manifest] = []
        self._deleted: set[Coords] = set()  # folded deletions
        self._pending = 0  # writes in _recent

    @classmethod
    def of_written(cls, written: Manifest) -> ChunkChanges:
        """A change that writes the refs of ``written`` (columns as they are)."""
        changes = cls(written.ndim)
        if len(written):
            changes._levels = [written]
        return changes

    # --- the mapping -----------------------------------------------------------------------

    def _folded(self, coords: Coords) -> ChunkRef | None:
        """The newest folded ref of ``coords`` (None: none)."""
        if self._levels and len(coords) == self._levels[0].ndim:
            for level in reversed(self._levels):
                ref = level.lookup(coords)
                if ref is not None:
                    return ref
        return None

    def __getitem__(self, coords: Coords) -> ChunkRef | None:
        recent = self._recent
        if coords in recent:
            return recent[coords]
        ref = self._folded(coords)
        if ref is not None:
            return ref
        if coords in self._deleted:
            return None
        raise KeyError(coords)

    def __contains__(self, coords: object) -> bool:
        if coords in self._recent or coords in self._deleted:
            return True
        return isinstance(coords, tuple) and self._folded(coords) is not None

    def __setitem__(self, coords: Coords, ref: ChunkRef | None) -> None:
        if self._ndim is None:
            self._ndim = len(coords)
        self._recent[coords] = ref
        if ref is not None:
            self._pending += 1
            if self._pending >= COMPACT_AT:
                self._fold_recent()

    def __delitem__(self, coords: Coords) -> None:
        found = self._recent.pop(coords, _MISSING) is not _MISSING
        if coords in self._deleted:
            self._deleted.discard(coords)
            found = True
        for i, level in enumerate(self._levels):
            if len(coords) == level.ndim and level.lookup(coords) is not None:
                self._levels[i] = level.with_changes([coords], [None])
                found = True
        if not found:
            raise KeyError(coords)

    def __iter__(self) -> Iterator[Coords]:
        self.compact()
        if self._levels:
            yield from map(tuple, self._levels[0].coords().tolist())
        yield from list(self._deleted)

    def __len__(self) -> int:
        self.compact()
        return len(self._deleted) + (len(self._levels[0]) if self._levels else 0)

    def items(self) -> Iterator[tuple[Coords, ChunkRef | None]]:  # type: ignore[override]
        """Every (coordinates, ref) pair: the written refs, then the deletions."""
        self.compact()
        if self._levels:
            coords = map(tuple, self._levels[0].coords().tolist())
            yield from zip(coords, self._levels[0].refs(), strict=True)
        yield from ((c, None) for c in list(self._deleted))

    def values(self) -> Iterator[ChunkRef | None]:  # type: ignore[override]
        return (ref for _, ref in self.items())

    def copy(self) -> ChunkChanges:
        """An independent copy (manifests and refs are immutable, so they are shared)."""
        other = ChunkChanges(self._ndim)
        other._recent, other._levels = dict(self._recent), list(self._levels)
        other._deleted, other._pending = set(self._deleted), self._pending
        return other

    # --- columns -------------------------------------------------------------------------

    @property
    def ndim(self) -> int | None:
        """Dimensions of the array's chunk grid (None until a chunk is set)."""
        return self._ndim

    def _fold_recent(self) -> None:
        """Fold the dict into a new level (deletions into `_deleted`), then merge levels
        that are no longer much smaller than the one before: each ref is merged about
        log(n) times, not once per fold."""
        if not self._recent or self._ndim is None:
            return
        ndim = self._ndim
        coords = list(self._recent)
        refs = list(self._recent.values())
        deleted = [c for c, r in zip(coords, refs, strict=True) if r is None]
        if deleted:
            gone = as_coords(deleted, ndim)
            self._levels = [_without(level, gone) for level in self._levels]
        written = Manifest.empty(ndim).with_changes(
            [c for c, r in zip(coords, refs, strict=True) if r is not None],
            [r for r in refs if r is not None],
        )
        self._deleted.difference_update(c for c, r in zip(coords, refs, strict=True) if r)
        self._deleted.update(deleted)
        self._recent, self._pending = {}, 0
        if len(written):
            self._levels.append(written)
        levels = self._levels
        while len(levels) > 1 and len(levels[-1]) * _LEVEL_RATIO >= len(levels[-2]):
            newer = levels.pop()
            levels[-1] = levels[-1].with_column_changes(newer, _none(ndim))

    def compact(self) -> None:
        """Fold everything into one level of columns (deletions kept apart)."""
        self._fold_recent()
        levels = self._levels
        while len(levels) > 1 and self._ndim is not None:
            newer = levels.pop()
            levels[-1] = levels[-1].with_column_changes(newer, _none(self._ndim))

    def columns(self) -> tuple[Manifest, np.ndarray]:
        """The change as columns: the refs written (a manifest) and the (k, ndim) uint64
        coordinates of the chunks deleted; they share no coordinate."""
        ndim = self._ndim or 0
        self.compact()
        written = self._levels[0] if self._levels else Manifest.empty(ndim)
        deleted = as_coords(list(self._deleted), ndim) if self._deleted else _none(ndim)
        return written, deleted

    def coords_array(self) -> np.ndarray:
        """The (n, ndim) uint64 coordinates of every chunk changed (written or deleted)."""
        written, deleted = self.columns()
        return np.concatenate([written.coords(), deleted]) if len(deleted) else written.coords()

    def written_count(self) -> int:
        """How many chunks this change writes (the rest of its entries delete)."""
        self.compact()
        return len(self._levels[0]) if self._levels else 0

    def chunk_ids(self) -> list[str]:
        """The distinct stored-chunk ids the written refs point into."""
        self.compact()
        return self._levels[0].chunk_ids() if self._levels else []

    def update_from(self, other: ChunkChanges, *, keep_ours: bool = False) -> None:
        """Take ``other``'s entries (``keep_ours``: only where this one has none), as columns."""
        if other._ndim is None:
            return
        if self._ndim is None:
            self._ndim = other._ndim
        theirs, their_deleted = other.columns()
        if keep_ours:
            ours = self.coords_array()
            theirs = _without(theirs, ours)
            their_deleted = their_deleted[~rows_in(their_deleted, ours)]
        self.compact()
        mine = self._levels[0] if self._levels else Manifest.empty(self._ndim)
        # their deletions leave our columns; their writes replace ours and our deletions
        mine = mine.with_column_changes(Manifest.empty(self._ndim), their_deleted)
        mine = mine.with_column_changes(theirs, _none(self._ndim))
        self._levels = [mine] if len(mine) else []
        self._deleted = {c for c in self._deleted if theirs.lookup(c) is None}
        self._deleted.update(map(tuple, their_deleted.tolist()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkChanges):
            return dict(self.items()) == dict(other.items())
        if isinstance(other, dict):
            return dict(self.items()) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChunkChanges({len(self)} chunks)"

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # a fork's few refs travel back from every task: keep the pickle small
        if not self._levels and not self._deleted:
            return (_of_dict, (self._recent,))
        state = (self._ndim, self._recent, self._levels, self._deleted, self._pending)
        return (_of_parts, state)


def changes_of_columns(ndim: int, written: Manifest, deleted: np.ndarray) -> ChunkChanges:
    """A change writing the refs of ``written`` and deleting the (k, ndim) coordinates
    ``deleted`` (they share no coordinate), held as columns from the start."""
    gone = set(map(tuple, deleted.tolist()))
    return _of_parts(ndim, {}, [written] if len(written) else [], gone, 0)


def _of_dict(recent: dict[Coords, ChunkRef | None]) -> ChunkChanges:
    changes = ChunkChanges(len(next(iter(recent))) if recent else None)
    changes._recent = recent
    changes._pending = sum(ref is not None for ref in recent.values())
    return changes


def _of_parts(
    ndim: int | None,
    recent: dict[Coords, ChunkRef | None],
    levels: list[Manifest],
    deleted: set[Coords],
    pending: int,
) -> ChunkChanges:
    changes = ChunkChanges(ndim)
    changes._recent, changes._levels, changes._deleted = recent, levels, deleted
    changes._pending = pending
    return changes


_MISSING = object()
_LEVEL_RATIO = 4


def _none(ndim: int) -> np.ndarray:
    return np.zeros((0, ndim), np.uint64)


def _without(manifest: Manifest, coords: np.ndarray) -> Manifest:
    """``manifest`` without the refs at ``coords`` (found by binary search: O(k log n))."""
    extent = np.asarray(manifest.extent, dtype=np.uint64)
    inside = coords[(coords < extent).all(axis=1)] if len(manifest) else coords[:0]
    keys = ravel(inside, manifest.extent)
    at = np.minimum(np.searchsorted(manifest.keys, keys), max(len(manifest) - 1, 0))
    present = inside[manifest.keys[at] == keys] if len(inside) else inside
    if not len(present):
        return manifest
    return manifest.with_column_changes(Manifest.empty(manifest.ndim), present)
