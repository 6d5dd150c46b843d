"""Writes ``format_v1/``: a small repository in on-storage format version 1.

The fixture was made by vrepo 0.1.0 at commit f457ad4 (the last to write version 1), e.g.
``git archive f457ad4 src | tar -x -C /tmp/v1 && PYTHONPATH=/tmp/v1/src python
tests/data/make_format_v1.py``; tests/test_format_v1.py reads it with today's vrepo.
It is kept for reference: newer vrepo writes version 2, so running it now makes no fixture.

Contents: branch ``main`` with two commits on top of the root commit, tag ``v1`` at the
first; arrays ``/temp`` (float32 (64, 64), chunks (32, 32), uncompressed: 4 KiB chunk
objects) and ``/small`` (int8, inline chunks), and an opaque 1000-byte object ``extra/blob``.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

import vrepo

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "format_v1"


def temp_values() -> np.ndarray:
    return np.arange(64 * 64, dtype="float32").reshape(64, 64) / 7


def main() -> None:
    if vrepo.format.FORMAT_VERSION != 1:
        sys.exit("run this with vrepo from before format version 2 (see the docstring)")
    shutil.rmtree(OUT, ignore_errors=True)
    repo = vrepo.Repository.create(str(OUT))
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="w")
    temp = root.create_array(
        "temp", shape=(64, 64), chunks=(32, 32), dtype="float32", compressors=None, fill_value=0.0
    )
    temp[:] = temp_values()
    small = root.create_array("small", shape=(4,), chunks=(2,), dtype="int8", fill_value=0)
    small[:] = [1, 2, 3, 4]
    blob = bytes(range(250)) * 4
    prototype = default_buffer_prototype()
    zarr.core.sync.sync(session.store.set("extra/blob", prototype.buffer.from_bytes(blob)))
    first = session.commit("first")
    repo.create_tag("v1", first)
    temp[32:, 32:] = -1.0
    session.commit("second")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
