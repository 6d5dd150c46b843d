"""Garbage collection after 1,000 commits with 10% of the chunks garbage, against a listing.

The repository: one array of 8,000 stored chunks (800 bytes each), then 1,000 commits that
each overwrite one chunk, each beside a session that writes one chunk and never commits (a
failed task): 1,000 of the 10,000 chunk objects (10%) are garbage; every snapshot is kept.
Measured, on a copy of the repository per round (median of the rounds):

- **listing**: listing every object of the repository, what Icechunk's collection does first
  every time (icechunk #1548), the baseline;
- **first collection**: vrepo's first, which lists everything too, and reads every retained
  snapshot and manifest;
- **next collection**: after 100 more such commits (100 more chunks of garbage), the
  incremental collection against a full one of the same repository (one that ignores the
  state the first left), both as dry runs (so both see the same garbage; the deletions they
  would make are the same), and a listing of it.

The first 1,000 commits are made as if a day earlier (their objects' timed ids say so), as
when collections run daily; collections run as if 10 seconds later with no grace period (the
engine's clock), so that everything just written counts as old. Nothing else differs from
`Repository.garbage_collect`.

Run:  python benchmarks/bench_gc.py [--rounds 3] [--chunks 8000] [--commits 1000]
      [--storage local|moto|seaweedfs]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator

import numpy as np
import zarr
from _common import fmt_s, print_table, save_results, storage_factory

import vrepo
from vrepo._sync import run_sync
from vrepo.engine import gc
from vrepo.format import ids

WIDTH = 100  # float64 values per chunk: 800 raw bytes, stored as an object


@contextlib.contextmanager
def a_day_ago() -> Iterator[None]:
    """Objects made meanwhile get timed ids of a day earlier."""
    real = ids.time

    class Clock:
        @staticmethod
        def time() -> float:
            return real.time() - 86_400

    ids.time = Clock  # type: ignore[assignment]
    try:
        yield
    finally:
        ids.time = real


def build(storage: vrepo.Storage, chunks: int, commits: int) -> vrepo.Repository:
    with a_day_ago():
        repo = vrepo.Repository.create(storage)
        session = repo.writable_session()
        array = zarr.create_array(
            session.store,
            name="x",
            shape=(chunks, WIDTH),
            chunks=(1, WIDTH),
            dtype="f8",
            compressors=None,
        )
        array[:] = np.random.default_rng(0).random((chunks, WIDTH))
        session.commit("fill")
        overwrite(repo, commits, seed=1)
    return repo


def overwrite(repo: vrepo.Repository, commits: int, seed: int) -> None:
    """``commits`` commits of one chunk each, each beside an abandoned one-chunk write."""
    rng = np.random.default_rng(seed)
    rows = zarr.open_array(repo.readonly_session().store, path="x").shape[0]
    for row in rng.choice(rows, size=commits, replace=False):
        session, failed = repo.writable_session(), repo.writable_session()
        zarr.open_array(session.store, path="x", mode="r+")[row] = rng.random(WIDTH)
        zarr.open_array(failed.store, path="x", mode="r+")[row] = rng.random(WIDTH)
        session.commit(f"row {row}")


def collect_now(
    repo: vrepo.Repository, *, dry_run: bool = False, full: bool = False
) -> tuple[float, vrepo.GcReport]:
    """Time one collection as if 10 s later with no grace period; ``full`` ignores the state
    the last one left (as for a repository that never had one)."""
    now_us = time.time_ns() // 1000 + 10_000_000
    if full:
        run = gc._Run(repo._objects, now_us, 0, None, True)
        start = time.perf_counter()
        counts = run_sync(run.collect(dry_run))
        return time.perf_counter() - start, counts  # type: ignore[return-value]
    start = time.perf_counter()
    report = run_sync(gc.collect(repo._objects, 0, dry_run=dry_run, timed_ids=True, now_us=now_us))
    return time.perf_counter() - start, report


def list_everything(storage: vrepo.Storage) -> float:
    start = time.perf_counter()
    keys = run_sync(storage.list(""))
    elapsed = time.perf_counter() - start
    assert keys
    return elapsed


def one_round(fresh, chunks: int, commits: int) -> dict[str, float]:
    with fresh("gc") as storage:
        repo = build(storage, chunks, commits)
        listing = list_everything(storage)
        first, first_report = collect_now(repo)
        assert not first_report.incremental and first_report.chunks == commits
        overwrite(repo, 100, seed=2)
        listing_after = list_everything(storage)
        full, full_counts = collect_now(repo, dry_run=True, full=True)
        incremental, dry = collect_now(repo, dry_run=True)
        _, report = collect_now(repo)
        assert dry.incremental and report.incremental
        assert full_counts["chunks"] == dry.chunks == report.chunks == 100, (full_counts, dry)
    return {
        "listing": listing,
        "first": first,
        "first_chunks": first_report.chunks,
        "listing_after": listing_after,
        "full": full,
        "incremental": incremental,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=8000)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--storage", choices=["local", "moto", "seaweedfs"], default="local")
    args = parser.parse_args()
    print(f"bench_gc on {args.storage}: {args.chunks} chunks, {args.commits} commits")
    with storage_factory(args.storage) as fresh:
        rounds = [one_round(fresh, args.chunks, args.commits) for _ in range(args.rounds)]
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print_table(
        ["measure", "median", "vs listing everything"],
        [
            ["list every object (baseline)", fmt_s(med["listing"]), "1.00x"],
            [
                f"first collection ({int(med['first_chunks'])} chunks freed)",
                fmt_s(med["first"]),
                f"{med['first'] / med['listing']:.2f}x",
            ],
            ["after 100 commits: list every object", fmt_s(med["listing_after"]), "1.00x"],
            [
                "after 100 commits: full collection (dry run)",
                fmt_s(med["full"]),
                f"{med['full'] / med['listing_after']:.2f}x",
            ],
            [
                "after 100 commits: incremental collection (dry run)",
                fmt_s(med["incremental"]),
                f"{med['incremental'] / med['listing_after']:.2f}x "
                f"({med['incremental'] / med['full']:.2f}x the full one)",
            ],
        ],
    )
    save_results(f"gc_{args.storage}", {"args": vars(args), "rounds": rounds, "median": med})


if __name__ == "__main__":
    main()
