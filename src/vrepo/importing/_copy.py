"""Copying chunk objects byte for byte: bytes are read from the source store and written to
the session's store under the same key (below the target group), never decoded.

In this process, `copy_keys` keeps a bounded number of copies in flight. On a Dask
distributed cluster, `copy_on_cluster` gives each task a batch of keys and a fork of the
session; the forks' change sets (chunk refs, not bytes) are merged up a tree, as
`vrepo.dask.store` does, and the session merges the root.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vrepo._sync import run_sync
from vrepo.errors import StorageError

if TYPE_CHECKING:
    from zarr.abc.store import Store

    from vrepo.engine.session import ForkSession, Session

IN_FLIGHT = 32  # copies at once in one process
TASKS_PER_THREAD = 4  # batches per worker thread on a cluster: some balance, few tasks
MAX_BATCH = 1000  # keys per task at most
SPLIT_EVERY = 32  # fan-in of the tree that merges the forks


async def copy_keys(
    source: Store,
    target: Store,
    keys: Sequence[str],
    prefix: str,
    advance: Callable[[], None] | None = None,
) -> None:
    """Copy every key of ``keys`` from ``source`` to ``prefix + key`` in ``target``."""
    from zarr.core.buffer import default_buffer_prototype

    prototype = default_buffer_prototype()
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(key: str) -> None:
        async with limit:
            data = await source.get(key, prototype)
            if data is None:
                raise StorageError(f"{key!r} vanished from the source while it was copied")
            await target.set(prefix + key, data)
        if advance is not None:
            advance()

    await asyncio.gather(*(one(key) for key in keys))


def copy_here(
    source: Store, session: Session, keys: Sequence[str], prefix: str, *, show: bool
) -> None:
    """`copy_keys` into ``session`` in this process, with a rich progress bar if ``show``."""
    if not show:
        run_sync(copy_keys(source, session.store, keys, prefix))
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task(f"copying {len(keys)} chunks", total=len(keys))
    with bar:
        run_sync(copy_keys(source, session.store, keys, prefix, lambda: bar.advance(task)))


def distributed_client() -> Any:
    """The active Dask distributed client, or None (distributed is not imported for this)."""
    import sys

    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.default_client()
    except ValueError:
        return None


def copy_on_cluster(
    client: Any,
    source: Store,
    session: Session,
    keys: Sequence[str],
    prefix: str,
    *,
    progress: bool | None,
) -> None:
    """Copy ``keys`` on ``client``'s workers, in forks of ``session`` merged back into it."""
    import dask.array as da
    import numpy as np
    from dask.highlevelgraph import HighLevelGraph

    from vrepo._progress import compute
    from vrepo.dask._merge_tree import merge_tree

    if not keys:
        return
    fork = session.fork()
    batches = _batches(keys, sum(client.nthreads().values()) or 1)
    name = f"vrepo-import-{uuid.uuid4().hex}"
    layer = {
        (name, i): (_copy_batch, source, fork, batch, prefix) for i, batch in enumerate(batches)
    }
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[])
    copied = da.Array(
        graph, name, chunks=((1,) * len(batches),), dtype=object, meta=np.empty((0,), object)
    )
    root = merge_tree([copied], SPLIT_EVERY)
    merged = compute(root, progress=progress, description=f"copying {len(keys)} chunks")
    session.merge(merged.item())


def _batches(keys: Sequence[str], threads: int) -> list[list[str]]:
    size = max(1, min(MAX_BATCH, math.ceil(len(keys) / (threads * TASKS_PER_THREAD))))
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


def _copy_batch(source: Store, fork: ForkSession, keys: list[str], prefix: str) -> Any:
    """One task: copy ``keys`` into a fork of its own, a sibling of ``fork``; return it, boxed as a
    one-element object array (the merge tree's block type)."""
    import numpy as np

    mine = fork._sibling()  # one fork per task, even when tasks share the object
    run_sync(copy_keys(source, mine.store, keys, prefix))
    out = np.empty((1,), dtype=object)
    out[0] = mine
    return out
