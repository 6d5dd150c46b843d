"""Snapshots: the complete, immutable state of a repository at one commit.

A snapshot lists every node (group or array) with its zarr metadata and, for arrays, the
manifests holding its chunk refs. It is msgpack inside the binary envelope.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any

import msgspec

from vrepo.format.author import Author
from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.envelope import FileType, StructFile
from vrepo.format.history import HistoryEntry, HistoryPageRef

NODE_KINDS = ("group", "array")


class ManifestRef(msgspec.Struct, frozen=True):
    """One manifest of an array: its id, how many chunk refs it holds and their total bytes;
    for a piece (`vrepo.format.manifest_split`), its index and the chunks per dimension of
    every piece of the array. Without a split, it may hold any chunk of the array."""

    id: str
    count: int
    stored_bytes: int
    piece: tuple[int, ...] = ()
    split: tuple[int, ...] = ()


class LooseObject(msgspec.Struct, frozen=True):
    """A store key that is not zarr structure, kept so the store is a faithful key-value store."""

    key: str
    ref: ChunkRef


class NodeSnapshot(msgspec.Struct, frozen=True):
    """A group or an array at an absolute path ("/" is the root, "/a/b" otherwise)."""

    path: str
    kind: str
    zarr_json: bytes
    manifests: tuple[ManifestRef, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in NODE_KINDS:
            raise ValueError(f"node kind is 'group' or 'array', got {self.kind!r}")
        if not self.path.startswith("/") or (self.path != "/" and self.path.endswith("/")):
            raise ValueError(
                f"node path is '/' or '/a/b' (absolute, no trailing /), got {self.path!r}"
            )


class Snapshot(msgspec.Struct, frozen=True):
    """The state of the repository at one commit; `nodes` are sorted by path.

    ``created_at`` is microseconds since the Unix epoch (UTC); ``metadata`` is JSON-compatible.
    ``recent_ancestors`` and ``ancestor_pages`` are its history index (`vrepo.format.history`):
    its newest ancestors themselves, parent first, then the pages listing older ones, newest
    first. After the oldest entry, or when there is none, a walk goes on from that entry's
    (or this snapshot's) parent: a snapshot written before the index, or by a vrepo without it.
    ``author`` is who committed it; None in snapshots written before vrepo recorded authors
    (an optional field: older readers skip it, newer ones read its absence as None).
    ``merged_parents`` are the other parents of a merge commit (`Repository.merge`): the
    heads of the branches merged into ``parent_id``'s line; empty for every other commit
    (optional too: snapshots written before merges have none).
    """

    id: str
    parent_id: str | None
    created_at: int
    message: str
    metadata: dict[str, Any]
    nodes: tuple[NodeSnapshot, ...]
    loose: tuple[LooseObject, ...] = ()
    recent_ancestors: tuple[HistoryEntry, ...] = ()
    ancestor_pages: tuple[HistoryPageRef, ...] = ()
    author: Author | None = None
    merged_parents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.merged_parents and self.parent_id is None:
            raise ValueError("a merge snapshot has a first parent")
        paths = [n.path for n in self.nodes]
        if any(a >= b for a, b in itertools.pairwise(paths)):
            raise ValueError("snapshot nodes must be sorted by path, without duplicates")

    def node(self, path: str) -> NodeSnapshot | None:
        """The node at `path`, or None (binary search over the sorted nodes)."""
        i = bisect.bisect_left(self.nodes, path, key=lambda n: n.path)
        if i < len(self.nodes) and self.nodes[i].path == path:
            return self.nodes[i]
        return None


_file = StructFile(FileType.SNAPSHOT, Snapshot)


def encode_snapshot(s: Snapshot) -> bytes:
    """Encode a snapshot as a binary vrepo file."""
    return _file.encode(s)


def decode_snapshot(data: bytes | bytearray | memoryview, *, what: str) -> Snapshot:
    """Decode and verify a snapshot file; `FormatError` if it is corrupt or not a snapshot."""
    return _file.decode(data, what=what)
