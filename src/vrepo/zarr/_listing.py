"""Listing a session's keys: synthesised from its nodes, manifests and change set."""

from __future__ import annotations

from collections.abc import AsyncIterator

from vrepo.engine.content import Content
from vrepo.format import ChunkRef
from vrepo.zarr._keys import META, as_dir_prefix, node_key_prefix


async def walk_keys(
    content: Content, prefix: str, with_values: bool = False
) -> AsyncIterator[tuple[str, bytes | ChunkRef | None]]:
    """Each key starting with ``prefix`` and, if asked, its value or reference; lazily.

    Arrays outside the prefix are not enumerated. A key that is both a node's metadata or
    a chunk and an opaque object is listed once, as `get` reads it.
    """
    objects = [k for k in content.object_keys() if k.startswith(prefix)]
    listed: set[str] = set()
    for path in content.node_paths():
        view = content.node(path)
        if view is None:  # deleted while this walk was paused
            continue
        node_prefix = node_key_prefix(path)
        meta_key = node_prefix + META
        if meta_key.startswith(prefix):
            if objects:
                listed.add(meta_key)
            yield meta_key, view.meta.zarr_json
        if view.kind != "array" or not (
            node_prefix.startswith(prefix) or prefix.startswith(node_prefix)
        ):
            continue
        for row in await content.chunk_coords(path):
            coords = tuple(map(int, row))
            key = node_prefix + view.layout.chunk_key(coords)
            if not key.startswith(prefix):
                continue
            if objects:
                listed.add(key)
            yield key, await content.chunk_ref(path, coords) if with_values else None
    for key in objects:
        ref = content.object_ref(key)
        if key not in listed and ref is not None:
            yield key, ref


async def dir_names(content: Content, prefix: str) -> list[str]:
    """The names directly below directory ``prefix``, sorted (zarr's ``list_dir``)."""
    dir_prefix = as_dir_prefix(prefix.rstrip("/"))
    names: set[str] = set()
    for path in content.node_paths():
        node_prefix = node_key_prefix(path)
        meta_key = node_prefix + META
        if meta_key.startswith(dir_prefix):
            names.add(meta_key[len(dir_prefix) :].split("/", 1)[0])
        view = content.node(path)
        if view.kind != "array" or not dir_prefix.startswith(node_prefix):
            continue  # arrays below this directory are already named by their zarr.json
        layout = view.layout
        coords = await content.chunk_coords(path)
        if node_prefix == dir_prefix and layout.encoding == "default" and layout.separator == "/":
            if len(coords):
                names.add("c")
            continue
        for row in coords:
            key = node_prefix + layout.chunk_key(tuple(map(int, row)))
            if key.startswith(dir_prefix):
                names.add(key[len(dir_prefix) :].split("/", 1)[0])
    for key in content.object_keys():
        if key.startswith(dir_prefix):
            names.add(key[len(dir_prefix) :].split("/", 1)[0])
    return sorted(names)
