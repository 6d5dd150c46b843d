"""What a garbage collection leaves for the next one, so that one looks only at what changed.

``gc/<µs since the epoch>-<id>.state`` (the newest sorts last): when the run was, its grace
period, its *mark* (every object with a timed id below it was decided then: deleted, or kept
because a retained snapshot named it), the snapshots it retained, and for each manifest and
other object those snapshots name, how many of them do (with where a manifest sits, so the
chunks of a manifest that dies are checked only against the live manifests of that array
that cover them).
"""

from __future__ import annotations

import msgspec

from vrepo.format.envelope import FileType, StructFile

GC_PREFIX = "gc/"


class NamedManifest(msgspec.Struct, frozen=True, array_like=True):
    """A manifest the retained snapshots name: how many do, for which array, which piece
    (``piece`` and ``split`` as in `ManifestRef`; empty for one that may hold any chunk)."""

    id: str
    count: int
    path: str
    piece: tuple[int, ...] = ()
    split: tuple[int, ...] = ()


class GcState(msgspec.Struct, frozen=True):
    """The outcome of one collection (times in µs since the epoch)."""

    ran_at: int
    grace: int
    mark: str
    snapshots: tuple[str, ...]
    manifests: tuple[NamedManifest, ...]
    others: dict[str, int]  # storage key (history page, loose chunk) -> snapshots naming it


_file = StructFile(FileType.GC_STATE, GcState)


def encode_gc_state(state: GcState) -> bytes:
    """Encode a collection's state as a binary vrepo file."""
    return _file.encode(state)


def decode_gc_state(data: bytes | bytearray | memoryview, *, what: str) -> GcState:
    """Decode and verify a collection's state; `FormatError` if it is corrupt."""
    return _file.decode(data, what=what)
