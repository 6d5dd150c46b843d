"""What a session sees: its base snapshot overlaid with its change set.

`Content` answers node, chunk and opaque-object reads, records writes into the `ChangeSet`,
and `flush`es everything into a new (not yet published) snapshot. It knows nothing of refs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from vrepo.engine._rows import rows_in
from vrepo.engine.changeset import ChangeSet, Coords
from vrepo.engine.history_cuts import current_cuts
from vrepo.engine.history_index import index_of_child
from vrepo.engine.manifest_pieces import piece_index, write_pieces
from vrepo.engine.node import ArrayLayout, NodeKind, NodeMetadata, parse_node_metadata
from vrepo.engine.objects import ObjectIO, chunk_key, manifest_key
from vrepo.engine.refs import now_us
from vrepo.errors import VRepoError
from vrepo.format import (
    ArrayChunkChanges,
    Author,
    ChunkRef,
    HistoryEntry,
    HistoryPageRef,
    LooseObject,
    Manifest,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
    TransactionLog,
    new_id,
    union_of_logs,
)


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as the session sees it: current metadata plus the base manifests still valid."""

    path: str
    meta: NodeMetadata
    manifests: tuple[ManifestRef, ...]

    @property
    def kind(self) -> NodeKind:
        return self.meta.kind

    @property
    def layout(self) -> ArrayLayout | None:
        return self.meta.layout


@dataclass(frozen=True)
class ChangeSummary:
    """What a change set does to its base: the body of `Session.status()` and of a log."""

    new_groups: tuple[str, ...] = ()
    new_arrays: tuple[str, ...] = ()
    updated_metadata: tuple[str, ...] = ()
    deleted_nodes: tuple[str, ...] = ()
    chunks_written: dict[str, int] | None = None
    chunks_deleted: dict[str, int] | None = None
    objects_changed: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (
            self.new_groups
            or self.new_arrays
            or self.updated_metadata
            or self.deleted_nodes
            or self.chunks_written
            or self.chunks_deleted
            or self.objects_changed
        )

    def __str__(self) -> str:
        if self.is_empty():
            return "no uncommitted changes"
        lines = []
        for title, paths in (
            ("new groups", self.new_groups),
            ("new arrays", self.new_arrays),
            ("updated metadata", self.updated_metadata),
            ("deleted nodes", self.deleted_nodes),
            ("changed objects", self.objects_changed),
        ):
            if paths:
                lines.append(f"{title}: {', '.join(paths)}")
        for title, counts in (
            ("chunks written", self.chunks_written),
            ("chunks deleted", self.chunks_deleted),
        ):
            for path, count in sorted((counts or {}).items()):
                lines.append(f"{title}: {path} ({count})")
        return "\n".join(lines)


