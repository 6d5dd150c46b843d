"""What verifying chunk checksums costs a bulk read: bench_io's 256 MiB read, checked and not.

The array of bench_io.py (256 uncompressed chunks of 1 MiB) is written once to a vrepo
repository, then read through ``zarr.open_array(store)[:]`` with a fresh
``VRepoStore(session, verify_checksums=True)`` and with ``verify_checksums=False`` (lengths
are checked either way), alternating (ABBA within each pair of rounds) so that drift cancels.
Before timing, one read of each kind warms the page cache and the allocator.

The gated figure is the median over rounds of the paired ratio checked / unchecked; the ratio
of medians and of minimums and the process CPU time are printed too. Target: <= 1.05.

    python benchmarks/bench_verified_reads.py [--rounds 100] [--compressed]

``--compressed`` stores the same array in zstd chunks (zarr's default, as in the 600 MB
dataset of bench_xarray_distributed.py), where decompression, not the checksum, dominates.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

import numpy as np
import zarr
from _common import save_results, temp_dir
from bench_io import CHUNK, SHAPE, make_data, write_vrepo

import vrepo

TARGET = 1.05


def read(path: str, verify: bool) -> np.ndarray:
    session = vrepo.Repository.open(path).readonly_session("main")
    store = vrepo.VRepoStore(session, verify_checksums=verify)
    return zarr.open_array(store, path="data", mode="r")[:]


def write_compressed(path: str, data: np.ndarray) -> None:
    """The same array in zstd chunks (zarr's default), as in bench_xarray_distributed."""
    session = vrepo.Repository.open(path).writable_session("main")
    arr = zarr.create_array(
        session.store, name="data", shape=SHAPE, chunks=CHUNK, dtype="float32", fill_value=0.0
    )
    arr[:] = data
    session.commit("write benchmark array, compressed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument(
        "--compressed", action="store_true", help="zstd chunks, as most real data is stored"
    )
    args = parser.parse_args()
    data = make_data()
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    with temp_dir("verified-reads") as d:
        path = f"{d}/repo"
        vrepo.Repository.create(path)
        (write_compressed if args.compressed else write_vrepo)(path, data)
        for verify in (True, False):
            if not np.array_equal(read(path, verify), data):
                raise SystemExit("the array read back differs from what was written")
        gc.collect()
        for i in range(args.rounds):
            for verify in (False, True) if i % 2 else (True, False):
                c, s = time.process_time(), time.perf_counter()
                out = read(path, verify)
                wall[verify].append(time.perf_counter() - s)
                cpu[verify].append(time.process_time() - c)
                del out  # free the 256 MiB result before the next read
                gc.collect()
    results = {}
    for name, times in (("wall", wall), ("cpu", cpu)):
        paired = [a / b for a, b in zip(times[True], times[False], strict=True)]
        results[name] = {
            "checked_median_s": statistics.median(times[True]),
            "unchecked_median_s": statistics.median(times[False]),
            "ratio": statistics.median(paired),
            "ratio_of_medians": statistics.median(times[True]) / statistics.median(times[False]),
            "ratio_of_mins": min(times[True]) / min(times[False]),
        }
        r = results[name]
        print(
            f"{name:4s}: checked {r['checked_median_s'] * 1e3:.1f} ms, unchecked "
            f"{r['unchecked_median_s'] * 1e3:.1f} ms (medians of {args.rounds}); checked/unchecked"
            f" median of pairs {r['ratio']:.3f}, ratio of medians {r['ratio_of_medians']:.3f}, "
            f"ratio of mins {r['ratio_of_mins']:.3f}"
        )
    ok = results["wall"]["ratio"] <= TARGET
    print(f"target: median of paired wall ratios <= {TARGET:.2f}: {'ok' if ok else 'MISSED'}")
    name = "bench_verified_reads" + ("_compressed" if args.compressed else "")
    path = save_results(name, {"rounds": args.rounds, **results, "ok": ok})
    print(f"results: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
