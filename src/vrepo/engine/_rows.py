"""Set operations on rows of chunk coordinates (integer arrays of shape (n, ndim)).

numpy's set functions work on 1-D arrays; viewing each row as one opaque item lets them
compare whole coordinates at once, with no Python loop over chunks. For a few rows (a
commit of a chunk or two checked against another's) Python sets are several times cheaper
than numpy's sorting set functions, whose cost there is all call overhead.
"""

from __future__ import annotations

import numpy as np

_FEW_ROWS = 64  # up to this many rows in all, compare as Python sets of tuples


def _as_items(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=dtype)
    return rows.view(np.dtype((np.void, dtype.itemsize * rows.shape[1]))).ravel()


def rows_in(rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Boolean mask: which rows of ``rows`` appear among the rows of ``candidates``."""
    if rows.shape[1] == 0:
        return np.full(len(rows), len(candidates) > 0)
    return np.isin(_as_items(rows, rows.dtype), _as_items(candidates, rows.dtype))


def common_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distinct rows present in both arrays, in lexicographic order."""
    if a.shape[1] == 0:
        return a[:1] if len(a) and len(b) else a[:0]
    if len(a) + len(b) <= _FEW_ROWS:
        common = sorted(set(map(tuple, a.tolist())).intersection(map(tuple, b.tolist())))
        return np.array(common, dtype=a.dtype).reshape(len(common), a.shape[1])
    common = np.intersect1d(_as_items(a, a.dtype), _as_items(b, a.dtype))
    rows = common.view(a.dtype).reshape(-1, a.shape[1])
    return rows[np.lexsort(rows.T[::-1])]