class Content:
    """A base snapshot overlaid with a change set; reads, writes and flushes."""

    def __init__(self, objects: ObjectIO, base: Snapshot, changes: ChangeSet | None = None):
        self.objects = objects
        self.base = base
        self.changes = changes if changes is not None else ChangeSet()
        self._base_paths = {node.path for node in base.nodes}
        self._base_loose = {obj.key: obj.ref for obj in base.loose}
        self._views: dict[str, NodeView] = {}
        for node in base.nodes:
            if node.path not in self.changes.dropped:
                meta = parse_node_metadata(node.zarr_json)
                if meta is None or meta.kind != node.kind:
                    raise VRepoError(f"snapshot {base.id} holds unreadable metadata at {node.path}")
                self._views[node.path] = NodeView(node.path, meta, node.manifests)
        for path, meta in self.changes.nodes.items():
            kept = self._views.get(path)
            self._views[path] = NodeView(path, meta, kept.manifests if kept else ())

    # --- nodes ---------------------------------------------------------------------------

    def node(self, path: str) -> NodeView | None:
        return self._views.get(path)

    def node_paths(self) -> list[str]:
        return sorted(self._views)

    def set_node(self, path: str, meta: NodeMetadata) -> None:
        """Create or update a node; an incompatible re-definition starts it afresh."""
        current = self._views.get(path)
        if current is not None and current.meta.zarr_json == meta.zarr_json:
            return
        replace = current is not None and (
            current.kind != meta.kind
            or (meta.layout is not None and not meta.layout.compatible_with(current.layout))
        )
        self.changes.set_node(path, meta, replace=replace, in_base=path in self._base_paths)
        keep = current.manifests if current is not None and not replace else ()
        self._views[path] = NodeView(path, meta, keep)

    def delete_node(self, path: str) -> None:
        if self._views.pop(path, None) is not None:
            self.changes.delete_node(path, in_base=path in self._base_paths)

    # --- chunks --------------------------------------------------------------------------

    async def chunk_ref(self, path: str, coords: Coords) -> ChunkRef | None:
        written = self.changes.chunks.get(path)
        if written is not None and coords in written:
            return written[coords]
        view = self._views.get(path)
        for manifest_ref in piece_index(view.manifests).candidates(coords) if view else ():
            ref = (await self.objects.get_manifest(manifest_ref.id)).lookup(coords)
            if ref is not None:
                return ref
        return None

    async def write_chunk(self, path: str, coords: Coords, data: bytes | memoryview) -> None:
        self.changes.set_chunk(path, coords, await self.objects.put_chunk(data))

    def delete_chunk(self, path: str, coords: Coords) -> None:
        self.changes.set_chunk(path, coords, None)

    async def chunk_coords(self, path: str) -> np.ndarray:
        """Coordinates (n, ndim) of every chunk the array at ``path`` holds now."""
        view = self._views[path]
        ndim = view.layout.ndim
        manifests = [await self.objects.get_manifest(m.id) for m in view.manifests]
        base = np.concatenate([m.coords() for m in manifests] or [np.empty((0, ndim), np.uint64)])
        written = self.changes.chunks.get(path)
        if not written:
            return base
        live = written.columns()[0].coords()
        return np.concatenate([base[~rows_in(base, written.coords_array())], live])

    # --- opaque objects (store keys that are not zarr structure) ----------------------------

    def object_ref(self, key: str) -> ChunkRef | None:
        if key in self.changes.loose:
            return self.changes.loose[key]
        return self._base_loose.get(key)

    async def write_object(self, key: str, data: bytes | memoryview) -> None:
        self.changes.loose[key] = await self.objects.put_chunk(data)

    def delete_object(self, key: str) -> None:
        if key in self._base_loose:
            self.changes.loose[key] = None
        else:
            self.changes.loose.pop(key, None)

    def object_keys(self) -> list[str]:
        keys = {k for k in self._base_loose if k not in self.changes.loose}
        keys.update(k for k, ref in self.changes.loose.items() if ref is not None)
        return sorted(keys)

    # --- summaries and flushing ----------------------------------------------------------------

    def summary(self) -> ChangeSummary:
        new_groups, new_arrays, updated = [], [], []
        for path, meta in sorted(self.changes.nodes.items()):
            if path in self._base_paths and path not in self.changes.dropped:
                updated.append(path)
            else:
                (new_groups if meta.kind == "group" else new_arrays).append(path)
        written, deleted = {}, {}
        for path, refs in self.changes.chunks.items():
            n_written = refs.written_count()
            n_deleted = len(refs) - n_written
            if n_written:
                written[path] = n_written
            if n_deleted:
                deleted[path] = n_deleted
        return ChangeSummary(
            new_groups=tuple(new_groups),
            new_arrays=tuple(new_arrays),
            updated_metadata=tuple(updated),
            deleted_nodes=tuple(sorted(self.changes.dropped - self.changes.nodes.keys())),
            chunks_written=written,
            chunks_deleted=deleted,
            objects_changed=tuple(sorted(self.changes.loose)),
        )

    async def _flush_node(
        self, view: NodeView
    ) -> tuple[NodeSnapshot, list[tuple[ManifestRef, Manifest]]]:
        """The node as the new snapshot records it, and the manifests to write for it."""
        written = self.changes.chunks.get(view.path)
        manifests = view.manifests
        new: list[tuple[ManifestRef, Manifest]] = []
        if view.kind == "array" and written:
            manifests, new = await write_pieces(
                self.objects,
                manifests,
                view.layout.grid,
                *written.columns(),
                self.objects.config.manifest_split_refs,
            )
        node = NodeSnapshot(view.path, view.kind, view.meta.zarr_json, manifests)
        return node, new

    def transaction_log(self, snapshot_id: str = "") -> TransactionLog:
        """What committing this change set would record (also used to detect conflicts)."""
        summary = self.summary()
        chunk_changes = tuple(
            ArrayChunkChanges.from_coords(path, refs.coords_array())
            for path, refs in sorted(self.changes.chunks.items())
            if refs
        )
        return TransactionLog(
            snapshot_id=snapshot_id,
            new_groups=summary.new_groups,
            new_arrays=summary.new_arrays,
            updated_metadata=summary.updated_metadata,
            deleted_nodes=summary.deleted_nodes,
            chunks=chunk_changes,
            loose_keys=summary.objects_changed,
        )

    async def flush(
        self,
        message: str,
        metadata: dict[str, Any],
        *,
        amending: TransactionLog | None = None,
        author: Author | None = None,
        merged_parents: tuple[str, ...] = (),
    ) -> tuple[Snapshot, list[str]]:
        """Write manifests, a snapshot (by ``author``; a merge commit of ``merged_parents``
        when given) and its transaction log; publish nothing.

        With ``amending`` (the base snapshot's log), the new snapshot replaces the base: it
        takes the base's parent and a log covering both commits.
        Returns the snapshot and every storage key the snapshot depends on that this
        change set wrote (chunks included), for the caller to make durable.
        """
        history = self._history(amending is not None)
        flushed, (parent_id, recent, pages, page_keys) = await asyncio.gather(
            asyncio.gather(*(self._flush_node(v) for v in self._views.values())), history
        )
        nodes = tuple(sorted((node for node, _ in flushed), key=lambda n: n.path))
        loose = tuple(
            LooseObject(key, ref)
            for key in self.object_keys()
            if (ref := self.object_ref(key)) is not None
        )
        snapshot = Snapshot(
            id=new_id(),
            parent_id=parent_id,
            created_at=now_us(),
            message=message,
            metadata=metadata,
            nodes=nodes,
            loose=loose,
            recent_ancestors=recent,
            ancestor_pages=pages,
            author=author,
            merged_parents=merged_parents,
        )
        log = self.transaction_log(snapshot.id)
        if amending is not None:
            log = union_of_logs(amending, log, snapshot.id)
        manifests = [manifest for _, new in flushed for manifest in new]
        # one round of writes: nothing reads the snapshot before a ref or fork points to it,
        # and that comes after the caller made all of these durable
        keys, *_ = await asyncio.gather(
            self.objects.put_snapshot(snapshot, log),
            *(self.objects.put_manifest_as(ref, manifest) for ref, manifest in manifests),
        )
        keys += [manifest_key(ref.id) for ref, _ in manifests]
        keys += self.chunk_keys() + page_keys
        return snapshot, keys

    async def _history(
        self, amending: bool
    ) -> tuple[str | None, tuple[HistoryEntry, ...], tuple[HistoryPageRef, ...], list[str]]:
        """The new snapshot's parent and history index: a commit's parent is the base; an
        amend's, the base's parent, or where expiry made the base's history go on."""
        parent = self.base
        if amending:
            ancestor = (await current_cuts(self.objects)).get(self.base.id)
            if ancestor is None:
                base = self.base
                return base.parent_id, base.recent_ancestors, base.ancestor_pages, []
            parent = await self.objects.get_snapshot(ancestor)
        return (parent.id, *await index_of_child(self.objects, parent))

    def chunk_keys(self) -> list[str]:
        """The storage keys of the chunks this change set wrote (to make durable), each once:
        many refs may point into one object (at their offsets)."""
        return [chunk_key(c) for c in dict.fromkeys(self.changes.external_chunk_ids())]
