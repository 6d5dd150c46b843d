"""How many retained snapshots name each manifest, history page and loose chunk.

A collection keeps these counts in its state (`vrepo.format.gc_state`), so the next one
reads only the snapshots retained or dropped since: an object whose count falls to zero
died with the snapshots that named it, and only its own chunks need checking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vrepo.engine.objects import chunk_key, history_key
from vrepo.format import ID_BYTES, GcState, Manifest, NamedManifest, Snapshot

NO_IDS = np.zeros(0, dtype=np.uint64)


@dataclass
class _Place:
    count: int
    path: str
    piece: tuple[int, ...]
    split: tuple[int, ...]


@dataclass
class Counts:
    """Counts by manifest id (with where each sits) and by key for other named objects."""

    manifests: dict[str, _Place] = field(default_factory=dict)
    others: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of_state(cls, state: GcState) -> Counts:
        return cls(
            {m.id: _Place(m.count, m.path, m.piece, m.split) for m in state.manifests},
            dict(state.others),
        )

    def add(self, snapshot: Snapshot, sign: int) -> None:
        """Count ``snapshot``'s objects once more (``sign`` 1) or once less (-1)."""
        for node in snapshot.nodes:
            for ref in node.manifests:
                place = self.manifests.get(ref.id)
                if place is None:
                    place = self.manifests[ref.id] = _Place(0, node.path, ref.piece, ref.split)
                place.count += sign
        keys = [history_key(page.id) for page in snapshot.ancestor_pages]
        keys += [chunk_key(obj.ref.chunk_id) for obj in snapshot.loose if obj.ref.chunk_id]
        for key in keys:
            self.others[key] = self.others.get(key, 0) + sign

    def live_manifests(self) -> list[NamedManifest]:
        return [
            NamedManifest(id, p.count, p.path, p.piece, p.split)
            for id, p in sorted(self.manifests.items())
            if p.count > 0
        ]

    def live_others(self) -> dict[str, int]:
        return {key: n for key, n in sorted(self.others.items()) if n > 0}


def stored_chunk_ids(manifest: Manifest) -> np.ndarray:
    """Fingerprints of the chunks ``manifest`` names that are stored as objects (not inline):
    the last 8 bytes of each id (random in every id) as a uint64, so a million ids sort in
    milliseconds. Two ids may share one (about 1 in 2**64 per pair): whoever checks whether a
    chunk is named then keeps it, which only ever keeps too much."""
    if manifest.ids is None:
        return NO_IDS
    return fingerprints(manifest.ids[manifest.columns.stored_mask()])


def fingerprints(ids: np.ndarray) -> np.ndarray:
    """The fingerprints (see `stored_chunk_ids`) of raw ids, (n, 12) uint8."""
    tail = np.ascontiguousarray(ids[:, ID_BYTES - 8 :])
    return tail.view(">u8").ravel().astype(np.uint64)


def covers(manifest: NamedManifest, coords: np.ndarray) -> bool:
    """Whether ``manifest`` may hold a chunk at any of ``coords`` (n, ndim)."""
    if not manifest.piece or len(manifest.piece) != coords.shape[1]:
        return True
    low = np.asarray(manifest.piece, dtype=np.uint64) * np.asarray(manifest.split, dtype=np.uint64)
    high = low + np.asarray(manifest.split, dtype=np.uint64)
    return bool(((coords >= low) & (coords < high)).all(axis=1).any())
