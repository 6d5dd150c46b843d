"""History lookups on a long branch: the history index vs reading one snapshot per step.

Builds a branch of ``--commits`` commits (default 10,000; each sets one attribute, so the
snapshots are small and a walk of them is as cheap as it gets), then, from a freshly opened
repository each time (cold caches):
- ancestry: the whole history listed (``list(repo.ancestry())``), target <= 50 ms;
- as_of: a read-only session at a time near the start of the branch, target <= 20 ms;
- ``main~N`` with N = commits // 2 resolved;
- ``vrepo log -n 20`` as a new process, wall time, target <= 0.3 s, in the environment as it
  is; and again with Python's bytecode cache on (in a temporary PYTHONPYCACHEPREFIX), as an
  installed vrepo runs: with PYTHONDONTWRITEBYTECODE set, every run compiles vrepo's modules
  anew (about 60 ms here);
and the baseline in the same run: the same history read snapshot by snapshot (what ancestry
did before the index). Also reported: the cost of a commit at the start and at the end of the
branch (the index must not make commits slower as the branch grows), and the history pages'
bytes on disk.

Run:  python benchmarks/bench_history.py [--commits 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import zarr
from _common import fmt_bytes, fmt_s, print_table, save_results, temp_dir, verdict

import vrepo
from vrepo._sync import run_sync

TARGETS = {"ancestry": 0.050, "as_of": 0.020, "log": 0.3}


def build(path: str, commits: int) -> tuple[list[float], list[float]]:
    """The branch; the durations of its first and last 100 commits."""
    repo = vrepo.Repository.create(path)
    durations = []
    for i in range(commits):
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="a").attrs["step"] = i
        start = time.perf_counter()
        session.commit(f"step {i}", metadata={"step": i})
        durations.append(time.perf_counter() - start)
    return durations[1:101], durations[-100:]


def snapshot_walk(path: str) -> int:
    """The baseline: every snapshot read, following parent ids."""
    repo = vrepo.Repository.open(path)
    current, n = repo.lookup_branch("main"), 0
    while current is not None:
        current = run_sync(repo._objects.get_snapshot(current)).parent_id
        n += 1
    return n


def cached_bytecode_env(pycache: str) -> dict[str, str]:
    """The environment with Python's bytecode cache on, kept in ``pycache``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": pycache}


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.commits
    print(f"bench_history: a branch of {n:,} commits")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  PYTHONDONTWRITEBYTECODE is set: vrepo's modules compile on every vrepo log")
    vrepo_cli = shutil.which("vrepo", path=os.path.dirname(sys.executable))
    with temp_dir("history") as d:
        path = f"{d}/repo"
        started = time.perf_counter()
        first, last = build(path, n)
        print(f"  built in {fmt_s(time.perf_counter() - started)}")
        repo = vrepo.Repository.open(path)
        mid_time = list(repo.ancestry())[n - 10].written_at  # near the start of the branch
        rows: dict[str, list[float]] = {
            k: [] for k in ("ancestry", "as_of", "tilde", "log", "log_cached")
        }
        log_cmd = [vrepo_cli, "log", "-n", "20", path]
        cached_env = cached_bytecode_env(f"{d}/pycache")
        if vrepo_cli:  # fill the bytecode cache
            subprocess.run(log_cmd, check=True, capture_output=True, env=cached_env)
        rows["baseline"] = []
        for _ in range(args.rounds):
            rows["baseline"].append(timed(lambda: snapshot_walk(path)))
            rows["ancestry"].append(timed(lambda: list(vrepo.Repository.open(path).ancestry())))
            rows["as_of"].append(
                timed(lambda: vrepo.Repository.open(path).readonly_session(as_of=mid_time))
            )
            rows["tilde"].append(
                timed(lambda: vrepo.Repository.open(path).resolve(f"main~{n // 2}"))
            )
            if vrepo_cli:
                rows["log"].append(
                    timed(lambda: subprocess.run(log_cmd, check=True, capture_output=True))
                )
                rows["log_cached"].append(
                    timed(
                        lambda: subprocess.run(
                            log_cmd, check=True, capture_output=True, env=cached_env
                        )
                    )
                )
        assert len(list(vrepo.Repository.open(path).ancestry())) == n + 1
        pages = sum(f.stat().st_size for f in Path(path, "history").iterdir())
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    ok = all(med.get(k, 0) <= t for k, t in TARGETS.items())
    commit_ratio = statistics.median(last) / statistics.median(first)
    print_table(
        ["measure", "median", "target", ""],
        [
            [
                "ancestry, whole branch",
                fmt_s(med["ancestry"]),
                "<= 50 ms",
                verdict(med["ancestry"] <= TARGETS["ancestry"]),
            ],
            ["baseline: one snapshot read per step", fmt_s(med["baseline"]), "", ""],
            ["baseline / ancestry", f"{med['baseline'] / med['ancestry']:.0f}x", "", ""],
            [
                "as_of near the start",
                fmt_s(med["as_of"]),
                "<= 20 ms",
                verdict(med["as_of"] <= TARGETS["as_of"]),
            ],
            [f"resolve main~{n // 2}", fmt_s(med["tilde"]), "", ""],
            [
                "vrepo log -n 20 (new process, wall)",
                fmt_s(med.get("log", float("nan"))),
                "<= 0.3 s",
                verdict(med.get("log", 0) <= TARGETS["log"]),
            ],
            [
                "vrepo log -n 20, bytecode cached",
                fmt_s(med.get("log_cached", float("nan"))),
                "",
                "",
            ],
            ["commit, first 100 (median)", fmt_s(statistics.median(first)), "", ""],
            ["commit, last 100 (median)", fmt_s(statistics.median(last)), "", ""],
            ["last / first commit", f"{commit_ratio:.2f}", "", ""],
            ["history pages on disk", fmt_bytes(pages), "", ""],
        ],
    )
    path_out = save_results("bench_history", {"rounds": rows, "commit_ratio": commit_ratio})
    print(f"\nresults: {path_out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
