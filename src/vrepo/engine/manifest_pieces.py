"""An array's manifest pieces: finding the piece of a chunk, and rewriting only touched pieces.

`vrepo.format.manifest_split` says how the refs are cut; this module reads and writes the
pieces through `ObjectIO`. A commit loads the pieces its chunks fall in (concurrently),
changes them and writes new ones; the others stay as they are, shared with the base snapshot.
An array whose refs were written before pieces (one manifest without a split) is cut into
pieces the first time a commit writes to it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

import numpy as np

from vrepo.engine.objects import ObjectIO
from vrepo.format import Manifest, ManifestRef
from vrepo.format.manifest_split import choose_split, pieces_of, split_columns


class PieceIndex:
    """Which of an array's manifests may hold a chunk: the one piece whose block holds its
    coordinates, plus any manifest without a split (which may hold any chunk)."""

    def __init__(self, manifests: tuple[ManifestRef, ...]) -> None:
        self.whole = tuple(m for m in manifests if not m.split)
        split = [m for m in manifests if m.split]
        self.split = split[0].split if split else ()
        self.by_piece = {m.piece: m for m in split}

    def candidates(self, coords: Sequence[int]) -> tuple[ManifestRef, ...]:
        if not self.by_piece:
            return self.whole
        piece = tuple(c // s for c, s in zip(coords, self.split, strict=True))
        found = self.by_piece.get(piece)
        return self.whole if found is None else (found, *self.whole)


@functools.lru_cache(maxsize=512)
def piece_index(manifests: tuple[ManifestRef, ...]) -> PieceIndex:
    """The `PieceIndex` of one array's manifests (cached: snapshots are immutable)."""
    return PieceIndex(manifests)


async def write_pieces(
    objects: ObjectIO,
    manifests: tuple[ManifestRef, ...],
    grid: Sequence[int],
    written: Manifest,
    deleted: np.ndarray,
    max_refs: int,
) -> tuple[tuple[ManifestRef, ...], list[tuple[ManifestRef, Manifest]]]:
    """The array's manifests after setting the refs of ``written`` and deleting the (k, ndim)
    coordinates ``deleted``, and the new pieces to store; pieces nobody wrote in are kept as
    they are. Everything is done as columns: no Python object per ref."""
    ndim = written.ndim
    index = piece_index(manifests)
    if index.whole or not index.split:
        return await _cut_into_pieces(
            objects, manifests, choose_split(grid, max_refs), written, deleted
        )
    split = index.split
    writes = {piece: Manifest(*cols) for piece, cols in split_columns(written.columns, split)}
    deletes: dict[tuple[int, ...], np.ndarray] = {}
    if len(deleted):
        pieces, inverse = pieces_of(deleted, split)
        for i, piece in enumerate(pieces):
            deletes[tuple(int(x) for x in piece)] = deleted[inverse == i]
    touched = sorted(writes.keys() | deletes.keys())
    bases = await asyncio.gather(
        *(
            objects.get_manifest(index.by_piece[p].id) if p in index.by_piece else _empty(ndim)
            for p in touched
        )
    )
    new = []
    nothing = np.zeros((0, ndim), np.uint64)
    for piece, base in zip(touched, bases, strict=True):
        updated = base.with_column_changes(
            writes.get(piece, Manifest.empty(ndim)), deletes.get(piece, nothing)
        )
        if len(updated):
            new.append((_piece_ref(objects, updated, piece, split), updated))
    rewritten = set(touched)
    kept = [m for p, m in index.by_piece.items() if p not in rewritten]
    return _in_order(kept + [ref for ref, _ in new]), new


async def _cut_into_pieces(
    objects: ObjectIO,
    manifests: tuple[ManifestRef, ...],
    split: tuple[int, ...],
    written: Manifest,
    deleted: np.ndarray,
) -> tuple[tuple[ManifestRef, ...], list[tuple[ManifestRef, Manifest]]]:
    """A first write to an array with no pieces yet: its whole manifest, changed, in pieces."""
    ndim = written.ndim
    loaded = await asyncio.gather(*(objects.get_manifest(m.id) for m in manifests))
    base = loaded[0] if len(loaded) == 1 else _merged(ndim, loaded)
    updated = base.with_column_changes(written, deleted)
    if not split:  # a 0-d array: one chunk, one manifest
        new = [(objects.manifest_ref(updated), updated)] if len(updated) else []
        return tuple(ref for ref, _ in new), new
    new = []
    for piece, cols in split_columns(updated.columns, split):
        manifest = Manifest(*cols)
        new.append((_piece_ref(objects, manifest, piece, split), manifest))
    return _in_order([ref for ref, _ in new]), new


def _piece_ref(
    objects: ObjectIO, manifest: Manifest, piece: tuple[int, ...], split: tuple[int, ...]
) -> ManifestRef:
    ref = objects.manifest_ref(manifest)
    return ManifestRef(ref.id, ref.count, ref.stored_bytes, piece=piece, split=split)


def _in_order(refs: list[ManifestRef]) -> tuple[ManifestRef, ...]:
    return tuple(sorted(refs, key=lambda m: m.piece))


async def merged_manifest(
    objects: ObjectIO, manifests: tuple[ManifestRef, ...], ndim: int
) -> Manifest:
    """All the chunk refs of an array (its manifests, or pieces) as one manifest."""
    loaded = await asyncio.gather(*(objects.get_manifest(m.id) for m in manifests))
    return loaded[0] if len(loaded) == 1 else _merged(ndim, loaded)


def _merged(ndim: int, manifests: Sequence[Manifest]) -> Manifest:
    """Several whole manifests as one (never written by vrepo, but allowed by the format)."""
    merged = Manifest.empty(ndim)
    for manifest in manifests:
        merged = merged.with_column_changes(manifest, np.zeros((0, ndim), np.uint64))
    return merged


async def _empty(ndim: int) -> Manifest:
    return Manifest.empty(ndim)
