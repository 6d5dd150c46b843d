"""Concurrent commits: 16 processes x 20 non-overlapping commits vs the same 320 made serially.

Each commit opens a writable session on ``main``, writes one chunk that no other commit
touches, and commits. Writers race for the branch; losers queue for it (vrepo.engine.turns)
and rebase. Gated, in the same run: (concurrent wall time) / (serial wall time) <= 1.0, with
process start-up excluded (every worker waits at a barrier, and times itself from there); the
most attempts any one commit needed <= 20; and no commit gives up. Also reported: how many
commits needed retries, and how many attempts in all.

``--storage moto`` or ``seaweedfs`` runs both on a real S3 server on 127.0.0.1, started with
the test suite's own helpers (tests/s3_servers.py; install the test extras).

Run:  python benchmarks/bench_concurrent_commits.py [--rounds 3] [--writers 16] [--commits 20]
      [--storage local|moto|seaweedfs]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time

import zarr
from _common import fmt_s, print_table, save_results, storage_factory, verdict

import vrepo

TARGET = 1.0
MAX_ATTEMPTS = 20


def prepare(storage: vrepo.Storage, n_chunks: int) -> None:
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(n_chunks,), chunks=(1,), dtype="i8")
    session.commit("setup")


def make_commits(
    storage: vrepo.Storage, chunks: range, barrier
) -> tuple[float, float, list[int], int]:
    """Commit once per chunk; (start, end, attempts per commit, commits given up)."""
    repo = vrepo.Repository.open(storage)
    if barrier is not None:
        barrier.wait()
    start, attempts, gave_up = time.time(), [], 0
    for chunk in chunks:
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="x", mode="r+")[chunk] = chunk + 1
        try:
            session.commit(f"chunk {chunk}")
        except vrepo.ConflictError:
            gave_up += 1
            session.commit(f"chunk {chunk}, again")
        attempts.append(session.commit_attempts)
    return start, time.time(), attempts, gave_up


def verify(storage: vrepo.Storage, n_chunks: int) -> None:
    repo = vrepo.Repository.open(storage)
    values = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    history = list(repo.ancestry())
    if list(values) != list(range(1, n_chunks + 1)) or len(history) != n_chunks + 2:
        raise SystemExit("a commit was lost: the benchmark's result is invalid")


def one_round(pool, manager, fresh, writers: int, commits: int) -> dict[str, float]:
    n = writers * commits
    result: dict[str, float] = {}
    with fresh("serial") as serial, fresh("concurrent") as concurrent:
        for storage in (serial, concurrent):
            prepare(storage, n)
        # serial: one worker process makes all commits (same process kind as the racers)
        start, end, _, _ = pool.apply(make_commits, (serial, range(n), None))
        result["serial_s"] = end - start
        barrier = manager.Barrier(writers)
        parts = [range(w * commits, (w + 1) * commits) for w in range(writers)]
        runs = pool.starmap(make_commits, [(concurrent, p, barrier) for p in parts])
        result["concurrent_s"] = max(r[1] for r in runs) - min(r[0] for r in runs)
        attempts = [a for r in runs for a in r[2]]
        result["retried_commits"] = sum(a > 1 for a in attempts)
        result["attempts"] = sum(attempts)
        result["max_attempts"] = max(attempts)
        result["gave_up"] = sum(r[3] for r in runs)
        for storage in (serial, concurrent):
            verify(storage, n)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--storage", choices=["local", "moto", "seaweedfs"], default="local")
    args = parser.parse_args()
    n = args.writers * args.commits
    print(
        f"bench_concurrent_commits: {args.writers} processes x {args.commits} commits vs {n}, "
        f"on {args.storage}"
    )
    ctx = multiprocessing.get_context("spawn")
    with (
        storage_factory(args.storage) as fresh,
        ctx.Manager() as manager,
        ctx.Pool(args.writers) as pool,
    ):
        one_round(pool, manager, fresh, args.writers, 2)  # warm-up: imports in every worker
        rounds = []
        for i in range(args.rounds):
            r = one_round(pool, manager, fresh, args.writers, args.commits)
            rounds.append(r)
            print(
                f"  round {i + 1}: serial {fmt_s(r['serial_s'])}, concurrent "
                f"{fmt_s(r['concurrent_s'])}, {r['retried_commits']} of {n} commits retried, "
                f"{r['attempts']} attempts (max {r['max_attempts']} for one commit), "
                f"{r['gave_up']} gave up"
            )
    ratio = statistics.median(r["concurrent_s"] / r["serial_s"] for r in rounds)
    worst = max(r["max_attempts"] for r in rounds)
    gave_up = sum(r["gave_up"] for r in rounds)
    ok = ratio <= TARGET and worst <= MAX_ATTEMPTS and gave_up == 0
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
            [
                "most attempts for one commit (all rounds)",
                f"{worst:g}",
                f"<= {MAX_ATTEMPTS}",
                verdict(worst <= MAX_ATTEMPTS),
            ],
            ["commits that gave up (all rounds)", f"{gave_up:g}", "0", verdict(gave_up == 0)],
        ],
    )
    path = save_results(
        f"bench_concurrent_commits_{args.storage}", {"rounds": rounds, "ratio": ratio, "ok": ok}
    )
    print(f"\nresults: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
