"""Writes ``format_v2/``: a repository in on-storage format version 2, without pieces.

Made by vrepo at commit c7635e7 (the last to write version 2: one manifest per array, and
snapshots without a history index), e.g. ``git archive c7635e7 src | tar -x -C /tmp/v2 &&
PYTHONPATH=/tmp/v2/src python tests/data/make_format_v2.py``; tests/test_format_v2.py reads
and writes it with today's vrepo. Kept for reference: newer vrepo writes version 3.

Contents: branch ``main`` with 40 commits on top of the root commit (so a history walk
crosses many snapshots without an index), tag ``v1`` at the 20th, branch ``side`` at the
10th; array ``/grid``, int32 (60, 40) in chunks (2, 4): a 30 x 10 chunk grid, 300 chunk
refs in one manifest, every chunk stored inline (4 x 8 bytes), and every commit rewrites
row ``i % 30`` of the grid with the value ``i``.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

import numpy as np
import zarr

import vrepo

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "format_v2"


def expected_grid(commits: int) -> np.ndarray:
    """The values of ``/grid`` after ``commits`` commits."""
    grid = np.zeros((60, 40), dtype="int32")
    for i in range(commits):
        grid[2 * (i % 30) : 2 * (i % 30) + 2, :] = i + 1
    return grid


def main() -> None:
    if vrepo.format.FORMAT_VERSION != 2:
        sys.exit("run this with vrepo from format version 2 (see the docstring)")
    shutil.rmtree(OUT, ignore_errors=True)
    repo = vrepo.Repository.create(str(OUT), config=vrepo.RepoConfig(inline_threshold_bytes=64))
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="grid", shape=(60, 40), chunks=(2, 4), dtype="int32")
    for i in range(40):
        grid = zarr.open_array(session.store, path="grid", mode="r+")
        grid[2 * (i % 30) : 2 * (i % 30) + 2, :] = i + 1
        sid = session.commit(f"commit {i + 1}")
        if i + 1 == 20:
            repo.create_tag("v1", sid)
        if i + 1 == 10:
            repo.create_branch("side", sid)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
