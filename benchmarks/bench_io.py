"""Bulk I/O: vrepo vs zarr's LocalStore, as ratios measured in the same run.

One float32 array of shape (256*512, 512), chunks (512, 512), no compression: 256 chunks of
exactly 1 MiB. Written (a) to a `zarr.storage.LocalStore` and (b) through a vrepo writable
session followed by `session.commit(...)` (which fsyncs: vrepo commits are durable, the
LocalStore baseline is not). Then read back fully through fresh store objects.

Each round runs ABBA (LocalStore, vrepo, vrepo, LocalStore; the next round starts with
vrepo), every write into a fresh temporary directory, then reads the four copies back in the
same order. Untimed: dirty pages are flushed (os.sync) before every write, all four copies
are read once with plain file reads before the timed reads (so both kinds read from the page
cache), one untimed zarr read precedes them (the first large read after writing is several
times slower whatever the store), and each read's result is freed before the next.

Targets: write+commit ratio <= 1.10, read ratio <= 1.10. The gated ratio is the median over
rounds of vrepo/LocalStore within a round (ABBA runs share the machine's state); the
ratio of medians and the ratio of minimums are printed too.

    /work/venv/bin/python benchmarks/bench_io.py [--rounds 7]
    py-spy record --threads -o prof.svg -- /work/venv/bin/python benchmarks/bench_io.py \\
        --only write-vrepo   # or write-local, read-vrepo, read-local
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys

import numpy as np
import zarr
from _common import (
    fmt_s,
    fsync_tree,
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
        store,
        name="data",
        shape=SHAPE,
        chunks=CHUNK,
        dtype="float32",
        compressors=None,
        fill_value=0.0,
    )


# --- the four operations -------------------------------------------------------------------------


LOCAL_FSYNC_SECONDS: list[float] = []  # what making LocalStore's write durable costs


def write_local(path: str, data: np.ndarray) -> None:
    arr = create(LocalStore(path))
    arr[:] = data
    seconds, _ = timed(lambda: fsync_tree(path))
    LOCAL_FSYNC_SECONDS.append(seconds)


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


# --- driver --------------------------------------------------------------------------------------


def warm_page_cache(root: str) -> None:
    """Read every file below ``root`` (plain file reads: no zarr or vrepo cache is involved)."""
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                while f.read(1 << 22):
                    pass


def one_round(data: np.ndarray, vrepo_first: bool) -> dict[str, float]:
    """ABBA: write L V V L (or V L L V), then read the four copies back in the same order.

    The two runs of each kind are averaged, so a linear drift within the round
    cancels out of the round's ratio.
    """
    times: dict[str, float] = {}
    order = ["vrepo", "local"] if vrepo_first else ["local", "vrepo"]
    order = [order[0], order[1], order[1], order[0]]
    with contextlib.ExitStack() as stack:
        dirs = [stack.enter_context(temp_dir(f"io-{kind}")) for kind in order]
        dirs = [f"{d}/repo" if kind == "vrepo" else d for d, kind in zip(dirs, order, strict=True)]
        for d, kind in zip(dirs, order, strict=True):
            if kind == "vrepo":
                vrepo.Repository.create(d)  # setup, untimed
        for d, kind in zip(dirs, order, strict=True):
            settle()
            write = write_vrepo if kind == "vrepo" else write_local
            seconds, _ = timed(lambda: write(d, data))  # noqa: B023
            if kind == "local":  # the gated baseline is LocalStore as users run it: no fsync
                seconds -= LOCAL_FSYNC_SECONDS[-1]
            times[f"write_{kind}"] = times.get(f"write_{kind}", 0.0) + seconds / 2
        times["commit_part"] = (COMMIT_SECONDS[-1] + COMMIT_SECONDS[-2]) / 2
        times["local_fsync"] = (LOCAL_FSYNC_SECONDS[-1] + LOCAL_FSYNC_SECONDS[-2]) / 2
        settle()
        for d in dirs:
            warm_page_cache(d)  # both kinds read from the page cache, not from the disk
        # the first big read after the writes is 2-7x slower whatever the store (memory
        # allocator and kernel state); an untimed zarr read absorbs that
        (read_vrepo if order[0] == "vrepo" else read_local)(dirs[0])
        gc.collect()
        for d, kind in zip(dirs, order, strict=True):
            read = read_vrepo if kind == "vrepo" else read_local
            seconds, out = timed(lambda: read(d))  # noqa: B023
            times[f"read_{kind}"] = times.get(f"read_{kind}", 0.0) + seconds / 2
            if not np.array_equal(out, data):
                raise SystemExit(f"read back through {kind} differs from what was written")
            del out  # free the 256 MiB result now: a live one slows the next read down a lot
            gc.collect()
    return times


def repeat_only(op: str, data: np.ndarray, times: int) -> None:
    """Run one operation again and again, for a sampling profiler such as py-spy."""
    kind, _, store = op.partition("-")
    with temp_dir("io-profile") as d:
        path = f"{d}/repo" if store == "vrepo" else d
        if store == "vrepo":
            vrepo.Repository.create(path)
        write = write_vrepo if store == "vrepo" else write_local
        read = read_vrepo if store == "vrepo" else read_local
        write(path, data)
        for _ in range(times):
            if kind == "write":
                with temp_dir("io-profile") as w:
                    w = f"{w}/repo" if store == "vrepo" else w
                    if store == "vrepo":
                        vrepo.Repository.create(w)
                    write(w, data)
            else:
                read(path)
                gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--only",
        choices=["write-local", "write-vrepo", "read-local", "read-vrepo"],
        help="just repeat one operation (no timing), to run under a profiler",
    )
    parser.add_argument("--repeat", type=int, default=10, help="repetitions for --only")
    args = parser.parse_args()

    data = make_data()  # generated once, before any timing
    if args.only:
        repeat_only(args.only, data, args.repeat)
        return 0

    print(
        f"bench_io: {N_CHUNKS} chunks of 1 MiB ({data.nbytes / 2**20:.0f} MiB), "
        f"{args.rounds} interleaved rounds"
    )
    one_round(data, vrepo_first=False)  # warm-up: imports, page cache, allocator; discarded
    rounds = []
    for i in range(args.rounds):
        t = one_round(data, vrepo_first=bool(i % 2))
        rounds.append(t)
        print(
            f"  round {i + 1} (mean of 2 each): "
            + ", ".join(f"{k} {fmt_s(v)}" for k, v in t.items())
        )

    stats = {k: summary([r[k] for r in rounds]) for k in rounds[0]}
    rows, results, ok = [], {}, True
    for op, target in (("write", TARGET_WRITE), ("read", TARGET_READ)):
        base, ours = stats[f"{op}_local"], stats[f"{op}_vrepo"]
        paired = [r[f"{op}_vrepo"] / r[f"{op}_local"] for r in rounds]
        ratio = statistics.median(paired)  # the gated figure: adjacent runs cancel drift
        hit = ratio <= target
        ok &= hit
        label = "write (+commit)" if op == "write" else "read"
        rows.append(
            [
                label,
                fmt_s(base["median"]),
                fmt_s(ours["median"]),
                f"{ratio:.3f}",
                f"{ours['median'] / base['median']:.3f}",
                f"{ours['min'] / base['min']:.3f}",
                f"<= {target:.2f}",
                verdict(hit),
            ]
        )
        results[op] = {
            "localstore_s": base,
            "vrepo_s": ours,
            "paired_ratios": paired,
            "ratio": ratio,
            "ratio_of_medians": ours["median"] / base["median"],
            "ratio_of_mins": ours["min"] / base["min"],
            "target": target,
            "ok": hit,
        }
    print()
    print_table(
        [
            "operation",
            "LocalStore med",
            "vrepo med",
            "RATIO (median of pairs)",
            "ratio of medians",
            "ratio of mins",
            "target",
            "",
        ],
        rows,
    )
    commit = stats["commit_part"]["median"]
    print(
        f"\nof vrepo's write, session.commit (manifest, snapshot, fsync of every chunk) took "
        f"{fmt_s(commit)} (median), {commit / stats['write_vrepo']['median']:.0%}"
    )
    results["commit_part_s"] = stats["commit_part"]
    durable = statistics.median(
        r["write_vrepo"] / (r["write_local"] + r["local_fsync"]) for r in rounds
    )
    print(
        "vrepo's commit makes every chunk durable (fsync) before publishing; LocalStore "
        "leaves them in the page cache. Against LocalStore + an fsync of what it wrote "
        f"({fmt_s(stats['local_fsync']['median'])}), the write ratio is {durable:.3f} "
        "(informational, not gated)"
    )
    results["write_vs_durable_localstore"] = durable
    path = save_results("bench_io", {"rounds": args.rounds, **results})
    print(f"\nresults: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
