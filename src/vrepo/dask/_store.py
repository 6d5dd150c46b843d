"""Writing dask arrays into a vrepo session from many workers at once.

Every block is written by a task into its own fork of the coordinator's session; tasks return
only their forks' change sets (chunk refs, never chunk bytes, except chunks small enough to be
inlined), which are merged up a tree of ``split_every`` fan-in, so no single task receives all
of them. The coordinator then merges the root once and commits when it chooses.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import zarr

from vrepo import config as _settings
from vrepo._progress import compute
from vrepo.dask import _merge_tree, _zarr_internals
from vrepo.dask._chunk_writer import Region, array_config, write_block
from vrepo.engine.session import ForkSession, Session
from vrepo.errors import InvalidArgumentError
from vrepo.zarr.store import VRepoStore

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfig


def store(
    sources: da.Array | Sequence[da.Array],
    targets: zarr.Array | Sequence[zarr.Array],
    regions: Region | Sequence[Region | None] | None = None,
    split_every: int | None = None,
    *,
    progress: bool | None = None,
) -> None:
    """Write dask arrays into zarr arrays of one writable vrepo session, on any scheduler.

    ``targets`` are arrays opened on ``session.store``; ``regions`` optionally place each
    source inside its target (default: the whole target). The writes land in the session as
    uncommitted changes; call ``session.commit(...)`` to publish them atomically. Blocks that
    share a zarr chunk would overwrite each other's data, so that raises `ChunkConflictError`:
    rechunk the source to multiples of the target's chunks. ``split_every`` (default: the
    ``dask.split-every`` setting, 32) is the fan-in of the tree that merges the change sets.
    ``progress`` shows a progress bar (dask's own on a distributed client, rich elsewhere);
    by default when standard error is a terminal or in Jupyter, never in batch logs.
    """
    sources, targets = _as_list(sources), _as_list(targets)
    if len(sources) != len(targets):
        raise InvalidArgumentError(
            f"{len(sources)} sources but {len(targets)} targets: pass one target per source"
        )
    regions_list = _regions(regions, len(sources))
    session = _session_of(targets)
    fork = session.fork()
    written = [
        _written_blocks(source, target, region, fork)
        for source, target, region in zip(sources, targets, regions_list, strict=True)
    ]
    if split_every is None:
        split_every = _settings.get("dask.split-every")
    root = _merge_tree.merge_tree(written, split_every)
    if root is None:
        return
    blocks = sum(w.npartitions for w in written)
    merged = compute(root, progress=progress, description=f"writing {blocks} blocks")
    session.merge(merged.item())


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _regions(regions: Any, n: int) -> list[Region | None]:
    if regions is None:
        return [None] * n
    if isinstance(regions, tuple) and all(isinstance(r, slice) for r in regions):
        return [regions] * n if n == 1 else _regions([regions], n)
    regions = list(regions)
    if len(regions) != n:
        raise InvalidArgumentError(f"{len(regions)} regions for {n} sources: pass one per source")
    return regions


def _session_of(targets: list[zarr.Array]) -> Session:
    sessions = {
        id(t.store.session): t.store.session for t in targets if isinstance(t.store, VRepoStore)
    }
    if len(sessions) != 1 or not all(isinstance(t.store, VRepoStore) for t in targets):
        raise InvalidArgumentError(
            "targets must be zarr arrays opened on one writable vrepo session's store "
            "(zarr.open_array(session.store, path=...))"
        )
    session = next(iter(sessions.values()))
    if session.read_only or isinstance(session, ForkSession):
        raise InvalidArgumentError("targets must belong to a writable (coordinator) session")
    return session


def _written_blocks(
    source: da.Array, target: zarr.Array, region: Region | None, fork: ForkSession
) -> da.Array:
    """An object array with one element per block of ``source``: the fork that wrote it.

    Built with map_blocks, so the fork is in the graph once and the writes fuse with the
    tasks that compute ``source``.
    """
    if source.ndim != target.ndim:
        raise InvalidArgumentError(
            f"source has {source.ndim} dimensions, target {target.path!r} has {target.ndim}"
        )
    origin = (0,) * target.ndim if region is None else tuple(s.start or 0 for s in region)
    # Where each block starts in the target, per dimension: a task finds its own by its
    # block_id. (Not dask.layers.ArraySliceDep: map_blocks takes such arguments from dask
    # 2025.4 on; older releases hand the function the dependency's token, a string.)
    starts = tuple(
        tuple(np.cumsum((o, *sizes[:-1])).tolist())
        for o, sizes in zip(origin, source.chunks, strict=True)
    )
    return source.map_blocks(
        _write_mapped,
        fork=fork,
        path=target.path,
        config=array_config(target),  # write_empty_chunks and the like, as opened
        starts=starts,
        chunks=tuple((1,) * len(sizes) for sizes in source.chunks),
        dtype=object,
        meta=np.empty((0,) * source.ndim, dtype=object),
    )


def _write_mapped(
    block: Any,
    fork: ForkSession,
    path: str,
    config: ArrayConfig | None,
    starts: tuple[tuple[int, ...], ...],
    block_id: tuple[int, ...],
) -> np.ndarray:
    region = tuple(
        slice(s[i], s[i] + n) for s, i, n in zip(starts, block_id, block.shape, strict=True)
    )
    mine = fork._sibling()  # one fork per task, even when tasks share the object (threads)
    write_block(_open_array(mine, path, config), region, block)
    out = np.empty((1,) * block.ndim, dtype=object)
    out[(0,) * block.ndim] = mine
    return out


_METADATA: OrderedDict[tuple[str, str], Any] = OrderedDict()
_METADATA_KEPT = 64


def _open_array(fork: ForkSession, path: str, config: ArrayConfig | None) -> zarr.Array:
    """The array at ``path`` of ``fork`` with ``config``, its metadata read once per process
    and base.

    A fork's base snapshot never changes, so neither does the metadata it holds; opening
    the array afresh for every task (zarr.open_array) would cost about 1 ms a task. That is
    still the way when the installed zarr cannot build an array from metadata.
    """
    from_metadata = _zarr_internals.array_from_metadata
    if from_metadata is None:
        array = zarr.open_array(fork.store, path=path, mode="r+", zarr_format=3)
        if config is None or not hasattr(array, "with_config"):
            return array
        return array.with_config(config)
    key = (fork.snapshot_id, path)
    metadata = _METADATA.get(key)
    if metadata is None:
        metadata = zarr.open_array(fork.store, path=path, mode="r+", zarr_format=3).metadata
        _METADATA[key] = metadata
        while len(_METADATA) > _METADATA_KEPT:
            _METADATA.popitem(last=False)
    return from_metadata(metadata, fork.store, path, config)
