"""Merging forks back: what a session remembers of each fork() call, and how fork change sets
fold into the session's content.

Conflicts are judged against what a fork could see: a chunk the session wrote before forking
may be rewritten by the fork (read-modify-write); a chunk the session, or another merged fork,
changed after the fork was made, and that the fork also wrote, is a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vrepo.engine.changeset import (
    ChangeSet,
    Coords,
    OnConflict,
    chunk_conflict_error,
    common_coords,
)
from vrepo.engine.chunk_changes import ChunkChanges
from vrepo.engine.content import Content
from vrepo.errors import VRepoError
from vrepo.format import ChunkRef

Clash = tuple[str, Coords] | str  # (array path, chunk coords), or an opaque object's key


@dataclass
class ForkRecord:
    """What a session remembers of a fork() call: its own chunk refs at that moment."""

    chunks: dict[str, ChunkChanges]
    objects: dict[str, ChunkRef | None]

    @classmethod
    def of(cls, changes: ChangeSet) -> ForkRecord:
        return cls({p: refs.copy() for p, refs in changes.chunks.items()}, dict(changes.loose))

    def overlaps(self, now: ChangeSet, incoming: ChangeSet) -> set[Clash]:
        """Chunks/objects ``incoming`` writes that the session changed after this fork.

        The session's writes from before the fork were visible to the fork (which may have
        read-modified-written them), so only later changes, by the session or by forks
        merged since, can be lost.
        """
        clashes: set[Clash] = set()
        for path, refs in incoming.chunks.items():
            current = now.chunks.get(path)
            if current:
                then = self.chunks.get(path, {})
                # refs are equal only when they are the same write: chunk ids are fresh
                clashes.update(
                    (path, c)
                    for c in common_coords(refs, current)
                    if (c not in then or current[c] != then[c]) and current[c] != refs[c]
                )
        clashes.update(
            key
            for key in incoming.loose.keys() & now.loose.keys()
            if (key not in self.objects or now.loose[key] is not self.objects[key])
            and now.loose[key] != incoming.loose[key]
        )
        return clashes


def merge_fork_changes(
    content: Content,
    records: dict[str, ForkRecord],
    forks: Iterable[tuple[str, ChangeSet]],
    on_conflict: OnConflict,
) -> None:
    """Fold forks' change sets (each with the base snapshot it forked from) into ``content``.

    All or nothing: every group of forks is checked before any is applied, so a
    `ChunkConflictError` leaves ``content`` as it was.
    """
    forks = list(forks)
    staged = []
    for base_id in dict.fromkeys(base for base, _ in forks):
        combined = ChangeSet()
        for base, changes in forks:
            if base == base_id:
                combined.merge(changes, on_conflict)
        clashes = records[base_id].overlaps(content.changes, combined)
        if clashes and on_conflict == "error":
            raise chunk_conflict_error(
                [c for c in clashes if isinstance(c, tuple)],
                [c for c in clashes if isinstance(c, str)],
            )
        staged.append((combined, clashes if on_conflict == "ours" else set()))
    for combined, keep in staged:
        _apply(content, combined, keep)


def _apply(content: Content, changes: ChangeSet, keep: set[Clash]) -> None:
    """Apply a fork-relative change set to a session's content, except the ``keep`` entries."""
    for path in changes.dropped:
        content.delete_node(path)
    for path, meta in changes.nodes.items():
        content.set_node(path, meta)
    current = content.changes
    for path, refs in changes.chunks.items():
        view = content.node(path)
        if view is None or view.kind != "array":
            raise VRepoError(
                f"a fork wrote chunks to {path}, which is no longer an array in this session"
            )
        if not any(isinstance(k, tuple) and k[0] == path for k in keep):
            current.set_chunks(path, refs)  # as columns: a fork may bring millions
            continue
        for coords, ref in refs.items():
            if (path, coords) not in keep:
                current.set_chunk(path, coords, ref)
    for key, ref in changes.loose.items():
        if key not in keep:
            current.loose[key] = ref
