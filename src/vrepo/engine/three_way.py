"""Three-way merges of whole snapshots, at node, metadata and chunk granularity.

Given a merge base, a *source* (the changes to bring in) and a session on the *destination*,
`merge_into_content` records in the session's change set every change the source made since
the base that the destination did not make too: node metadata, nodes added or deleted,
chunk refs (no chunk byte is read or copied: the refs are the same objects) and opaque
objects. A change both sides made identically is taken once; different changes to one chunk
or one node's metadata are conflicts, listed as `Conflict` (as a commit's rebase lists them),
unless a strategy settles them. Chunk comparisons run on manifest columns with numpy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vrepo.engine._rows import common_rows, rows_in
from vrepo.engine.chunk_changes import changes_of_columns
from vrepo.engine.conflicts import Conflict
from vrepo.engine.content import Content
from vrepo.engine.diff import ChunkDelta, chunk_delta
from vrepo.engine.manifest_pieces import merged_manifest
from vrepo.engine.node import NodeMetadata, parse_node_metadata
from vrepo.engine.objects import ObjectIO
from vrepo.errors import InvalidArgumentError
from vrepo.format import ChunkRef, Manifest, NodeSnapshot, Snapshot
from vrepo.format.manifest_split import select_rows

Strategy = Literal["fail", "source-wins", "dest-wins"]
STRATEGIES: tuple[Strategy, ...] = ("fail", "source-wins", "dest-wins")


def check_strategies(strategy: object, metadata_strategy: object) -> None:
    """`InvalidArgumentError` unless both are one of `STRATEGIES`."""
    for name, value in (("strategy", strategy), ("metadata_strategy", metadata_strategy)):
        if value not in STRATEGIES:
            raise InvalidArgumentError(
                f"{name} must be one of {', '.join(map(repr, STRATEGIES))}, got {value!r}"
            )


@dataclass
class MergeOutcome:
    """What a three-way merge found: the conflicts it could not settle, and those a
    strategy settled (kept for the caller to report)."""

    conflicts: list[Conflict] = field(default_factory=list)
    settled: list[Conflict] = field(default_factory=list)


async def merge_into_content(
    content: Content,
    base: Snapshot,
    source: Snapshot,
    *,
    strategy: Strategy = "fail",
    metadata_strategy: Strategy = "fail",
) -> MergeOutcome:
    """Record in ``content`` (a session on the destination's head) the source's changes
    since ``base``. Returns the conflicts; with any left unsettled the caller discards
    ``content``'s changes (they may be partly recorded)."""
    dest = content.base
    outcome = MergeOutcome()
    paths = sorted({n.path for s in (base, source, dest) for n in s.nodes})
    nodes = [(p, base.node(p), source.node(p), dest.node(p)) for p in paths]
    await asyncio.gather(
        *(
            _merge_node(content, p, b, s, d, strategy, metadata_strategy, outcome)
            for p, b, s, d in nodes
            if not _same(b, s)
        )
    )
    _merge_objects(content, base, source, strategy, outcome)
    outcome.conflicts.sort(key=lambda c: (c.path, c.kind))
    return outcome


def _same(a: NodeSnapshot | None, b: NodeSnapshot | None) -> bool:
    """Whether two versions of a node are the same objects (cheap: no manifest is read)."""
    if a is None or b is None:
        return a is b
    return a.kind == b.kind and a.zarr_json == b.zarr_json and a.manifests == b.manifests


async def _alike(objects: ObjectIO, a: NodeSnapshot | None, b: NodeSnapshot | None) -> bool:
    """Whether two versions of a node hold the same metadata and chunk refs, though their
    manifests may be other objects (a merge rewrites the manifests of what it takes)."""
    if _same(a, b):
        return True
    if a is None or b is None or a.kind != b.kind or a.zarr_json != b.zarr_json:
        return False
    if a.kind != "array":
        return True
    ndim = _meta(a).layout.ndim
    return not len((await chunk_delta(objects, a.manifests, b.manifests, ndim)).coords())


async def _merge_node(
    content: Content,
    path: str,
    b: NodeSnapshot | None,
    s: NodeSnapshot | None,
    d: NodeSnapshot | None,
    strategy: Strategy,
    metadata_strategy: Strategy,
    outcome: MergeOutcome,
) -> None:
    """One node the source changed since the base (``b``: None when it did not exist)."""
    objects = content.objects
    if await _alike(objects, s, d) or await _alike(objects, b, s):
        return  # both sides changed it alike, or the source changed only manifest objects
    if await _alike(objects, b, d):  # only the source changed it
        await _take_source_node(content, s, d)
        return
    # both changed it, differently
    if s is None or d is None:
        kind = "delete_of_updated_node" if s is None else "update_of_deleted_node"
        _settle(Conflict(kind, path), metadata_strategy, outcome)
        if metadata_strategy == "source-wins":
            await _take_source_node(content, s, d)
        return
    meta_s, meta_d = _meta(s), _meta(d)
    meta_b = _meta(b) if b is not None else None
    structural = s.kind != d.kind or (
        s.kind == "array"
        and not (
            meta_s.layout.compatible_with(meta_d.layout)
            and (meta_b is None or meta_b.kind != "array"
                 or meta_b.layout.compatible_with(meta_s.layout))
        )
    )  # fmt: skip
    if structural:  # re-created or re-laid-out on one side: whole nodes only
        kind = "node_created_twice" if b is None else "metadata"
        _settle(Conflict(kind, path), metadata_strategy, outcome)
        if metadata_strategy == "source-wins":
            await _take_source_node(content, s, d)
        return
    appended = _appended_on_both(meta_b, meta_s, meta_d)
    if appended is not None:  # even to one shape: the appended chunks differ
        outcome.conflicts.append(Conflict("appended_on_both", path, detail=appended))
        return
    if s.zarr_json != d.zarr_json and (b is None or b.zarr_json not in (s.zarr_json, d.zarr_json)):
        kind = "node_created_twice" if b is None else "metadata"
        _settle(Conflict(kind, path), metadata_strategy, outcome)
        if metadata_strategy == "source-wins":
            content.set_node(path, meta_s)
    elif b is None or b.zarr_json != s.zarr_json:
        content.set_node(path, meta_s)  # only the source changed the metadata
    if s.kind == "array":
        await _merge_chunks(content, path, b, s, d, meta_s, strategy, outcome)


async def _take_source_node(
    content: Content, s: NodeSnapshot | None, d: NodeSnapshot | None
) -> None:
    """Make the destination's node the source's: deleted, or the source's metadata and,
    for an array, the source's chunks (only those that differ, when the layouts agree)."""
    if s is None:
        if d is not None:
            content.delete_node(d.path)
        return
    meta = _meta(s)
    content.set_node(s.path, meta)
    if s.kind != "array":
        return
    view = content.node(s.path)
    kept = view.manifests if view is not None else ()
    delta = await chunk_delta(content.objects, kept, s.manifests, meta.layout.ndim)
    await _write_delta(content, s, delta, delta.coords())


async def _merge_chunks(
    content: Content,
    path: str,
    b: NodeSnapshot | None,
    s: NodeSnapshot,
    d: NodeSnapshot,
    meta_s: NodeMetadata,
    strategy: Strategy,
    outcome: MergeOutcome,
) -> None:
    """The chunk-level three-way merge of one array both sides kept with one layout."""
    ndim = meta_s.layout.ndim
    base = b.manifests if b is not None and b.kind == "array" else ()
    theirs, ours, between = await asyncio.gather(
        chunk_delta(content.objects, base, s.manifests, ndim),  # the source's changes
        chunk_delta(content.objects, base, d.manifests, ndim),  # the destination's
        chunk_delta(content.objects, d.manifests, s.manifests, ndim),  # where they differ
    )
    wanted = theirs.coords()
    if not len(wanted):
        return
    both = common_rows(wanted, ours.coords())
    clash = both[rows_in(both, between.coords())] if len(both) else both
    if len(clash):
        _settle(Conflict("chunks", path, tuple(map(tuple, clash.tolist()))), strategy, outcome)
        if strategy != "source-wins":
            wanted = wanted[~rows_in(wanted, clash)]
    # the same change on both sides is already the destination's
    wanted = wanted[rows_in(wanted, between.coords())]
    await _write_delta(content, s, theirs, wanted)


async def _write_delta(
    content: Content, s: NodeSnapshot, delta: ChunkDelta, wanted: np.ndarray
) -> None:
    """Record the source's refs (or deletions) for the chunks ``wanted`` of ``delta``."""
    if not len(wanted):
        return
    ndim = wanted.shape[1]
    written = delta.written[rows_in(delta.written, wanted)]
    removed = delta.removed[rows_in(delta.removed, wanted)]
    source = await merged_manifest(content.objects, s.manifests, ndim)
    rows = np.flatnonzero(rows_in(source.coords(), written))
    refs = Manifest(*select_rows(source.columns, rows)) if len(rows) else Manifest.empty(ndim)
    content.changes.set_chunks(s.path, changes_of_columns(ndim, refs, removed))


def _merge_objects(
    content: Content, base: Snapshot, source: Snapshot, strategy: Strategy, outcome: MergeOutcome
) -> None:
    """Opaque objects, key by key, as chunks: a different change on both sides conflicts."""
    b, s = _loose(base), _loose(source)
    d = _loose(content.base)
    for key in sorted(b.keys() | s.keys()):
        theirs, ours = s.get(key), d.get(key)
        if theirs == b.get(key) or theirs == ours:
            continue
        if ours != b.get(key):
            _settle(Conflict("object", key), strategy, outcome)
            if strategy != "source-wins":
                continue
        if theirs is None:
            content.delete_object(key)
        else:
            content.changes.loose[key] = theirs


def _loose(snapshot: Snapshot) -> dict[str, ChunkRef]:
    return {o.key: o.ref for o in snapshot.loose}


def _settle(conflict: Conflict, strategy: Strategy, outcome: MergeOutcome) -> None:
    (outcome.conflicts if strategy == "fail" else outcome.settled).append(conflict)


def _meta(node: NodeSnapshot) -> NodeMetadata:
    meta = parse_node_metadata(node.zarr_json)
    assert meta is not None  # a snapshot's nodes were parsed when it was written
    return meta


def _appended_on_both(b: NodeMetadata | None, s: NodeMetadata, d: NodeMetadata) -> str | None:
    """The dimension (its name, else its index) that both sides grew from the base's
    shape, if any: two appends along one axis would interleave, so never merge them."""
    if b is None or b.layout is None or s.layout is None or d.layout is None:
        return None
    shapes = b.layout.shape, s.layout.shape, d.layout.shape
    if len({len(x) for x in shapes}) != 1:
        return None
    names = _dimension_names(s)
    for axis, (old, new_s, new_d) in enumerate(zip(*shapes, strict=True)):
        if new_s > old and new_d > old:
            return names[axis] if axis < len(names) and names[axis] else str(axis)
    return None


def _dimension_names(meta: NodeMetadata) -> Sequence[str | None]:
    try:
        return json.loads(meta.zarr_json).get("dimension_names") or ()
    except ValueError:
        return ()


__all__ = ["STRATEGIES", "MergeOutcome", "Strategy", "check_strategies", "merge_into_content"]
