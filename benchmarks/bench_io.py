"""Bulk I/O: vrepo vs zarr's LocalStore, as ratios measured in the same run.

One float32 array of shape (256*512, 512), chunks (512, 512), no compression: 256 chunks of
exactly 1 MiB. Written (a) to a `zarr.storage.LocalStore` and (b) through a vrepo writable
session followed by `session.commit(...)` (which fsyncs: vrepo commits are durable, the
LocalStore baseline is not). Then read back fully through fresh store objects.

Runs are interleaved (the order alternates each round) and each pair uses fresh temporary
directories; dirty pages are flushed (os.sync, untimed) before every timed run.

Targets: write+commit ratio <= 1.10, read ratio <= 1.10. The gated ratio is the median over
rounds of vrepo/LocalStore within a round (adjacent runs share the machine's state); the
ratio of medians and the ratio of minimums are printed too.

    /work/venv/bin/python benchmarks/bench_io.py [--rounds 5] [--profile write|read]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys

import numpy as np
import zarr
from _common import (
    fmt_s,
    print_table,
    save_results,
    settle,
    summary,
    temp_dir,
    timed,
    verdict,
)
from zarr.storage import LocalStore

import vrepo

N_CHUNKS = 256
CHUNK = (512, 512)  # float32: 1 MiB per chunk
SHAPE = (N_CHUNKS * CHUNK[0], CHUNK[1])
TARGET_WRITE = 1.10
TARGET_READ = 1.10


def make_data() -> np.ndarray:
    return np.random.default_rng(42).random(SHAPE, dtype=np.float32)


def create(store) -> zarr.Array:
    return zarr.create_array(
        store, name="data", shape=SHAPE, chunks=CHUNK, dtype="float32",
        compressors=None, fill_value=0.0,
    )


# --- the four operations --------------------------------------------------------------------


def write_local(path: str, data: np.ndarray) -> None:
    arr = create(LocalStore(path))
    arr[:] = data


COMMIT_SECONDS: list[float] = []  # the commit's share of each vrepo write, for the report


def write_vrepo(path: str, data: np.ndarray) -> None:
    session = vrepo.Repository.open(path).writable_session("main")
    arr = create(session.store)
    arr[:] = data
    seconds, _ = timed(lambda: session.commit("write benchmark array"))
    COMMIT_SECONDS.append(seconds)


def read_local(path: str) -> np.ndarray:
    return zarr.open_array(LocalStore(path, read_only=True), path="data", mode="r")[:]


def read_vrepo(path: str) -> np.ndarray:
    store = vrepo.Repository.open(path).readonly_session("main").store
    return zarr.open_array(store, path="data", mode="r")[:]


# --- driver -----------------------------------------------------------------------------------


def one_round(data: np.ndarray, vrepo_first: bool) -> dict[str, float]:
    times: dict[str, float] = {}
    with temp_dir("io-local") as local_dir, temp_dir("io-vrepo") as vrepo_dir:
        vrepo_dir = f"{vrepo_dir}/repo"
        vrepo.Repository.create(vrepo_dir)  # setup, untimed
        writes = [("local", lambda: write_local(local_dir, data)),
                  ("vrepo", lambda: write_vrepo(vrepo_dir, data))]
        reads = [("local", lambda: read_local(local_dir)),
                 ("vrepo", lambda: read_vrepo(vrepo_dir))]
        if vrepo_first:
            writes.reverse()
            reads.reverse()
        for name, func in writes:
            settle()
            times[f"write_{name}"], _ = timed(func)
        times["commit_part"] = COMMIT_SECONDS[-1]
        for name, func in reads:
            settle()
            times[f"read_{name}"], out = timed(func)
            if not np.array_equal(out, data):
                raise SystemExit(f"read back through {name} differs from what was written")
            del out  # free the 256 MiB result now: a live one slows the next read down a lot
            gc.collect()
    return times


def profile(which: str, data: np.ndarray) -> None:
    import cProfile
    import pstats

    with temp_dir("io-profile") as d:
        path = f"{d}/repo"
        vrepo.Repository.create(path)
        if which == "read":
            write_vrepo(path, data)
            settle()
        prof = cProfile.Profile()
        prof.enable()
        write_vrepo(path, data) if which == "write" else read_vrepo(path)
        prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(35)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", choices=["write", "read"])
    args = parser.parse_args()

    data = make_data()  # generated once, before any timing
    if args.profile:
        profile(args.profile, data)
        return 0

    print(f"bench_io: {N_CHUNKS} chunks of 1 MiB ({data.nbytes / 2**20:.0f} MiB), "
          f"{args.rounds} interleaved rounds")
    one_round(data, vrepo_first=False)  # warm-up: imports, page cache, allocator; discarded
    rounds = []
    for i in range(args.rounds):
        t = one_round(data, vrepo_first=bool(i % 2))
        rounds.append(t)
        print(f"  round {i + 1}: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in t.items()))

    stats = {k: summary([r[k] for r in rounds]) for k in rounds[0]}
    rows, results, ok = [], {}, True
    for op, target in (("write", TARGET_WRITE), ("read", TARGET_READ)):
        base, ours = stats[f"{op}_local"], stats[f"{op}_vrepo"]
        paired = [r[f"{op}_vrepo"] / r[f"{op}_local"] for r in rounds]
        ratio = statistics.median(paired)  # the gated figure: adjacent runs cancel drift
        hit = ratio <= target
        ok &= hit
        label = "write (+commit)" if op == "write" else "read"
        rows.append([label, fmt_s(base["median"]), fmt_s(ours["median"]), f"{ratio:.3f}",
                     f"{ours['median'] / base['median']:.3f}",
                     f"{ours['min'] / base['min']:.3f}", f"<= {target:.2f}", verdict(hit)])
        results[op] = {"localstore_s": base, "vrepo_s": ours, "paired_ratios": paired,
                       "ratio": ratio, "ratio_of_medians": ours["median"] / base["median"],
                       "ratio_of_mins": ours["min"] / base["min"],
                       "target": target, "ok": hit}
    print()
    print_table(["operation", "LocalStore med", "vrepo med", "RATIO (median of pairs)",
                 "ratio of medians", "ratio of mins", "target", ""], rows)
    commit = stats["commit_part"]["median"]
    print(f"\nof vrepo's write, session.commit (manifest, snapshot, fsync of every chunk) took "
          f"{fmt_s(commit)} (median), {commit / stats['write_vrepo']['median']:.0%}")
    results["commit_part_s"] = stats["commit_part"]
    path = save_results("bench_io", {"rounds": args.rounds, **results})
    print(f"\nresults: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
