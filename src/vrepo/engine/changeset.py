"""A session's uncommitted changes: plain data that pickles small and merges.

A `ChangeSet` records, relative to a base snapshot: node metadata written, nodes whose base
content no longer applies (deleted, replaced, or re-laid-out arrays), chunk refs written or
deleted per array, and opaque (non-zarr) objects. Chunk bytes are never held here — only refs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from vrepo.engine._rows import common_rows
from vrepo.engine.chunk_changes import ChunkChanges, Coords
from vrepo.engine.node import NodeMetadata
from vrepo.errors import ChunkConflictError
from vrepo.format import ChunkRef

OnConflict = Literal["error", "ours", "theirs"]


@dataclass
class ChangeSet:
    """Uncommitted changes relative to one base snapshot."""

    nodes: dict[str, NodeMetadata] = field(default_factory=dict)
    """Node metadata written in this change set, by node path."""
    dropped: set[str] = field(default_factory=set)
    """Paths whose base node and chunks no longer apply (deleted or replaced)."""
    chunks: dict[str, ChunkChanges] = field(default_factory=dict)
    """Per array path: chunk coordinates -> new ref, or None for a deleted chunk (columns
    once there are many: `ChunkChanges`)."""
    loose: dict[str, ChunkRef | None] = field(default_factory=dict)
    """Opaque objects by store key -> ref, or None when deleted."""

    def is_empty(self) -> bool:
        return not (self.nodes or self.dropped or self.chunks or self.loose)

    def copy(self) -> ChangeSet:
        """An independent copy (refs are immutable, so they are shared)."""
        return ChangeSet(
            dict(self.nodes),
            set(self.dropped),
            {path: refs.copy() for path, refs in self.chunks.items()},
            dict(self.loose),
        )

    def clear(self) -> None:
        self.nodes.clear()
        self.dropped.clear()
        self.chunks.clear()
        self.loose.clear()

    def set_node(self, path: str, meta: NodeMetadata, *, replace: bool, in_base: bool) -> None:
        """Record node metadata; ``replace`` discards the node's earlier chunks too."""
        if replace:
            self.chunks.pop(path, None)
            if in_base:
                self.dropped.add(path)
        self.nodes[path] = meta

    def delete_node(self, path: str, *, in_base: bool) -> None:
        self.nodes.pop(path, None)
        self.chunks.pop(path, None)
        if in_base:
            self.dropped.add(path)

    def set_chunk(self, path: str, coords: Coords, ref: ChunkRef | None) -> None:
        refs = self.chunks.get(path)
        if refs is None:
            refs = self.chunks[path] = ChunkChanges(len(coords))
        refs[coords] = ref

    def set_chunks(self, path: str, refs: ChunkChanges) -> None:
        """Set every entry of ``refs`` (folded in as columns)."""
        ours = self.chunks.get(path)
        if ours is None:
            self.chunks[path] = refs.copy()
        else:
            ours.update_from(refs)

    def external_chunk_ids(self) -> Iterator[str]:
        """Ids of every stored (non-inline) chunk this change set references."""
        for refs in self.chunks.values():
            yield from refs.chunk_ids()
        for ref in self.loose.values():
            if ref is not None and ref.chunk_id is not None:
                yield ref.chunk_id

    def merge(self, other: ChangeSet, on_conflict: OnConflict = "error") -> None:
        """Fold ``other`` (a change set over the same base) into this one.

        Two change sets writing the same chunk (or the same opaque key) is a conflict: by
        default `ChunkConflictError` naming every such chunk, and nothing is changed.
        ``"ours"`` keeps this change set's ref, ``"theirs"`` takes ``other``'s.
        """
        if on_conflict == "error":
            raise_on_overlap(self, other)
        for path in other.dropped:
            self.dropped.add(path)
            if path not in other.nodes:
                self.nodes.pop(path, None)
            self.chunks.pop(path, None)
        self.nodes.update(other.nodes)
        for path, theirs in other.chunks.items():
            ours = self.chunks.get(path)
            if ours is None or on_conflict != "ours":
                self.set_chunks(path, theirs)
            else:
                ours.update_from(theirs, keep_ours=True)
        for key, ref in other.loose.items():
            if on_conflict != "ours" or key not in self.loose:
                self.loose[key] = ref


def raise_on_overlap(ours: ChangeSet, theirs: ChangeSet) -> None:
    """Raise `ChunkConflictError` naming every chunk or object both change sets wrote.

    Writing the very same ref twice (one fork merged twice, or one fork object returned by
    two tasks) loses nothing, so it is not a conflict.
    """
    clashes = [
        (path, coords)
        for path, their_refs in theirs.chunks.items()
        if (our_refs := ours.chunks.get(path))
        for coords in common_coords(their_refs, our_refs)
        if their_refs[coords] != our_refs[coords]
    ]
    objects = [
        key
        for key in theirs.loose.keys() & ours.loose.keys()
        if theirs.loose[key] != ours.loose[key]
    ]
    if clashes or objects:
        raise chunk_conflict_error(clashes, objects)


def common_coords(a: ChunkChanges, b: ChunkChanges) -> list[Coords]:
    """The chunk coordinates both change the ref of (found as columns: either may be huge)."""
    return list(map(tuple, common_rows(a.coords_array(), b.coords_array()).tolist()))


def chunk_conflict_error(
    clashes: list[tuple[str, Coords]], objects: list[str]
) -> ChunkConflictError:
    """The error for chunks (array path, coordinates) and objects written twice."""
    clashes, objects = sorted(clashes), sorted(objects)
    described = [f"{path} chunk {coords}" for path, coords in clashes]
    described += [f"object {key!r}" for key in objects]
    return ChunkConflictError(
        f"{len(described)} chunk(s) were written by both change sets: "
        + ", ".join(described[:20])
        + (" ..." if len(described) > 20 else "")
        + ". Make the writers' regions disjoint, or merge with "
        "on_conflict='ours' or 'theirs' to choose a winner.",
        conflicts=[*clashes, *objects],
    )
