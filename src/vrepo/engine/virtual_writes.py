"""Writing virtual chunk refs into a session's change set, as columns (no object per ref)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vrepo.engine.chunk_changes import ChunkChanges
from vrepo.engine.content import Content
from vrepo.engine.virtual_refs import location_table, take_sources
from vrepo.errors import InvalidArgumentError
from vrepo.format import Manifest
from vrepo.format.chunk_grid import as_coords
from vrepo.format.virtual_columns import virtual_columns


async def set_virtual_refs(
    content: Content,
    array_path: str,
    chunk_coords: Any,
    locations: Any,
    offsets: Any,
    lengths: Any,
    *,
    location_index: Any | None = None,
    validators: Mapping[str, str] | None = None,
) -> int:
    """Point chunks of the array at ``array_path`` at byte ranges of outside objects; returns
    how many refs were set. See `Session.set_virtual_refs`."""
    path = "/" + str(array_path).strip("/")
    view = content.node(path)
    if view is None or view.layout is None:
        raise InvalidArgumentError(
            f"set_virtual_refs: {path} is not an array in this session; create the array "
            "first (zarr.create_array on session.store), then set its chunks' refs"
        )
    layout = view.layout
    try:
        coords = as_coords(chunk_coords, layout.ndim)
    except ValueError as e:
        raise InvalidArgumentError(f"set_virtual_refs on {path}: {e}") from None
    grid = np.asarray(layout.grid, dtype=np.uint64)
    outside = ~(coords < grid).all(axis=1) if len(coords) else np.zeros(0, bool)
    if outside.any():
        bad = tuple(int(x) for x in coords[np.argmax(outside)])
        raise InvalidArgumentError(
            f"set_virtual_refs on {path}: chunk {bad} is outside the array's chunk grid "
            f"{layout.grid}; resize the array first"
        )
    table, index = location_table(locations, location_index)
    sources = await take_sources(table, content.objects.config.virtual_chunk_containers, validators)
    sources, index = _distinct(sources, index)
    try:
        cols = virtual_columns(layout.ndim, coords, index, offsets, lengths, sources)
    except ValueError as e:
        raise InvalidArgumentError(f"set_virtual_refs on {path}: {e}") from None
    written = Manifest(*cols)
    if len(written):
        content.changes.set_chunks(path, ChunkChanges.of_written(written))
    return len(written)


def _distinct(
    sources: tuple[tuple[str, str], ...], index: np.ndarray
) -> tuple[tuple[tuple[str, str], ...], np.ndarray]:
    """Each source once (spellings that normalize alike, a table given with repeats), the
    index renumbered (a loop over the table, not the refs)."""
    first: dict[tuple[str, str], int] = {}
    renumber = np.array([first.setdefault(s, len(first)) for s in sources], dtype=np.int64)
    if len(first) == len(sources):
        return sources, index
    index = np.asarray(index)
    if len(index) and (index.min() < 0 or index.max() >= len(sources)):
        raise InvalidArgumentError("set_virtual_refs: a location index is out of range")
    return tuple(first), renumber[index]
