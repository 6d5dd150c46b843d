"""10,000,000 chunk refs in one array, written and committed: time and peak memory.

An array of 10,000,000 chunks (a 3163 x 3163 grid of 1 x 1 chunks, int32) gets a ref for every
chunk, written in commits of ``--batch`` refs (whole rows of the grid), each made by its own
session, as a job that commits as it goes does. Each configuration runs in a new process, and
its peak resident memory (``ru_maxrss``) is reported above that of the same process before
the first write (imports done, repository created):

- 1,000,000 refs in commits of 1,000,000, the baseline;
- 10,000,000 refs in commits of 1,000,000: bounded memory means the same peak as the
  baseline, whatever the array already holds (a commit loads and rewrites only the manifest
  pieces it writes in);
- 1,000,000 and 2,000,000 refs in one commit: what one session holding that many uncommitted
  refs costs per ref (the change set folds its refs into manifest columns as they come);
- 10,000,000 refs in one session and one commit, as a coordinator merging the forks of a
  large distributed write holds them.

The refs point into one stored object per commit (4 bytes each, at their offsets), set through
the session's change set, as `bench_split_manifests.py` does, so that the set-up writes a few
files instead of ten million.

Run:  python benchmarks/bench_big_array.py [--refs 10000000] [--batch 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import fmt_bytes, fmt_s, print_table, save_results, temp_dir

_RUN = """
import json, math, resource, sys, time
import numpy as np, zarr, vrepo
sys.path.insert(0, sys.argv[4])
from bench_split_manifests import fill_refs

root, total, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
side = math.isqrt(total - 1) + 1
repo = vrepo.Repository.create(root)
session = repo.writable_session()
zarr.create_array(
    session.store, name="x", shape=(side, side), chunks=(1, 1), dtype="i4", compressors=None
)
session.commit("empty")
base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = max(1, batch // side)
start, commits, done = time.perf_counter(), [], 0
for first in range(0, side, rows):
    last = min(side, first + rows)
    grid = np.indices((last - first, side)).reshape(2, -1).T
    grid[:, 0] += first
    grid = grid[: total - done]
    if not len(grid):
        break
    session = repo.writable_session()
    fill_refs(session, "/x", grid, np.arange(len(grid)))
    t = time.perf_counter()
    session.commit(f"rows {first}-{last - 1}")
    commits.append(time.perf_counter() - t)
    done += len(grid)
elapsed = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
array = zarr.open_array(repo.readonly_session().store, path="x", mode="r")
assert array[side // 2, 7] == ((side // 2) % rows) * side + 7, "a ref points at the wrong value"
print(json.dumps({"refs": done, "commits": len(commits), "seconds": elapsed,
                  "commit_median": sorted(commits)[len(commits) // 2],
                  "peak_above_kib": peak_kib - base_kib}))
"""


def run(root: Path, total: int, batch: int) -> dict:
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", _RUN, str(root), str(total), str(batch), here],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=1_000_000)
    args = parser.parse_args()
    configs = {
        f"{args.batch:,} refs, commits of {args.batch:,}": (args.batch, args.batch),
        f"{args.refs:,} refs, commits of {args.batch:,}": (args.refs, args.batch),
        f"{args.batch:,} refs, one commit": (args.batch, args.batch * 10),
        f"{2 * args.batch:,} refs, one commit": (2 * args.batch, args.batch * 10),
        f"{args.refs:,} refs, one commit": (args.refs, args.refs),
    }
    results = {}
    with temp_dir("big") as root:
        for i, (name, (total, batch)) in enumerate(configs.items()):
            results[name] = run(Path(root) / f"r{i}", total, batch)
    rows = [
        [
            name,
            f"{r['refs']:,}",
            str(r["commits"]),
            fmt_s(r["seconds"]),
            fmt_s(r["commit_median"]),
            fmt_bytes(r["peak_above_kib"] * 1024),
        ]
        for name, r in results.items()
    ]
    print_table(["configuration", "refs", "commits", "total", "commit (median)", "peak"], rows)
    base, big = (results[n]["peak_above_kib"] for n in list(configs)[:2])
    one, two, whole = (results[n]["peak_above_kib"] for n in list(configs)[2:])
    per_ref = (two - one) * 1024 / args.batch
    print(f"peak with {args.refs:,} refs / with {args.batch:,}: {big / base:.2f}x (bounded: ~1x)")
    print(f"one session's uncommitted refs: ~{per_ref:.0f} bytes per ref")
    print(
        f"{args.refs:,} refs in one session and commit: peak {fmt_bytes(whole * 1024)}, "
        f"{whole * 1024 / args.refs:.0f} bytes per ref"
    )
    save_results("big_array", {"args": vars(args), "results": results, "bytes_per_ref": per_ref})


if __name__ == "__main__":
    main()
