"""The tree that merges every task's fork into one, with fan-in ``split_every``.

Each write task returns its fork's change set; merging them level by level keeps any one task
from receiving 10,000 change sets, and the root hands the coordinator a single fork to merge.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.core import flatten
from dask.highlevelgraph import HighLevelGraph

from vrepo.engine.session import ForkSession
from vrepo.errors import InvalidArgumentError


def _unwrap(result: Any) -> ForkSession:
    return result.item() if isinstance(result, np.ndarray) else result


def _merge(*forks: Any) -> ForkSession:
    unwrapped = [_unwrap(fork) for fork in forks]
    merged = unwrapped[0]._sibling()
    merged.merge(*unwrapped)
    return merged


def _merge_root(*forks: Any) -> np.ndarray:
    out = np.empty((1,), dtype=object)
    out[0] = _merge(*forks)
    return out


def merge_tree(written: list[da.Array], split_every: int) -> da.Array | None:
    """A one-element object array: every block's fork merged up a tree of fan-in
    ``split_every`` (None if there are no blocks).

    A dask array, not delayed objects, so that computing it optimizes the graph as arrays
    (the writes fuse with their sources) and builds it only once.
    """
    if split_every < 2:
        raise InvalidArgumentError("split_every must be at least 2")
    keys = [key for array in written for key in flatten(array.__dask_keys__())]
    if not keys:
        return None
    name = "vrepo-merge-" + tokenize([array.name for array in written], split_every)
    layer: dict[Any, Any] = {}
    level = 0
    while len(keys) > split_every:
        groups = [keys[i : i + split_every] for i in range(0, len(keys), split_every)]
        keys = [(name, level, j) for j in range(len(groups))]
        layer.update({key: (_merge, *group) for key, group in zip(keys, groups, strict=True)})
        level += 1
    layer[(name, 0)] = (_merge_root, *keys)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=written)
    return da.Array(graph, name, chunks=((1,),), dtype=object, meta=np.empty((0,), dtype=object))
