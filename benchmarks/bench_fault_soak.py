"""Fault soak: 12,000 operations against storage where 10% of calls fail, half after applying.

The loop of tests/test_fault_soak.py (the CI test runs 150 operations per backend): each
operation (commits, tag and branch creation, resets, deletions) is retried by the caller until
it returns; at the end every acknowledged operation must be in the repository exactly once.
Gated: the check passes on memory and local storage.

Run:  python benchmarks/bench_fault_soak.py [--operations 6000] [--seed 1]   (per backend)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table, save_results, verdict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_fault_soak import soak
from vrepo.storage import LocalStorage, MemoryStorage
from vrepo.testing import FaultyStorage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=6000, help="per backend")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows, results, ok = [], {}, True
    for backend in ("memory", "local"):
        with tempfile.TemporaryDirectory(prefix="vrepo-bench-soak-") as d:
            inner = MemoryStorage() if backend == "memory" else LocalStorage(f"{d}/r.vrepo")
            storage = FaultyStorage(inner, rate=0.1, applied_share=0.5, seed=args.seed)
            started = time.perf_counter()
            try:
                result = soak(storage, args.operations, args.seed)
                passed = True
            except AssertionError as exc:
                result, passed = {"operations": args.operations, "error": str(exc)}, False
            result["seconds"] = time.perf_counter() - started
        ok &= passed
        results[backend] = result
        rows.append(
            [
                backend,
                str(result["operations"]),
                str(result.get("faults_before", "")),
                str(result.get("faults_after", "")),
                str(result.get("failures", "")),
                f"{result['seconds']:.0f} s",
                verdict(passed),
            ]
        )
    print_table(
        [
            "storage",
            "operations",
            "faults before",
            "faults after applying",
            "failures seen",
            "time",
            "nothing lost or doubled",
        ],
        rows,
    )
    print(f"\nresults: {save_results('bench_fault_soak', results)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
