"""kill -9 soak: 500 kills of a process committing and moving branches and tags on local disk.

Runs tests/crash_driver.py (the CI test runs it with 50 kills): after every kill a fresh
process checks that the repository reads, holds every acknowledged operation, and holds no
commit twice. Gated: 0 unreadable repositories, 0 problems (lost or doubled operations).

Run:  python benchmarks/bench_crash_kills.py [--kills 500] [--seed 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import print_table, save_results, temp_dir, verdict

DRIVER = Path(__file__).resolve().parent.parent / "tests" / "crash_driver.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=1, help="committers killed together each round"
    )
    args = parser.parse_args()
    with temp_dir("kills") as d:
        started = time.perf_counter()
        run = subprocess.run(
            [
                sys.executable,
                str(DRIVER),
                f"{d}/r.vrepo",
                str(args.kills),
                str(args.seed),
                "0.4",
                str(args.workers),
            ],
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        return 1
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    unreadable, problems = summary["unreadable"], summary["problems"]
    ok = unreadable == 0 and not problems
    print_table(
        ["measure", "value", "target", ""],
        [
            [
                "kills",
                str(summary["kills"]),
                str(args.kills),
                verdict(summary["kills"] == args.kills),
            ],
            ["acknowledged operations", str(summary["acknowledged"]), "", ""],
            [
                "unreadable repositories",
                str(summary["unreadable"]),
                "0",
                verdict(summary["unreadable"] == 0),
            ],
            [
                "lost or doubled operations",
                str(len(summary["problems"])),
                "0",
                verdict(not summary["problems"]),
            ],
            ["wall time", f"{elapsed:.0f} s", "", ""],
        ],
    )
    for problem in summary["problems"][:20]:
        print("  ", problem)
    print(f"\nresults: {save_results('bench_crash_kills', {**summary, 'seconds': elapsed})}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
