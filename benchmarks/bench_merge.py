"""Merging 10,000 fork change sets (one written chunk each) into a session: target <= 1 s.

Measures `session.merge(*forks)` for forks as workers return them (unpickled), flat and as a
tree of `split_every` fan-in like `vrepo.dask.store` builds. Chunk writes happen before the clock.

Run:  python benchmarks/bench_merge.py [--forks 10000]
"""

from __future__ import annotations

import argparse
import pickle
import sys

import numpy as np
import zarr
from _common import fmt_s, print_table, save_results, temp_dir, timed, verdict

import vrepo

TARGET_S = 1.0


def make_forks(session: vrepo.Session, n: int) -> list[vrepo.ForkSession]:
    fork = session.fork()
    forks = []
    for i in range(n):
        mine = fork._sibling()
        zarr.open_array(mine.store, path="x", mode="r+")[i * 16 : (i + 1) * 16] = i + 1
        forks.append(pickle.loads(pickle.dumps(mine)))  # as they come back from workers
    return forks


def tree_merge(forks: list[vrepo.ForkSession], split_every: int) -> vrepo.ForkSession:
    while len(forks) > 1:
        level = []
        for i in range(0, len(forks), split_every):
            merged = forks[i]._sibling()
            merged.merge(*forks[i : i + split_every])
            level.append(merged)
        forks = level
    return forks[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forks", type=int, default=10_000)
    args = parser.parse_args()
    n = args.forks
    rows, results = [], {}
    with temp_dir("merge") as d:
        repo = vrepo.Repository.create(f"{d}/repo", vrepo.RepoConfig(inline_threshold_bytes=0))
        for label, tree in (("flat", False), ("tree (split_every=32)", True)):
            session = repo.writable_session()
            zarr.create_array(
                session.store, name="x", shape=(n * 16,), chunks=(16,), dtype="i4", overwrite=True
            )
            forks = make_forks(session, n)
            if tree:
                seconds, _ = timed(lambda: session.merge(tree_merge(forks, 32)))  # noqa: B023
            else:
                seconds, _ = timed(lambda: session.merge(*forks))  # noqa: B023
            assert session.status().chunks_written == {"/x": n}
            commit_s, _ = timed(lambda: session.commit(label))  # noqa: B023
            got = zarr.open_array(repo.readonly_session().store, path="x")[::16]
            np.testing.assert_array_equal(got, np.arange(1, n + 1))
            results[label] = {"merge_s": seconds, "commit_s": commit_s}
            rows.append([label, fmt_s(seconds), fmt_s(commit_s), f"<= {TARGET_S} s",
                         verdict(seconds <= TARGET_S)])  # fmt: skip
    print(f"bench_merge: {n} fork change sets of one chunk each")
    print_table(["merge", "merge time", "then commit", "target", ""], rows)
    ok = all(r["merge_s"] <= TARGET_S for r in results.values())
    print(f"\nresults: {save_results('bench_merge', {'forks': n, **results})}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
