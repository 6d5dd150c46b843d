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
from vrepo.format.chunk_grid import as_coords

Coords = tuple[int, ...]

COMPACT_AT = 65_536
"""Written refs the dict holds before they are folded into the columns."""


class ChunkChanges(MutableMapping[Coords, ChunkRef | None]):
    """Chunk coordinates -> new ref, or None for a deleted chunk, for one array."""

    __slots__ = ("_ndim", "_pending", "_recent", "_written")

    def __init__(self, ndim: int | None = None) -> None:
        self._ndim = ndim  # known from the first coordinates, if not given
        self._recent: dict[Coords, ChunkRef | None] = {}
        self._written: Manifest | None = None  # compacted writes, none deleted in _recent
        self._pending = 0  # writes in _recent since the last compaction

    # --- the mapping -----------------------------------------------------------------------

    def __getitem__(self, coords: Coords) -> ChunkRef | None:
        recent = self._recent
        if coords in recent:
            return recent[coords]
        if self._written is not None and len(coords) == self._written.ndim:
            ref = self._written.lookup(coords)
            if ref is not None:
                return ref
        raise KeyError(coords)

    def __contains__(self, coords: object) -> bool:
        if coords in self._recent:
            return True
        written = self._written
        return (
            written is not None
            and isinstance(coords, tuple)
            and len(coords) == written.ndim
            and written.lookup(coords) is not None
        )

    def __setitem__(self, coords: Coords, ref: ChunkRef | None) -> None:
        if self._ndim is None:
            self._ndim = len(coords)
        self._recent[coords] = ref
        if ref is not None:
            self._pending += 1
            if self._pending >= COMPACT_AT:
                self.compact()

    def __delitem__(self, coords: Coords) -> None:
        found = self._recent.pop(coords, _MISSING) is not _MISSING
        written = self._written
        if written is not None and len(coords) == written.ndim and written.lookup(coords):
            self._written = written.with_changes([coords], [None])
            found = True
        if not found:
            raise KeyError(coords)

    def __iter__(self) -> Iterator[Coords]:
        self.compact()
        if self._written is not None:
            yield from map(tuple, self._written.coords().tolist())
        yield from list(self._recent)

    def __len__(self) -> int:
        self.compact()
        return len(self._recent) + (len(self._written) if self._written is not None else 0)

    def items(self) -> Iterator[tuple[Coords, ChunkRef | None]]:  # type: ignore[override]
        """Every (coordinates, ref) pair: the columns' rows, then the deletions."""
        self.compact()
        if self._written is not None:
            coords = map(tuple, self._written.coords().tolist())
            yield from zip(coords, self._written.refs(), strict=True)
        yield from list(self._recent.items())

    def values(self) -> Iterator[ChunkRef | None]:  # type: ignore[override]
        return (ref for _, ref in self.items())

    def copy(self) -> ChunkChanges:
        """An independent copy (manifests and refs are immutable, so they are shared)."""
        other = ChunkChanges(self._ndim)
        other._recent, other._written = dict(self._recent), self._written
        other._pending = self._pending
        return other

    # --- columns -------------------------------------------------------------------------

    @property
    def ndim(self) -> int | None:
        """Dimensions of the array's chunk grid (None until a chunk is set)."""
        return self._ndim

    def compact(self) -> None:
        """Fold the written refs of the dict into the columns (deletions stay)."""
        if not self._pending or self._ndim is None:
            return
        coords = list(self._recent)
        refs = list(self._recent.values())
        base = self._written if self._written is not None else Manifest.empty(self._ndim)
        self._written = base.with_changes(coords, refs)
        self._recent = {c: None for c, r in zip(coords, refs, strict=True) if r is None}
        self._pending = 0

    def columns(self) -> tuple[Manifest, np.ndarray]:
        """The change as columns: the refs written (a manifest) and the (k, ndim) uint64
        coordinates of the chunks deleted; they share no coordinate."""
        ndim = self._ndim or 0
        self.compact()
        written = self._written if self._written is not None else Manifest.empty(ndim)
        deleted = as_coords(list(self._recent), ndim) if self._recent else _none(ndim)
        return written, deleted

    def coords_array(self) -> np.ndarray:
        """The (n, ndim) uint64 coordinates of every chunk changed (written or deleted)."""
        written, deleted = self.columns()
        return np.concatenate([written.coords(), deleted]) if len(deleted) else written.coords()

    def written_count(self) -> int:
        """How many chunks this change writes (the rest of its entries delete)."""
        self.compact()
        return len(self._written) if self._written is not None else 0

    def chunk_ids(self) -> list[str]:
        """The distinct stored-chunk ids the written refs point into."""
        self.compact()
        return self._written.chunk_ids() if self._written is not None else []

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
        mine = self._written if self._written is not None else Manifest.empty(self._ndim)
        # their deletions leave our columns; their writes replace ours and our deletions
        mine = mine.with_column_changes(Manifest.empty(self._ndim), their_deleted)
        self._written = mine.with_column_changes(theirs, _none(self._ndim))
        for c in [c for c in self._recent if theirs.lookup(c) is not None]:
            del self._recent[c]
        self._recent.update(dict.fromkeys(map(tuple, their_deleted.tolist())))

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
        if self._written is None:
            return (_of_dict, (self._recent,))
        return (_of_parts, (self._ndim, self._recent, self._written, self._pending))


def _of_dict(recent: dict[Coords, ChunkRef | None]) -> ChunkChanges:
    changes = ChunkChanges(len(next(iter(recent))) if recent else None)
    changes._recent = recent
    changes._pending = sum(ref is not None for ref in recent.values())
    return changes


def _of_parts(
    ndim: int | None, recent: dict[Coords, ChunkRef | None], written: Manifest, pending: int
) -> ChunkChanges:
    changes = ChunkChanges(ndim)
    changes._recent, changes._written, changes._pending = recent, written, pending
    return changes


_MISSING = object()


def _none(ndim: int) -> np.ndarray:
    return np.zeros((0, ndim), np.uint64)


def _without(manifest: Manifest, coords: np.ndarray) -> Manifest:
    """``manifest`` without the refs at ``coords``."""
    present = coords[rows_in(coords, manifest.coords())]
    return manifest.with_column_changes(Manifest.empty(manifest.ndim), present)
