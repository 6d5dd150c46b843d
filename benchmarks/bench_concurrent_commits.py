"""Concurrent commits: 4 processes x 25 non-overlapping commits vs the same 100 made serially.

Each commit opens a writable session on ``main``, writes one chunk that no other commit
touches, and commits. Writers race for the branch and rebase when they lose. The gated figure
is (concurrent wall time) / (serial wall time) <= 2.0, measured in the same run, with process
start-up excluded (every worker waits at a barrier, and times itself from there).
Also reported: how many commits needed retries, and how many attempts in all.

Run:  python benchmarks/bench_concurrent_commits.py [--rounds 3] [--writers 4] [--commits 25]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time

import zarr
from _common import fmt_s, print_table, save_results, temp_dir, verdict

import vrepo

TARGET = 2.0


def prepare(path: str, n_chunks: int) -> None:
    repo = vrepo.Repository.create(path)
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(n_chunks,), chunks=(1,), dtype="i8")
    session.commit("setup")


def make_commits(path: str, chunks: range, barrier) -> tuple[float, float, list[int]]:
    """Commit once per chunk; return (start, end, attempts per commit) in wall-clock time."""
    repo = vrepo.Repository.open(path)
    if barrier is not None:
        barrier.wait()
    start, attempts = time.time(), []
    for chunk in chunks:
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="x", mode="r+")[chunk] = chunk + 1
        session.commit(f"chunk {chunk}")
        attempts.append(session.commit_attempts)
    return start, time.time(), attempts


def verify(path: str, n_chunks: int) -> None:
    repo = vrepo.Repository.open(path)
    values = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    history = list(repo.ancestry())
    if list(values) != list(range(1, n_chunks + 1)) or len(history) != n_chunks + 2:
        raise SystemExit("a commit was lost: the benchmark's result is invalid")


def one_round(pool, manager, writers: int, commits: int) -> dict[str, float]:
    n = writers * commits
    result: dict[str, float] = {}
    with temp_dir("serial") as serial_dir, temp_dir("concurrent") as concurrent_dir:
        for d in (serial_dir, concurrent_dir):
            prepare(f"{d}/repo", n)
        # serial: one worker process makes all commits (same process kind as the racers)
        start, end, _ = pool.apply(make_commits, (f"{serial_dir}/repo", range(n), None))
        result["serial_s"] = end - start
        barrier = manager.Barrier(writers)
        parts = [range(w * commits, (w + 1) * commits) for w in range(writers)]
        runs = pool.starmap(make_commits, [(f"{concurrent_dir}/repo", p, barrier) for p in parts])
        result["concurrent_s"] = max(e for _, e, _ in runs) - min(s for s, _, _ in runs)
        attempts = [a for _, _, per_commit in runs for a in per_commit]
        result["retried_commits"] = sum(a > 1 for a in attempts)
        result["attempts"] = sum(attempts)
        result["max_attempts"] = max(attempts)
        for d in (serial_dir, concurrent_dir):
            verify(f"{d}/repo", n)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--commits", type=int, default=25)
    args = parser.parse_args()
    n = args.writers * args.commits
    print(f"bench_concurrent_commits: {args.writers} processes x {args.commits} commits vs {n}")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(args.writers) as pool:
        one_round(pool, manager, args.writers, 5)  # warm-up: imports in every worker
        rounds = []
        for i in range(args.rounds):
            r = one_round(pool, manager, args.writers, args.commits)
            rounds.append(r)
            print(
                f"  round {i + 1}: serial {fmt_s(r['serial_s'])}, concurrent "
                f"{fmt_s(r['concurrent_s'])}, {r['retried_commits']} of {n} commits retried, "
                f"{r['attempts']} attempts (max {r['max_attempts']} for one commit)"
            )
    ratio = statistics.median(r["concurrent_s"] / r["serial_s"] for r in rounds)
    ok = ratio <= TARGET
    print()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    print_table(
        ["measure", "value", "target", ""],
        [
            ["serial, median", fmt_s(median("serial_s")), "", ""],
            ["concurrent, median", fmt_s(median("concurrent_s")), "", ""],
            ["concurrent / serial (median of rounds)", f"{ratio:.2f}", f"<= {TARGET}", verdict(ok)],
            ["commits retried (median)", f"{median('retried_commits'):g}", "", ""],
            ["attempts per commit (median)", f"{median('attempts') / n:.2f}", "", ""],
            ["most attempts for one commit (median)", f"{median('max_attempts'):g}", "", ""],
        ],
    )
    path = save_results("bench_concurrent_commits", {"rounds": rounds, "ratio": ratio, "ok": ok})
    print(f"\nresults: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
