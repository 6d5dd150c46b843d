"""Split manifests: what a small commit and a small read cost in a big array.

Three workloads, each run with split manifests (the default, pieces of 32,768 refs) and, as
the baseline in the same run, with one manifest per array (``manifest_split_refs`` = 2**24:
what vrepo did before pieces):

- one chunk changed in an array of 1,000,000 chunk refs (1000 x 1000 chunks), then commit:
  time and new metadata bytes (manifests, snapshot, transaction log, history pages), targets
  <= 50 ms and <= 1 MiB;
- fresh open + one element of that array, in a new process (imports excluded from the time):
  target <= 50 ms and <= 64 MiB of memory above the interpreter (resident memory after the
  read, caches included, minus before it, imports done);
- 365 daily appends, each one time step of 1,000 chunks: the last append's commit (median of
  the last 10) against the first's (median of the first 10), target <= 1.5x.

The 1,000,000 refs point into one stored object (4 bytes each, at their offsets), set through
the session's change set, so the set-up takes seconds instead of writing a million files;
the changes measured are made through zarr, as a user makes them.

Run:  python benchmarks/bench_split_manifests.py [--rounds 5] [--refs 1000000]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zarr
from _common import fmt_bytes, fmt_s, print_table, save_results, temp_dir, verdict

import vrepo
from vrepo._sync import run_sync
from vrepo.engine.objects import chunk_key
from vrepo.format import ChunkRef, new_id

UNSPLIT = 2**24
METADATA_DIRS = ("manifests", "snapshots", "transactions", "history")


def _config(split: int) -> vrepo.RepoConfig:
    return vrepo.RepoConfig(manifest_split_refs=split)


def fill_refs(session: vrepo.Session, path: str, coords: np.ndarray, values: np.ndarray) -> None:
    """Point the chunks at ``coords`` at 4-byte values stored together in one new object."""
    content = run_sync(session._ensure_content())
    chunk_id = new_id()
    run_sync(content.objects.storage.put_new(chunk_key(chunk_id), values.astype("<i4").tobytes()))
    for first in range(0, len(coords), 65_536):  # as lists a batch at a time: 10M are 1 GiB
        batch = coords[first : first + 65_536].tolist()
        for k, c in enumerate(batch, start=first):
            content.changes.set_chunk(path, tuple(c), ChunkRef.external(chunk_id, 4, 4 * k))


def metadata_bytes(root: str) -> int:
    return sum(f.stat().st_size for d in METADATA_DIRS for f in Path(root, d).glob("*"))


def big_array(root: str, split: int, side: int) -> None:
    repo = vrepo.Repository.create(root, config=_config(split))
    session = repo.writable_session()
    zarr.create_array(
        session.store, name="x", shape=(side, side), chunks=(1, 1), dtype="i4", compressors=None
    )
    grid = np.indices((side, side)).reshape(2, -1).T
    fill_refs(session, "/x", grid, np.arange(side * side))
    session.commit(f"{side * side:,} chunk refs")


def one_chunk_commits(root: str, rounds: int, side: int) -> tuple[list[float], list[int]]:
    repo = vrepo.Repository.open(root)
    times, sizes = [], []
    rng = np.random.default_rng(1)
    for _ in range(rounds):
        before = metadata_bytes(root)
        session = repo.writable_session()
        i, j = (int(v) for v in rng.integers(0, side, 2))
        zarr.open_array(session.store, path="x", mode="r+")[i, j] = -1
        start = time.perf_counter()
        session.commit("one chunk")
        times.append(time.perf_counter() - start)
        sizes.append(metadata_bytes(root) - before)
    return times, sizes


_READER = """
import json, sys, time
import zarr, vrepo
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
rss0 = rss_kib()
start = time.perf_counter()
repo = vrepo.Repository.open(sys.argv[1])
value = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[int(sys.argv[2]), 5]
elapsed = time.perf_counter() - start
print(json.dumps({"s": elapsed, "rss_kib": rss_kib() - rss0, "value": int(value)}))
"""


def fresh_read(root: str, row: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _READER, root, str(row)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def daily_appends(root: str, split: int, days: int, width: int) -> list[float]:
    repo = vrepo.Repository.create(root, config=_config(split))
    session = repo.writable_session()
    zarr.create_array(
        session.store, name="t", shape=(0, width), chunks=(1, 1), dtype="i4", compressors=None
    )
    session.commit("empty")
    times = []
    for day in range(days):
        session = repo.writable_session()
        zarr.open_array(session.store, path="t", mode="r+").resize((day + 1, width))
        coords = np.stack([np.full(width, day), np.arange(width)], axis=1)
        fill_refs(session, "/t", coords, np.full(width, day))
        start = time.perf_counter()
        session.commit(f"day {day}")
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--refs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    side = math.isqrt(args.refs)
    print(f"bench_split_manifests: {side * side:,} chunk refs, {args.days} daily appends")
    results: dict[str, dict] = {}
    with temp_dir("split") as d:
        for name, split in (("split", 32768), ("unsplit", UNSPLIT)):
            root = f"{d}/{name}"
            started = time.perf_counter()
            big_array(root, split, side)
            print(f"  {name}: set up in {fmt_s(time.perf_counter() - started)}")
            times, sizes = one_chunk_commits(root, args.rounds, side)
            reads = [fresh_read(root, row) for row in range(1, args.rounds + 1)]
            assert all(r["value"] == row * side + 5 for row, r in enumerate(reads, 1))
            appends = daily_appends(f"{d}/{name}-daily", split, args.days, 1000)
            results[name] = {
                "commit_s": statistics.median(times),
                "new_metadata_bytes": statistics.median(sizes),
                "read_s": statistics.median(r["s"] for r in reads),
                "read_rss_kib": max(r["rss_kib"] for r in reads),
                "append_first_s": statistics.median(appends[:10]),
                "append_last_s": statistics.median(appends[-10:]),
            }
    s, u = results["split"], results["unsplit"]
    growth = s["append_last_s"] / s["append_first_s"]
    checks = {
        "commit": s["commit_s"] <= 0.050,
        "metadata": s["new_metadata_bytes"] <= 2**20,
        "read": s["read_s"] <= 0.050,
        "rss": s["read_rss_kib"] <= 64 * 1024,
        "append": growth <= 1.5,
    }

    def row(label: str, key: str, show, target: str = "", check: str | None = None) -> list:
        return [label, show(s[key]), show(u[key]), target, verdict(checks[check]) if check else ""]

    def kib(n: float) -> str:
        return fmt_bytes(n * 1024)

    print_table(
        ["measure", "split", "one manifest", "target", ""],
        [
            row("commit of one chunk", "commit_s", fmt_s, "<= 50 ms", "commit"),
            row("  new metadata", "new_metadata_bytes", fmt_bytes, "<= 1 MiB", "metadata"),
            row("fresh open + one element", "read_s", fmt_s, "<= 50 ms", "read"),
            row("  memory above the interpreter", "read_rss_kib", kib, "<= 64 MiB", "rss"),
            row("daily append: first commits", "append_first_s", fmt_s),
            row("daily append: last commits", "append_last_s", fmt_s),
            [
                "  last / first",
                f"{growth:.2f}",
                f"{u['append_last_s'] / u['append_first_s']:.2f}",
                "<= 1.5",
                verdict(checks["append"]),
            ],
        ],
    )
    path = save_results("bench_split_manifests", results)
    print(f"\nresults: {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
