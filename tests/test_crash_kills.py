"""kill -9 at random moments during commits and branch and tag operations (tests/crash_driver.py).

50 kills of a process that commits to ``main`` and creates, resets and deletes branches and
tags on local disk; after each, the repository must be readable, hold every acknowledged
operation, and hold no commit twice. ``benchmarks/bench_crash_kills.py`` runs 500.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("crash_driver.py")


POSIX_ONLY = pytest.mark.skipif(
    sys.platform == "win32", reason="the driver forks and sends SIGKILL (POSIX)"
)


def _drive(repo: Path, kills: int, seed: int, *options: str) -> dict:
    run = subprocess.run(
        [sys.executable, str(DRIVER), str(repo), str(kills), str(seed), *options],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["kills"] == kills
    assert summary["unreadable"] == 0, run.stderr
    assert summary["problems"] == []
    return summary


@POSIX_ONLY
def test_fifty_kills_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    summary = _drive(tmp_path / "r.vrepo", 50, 20261202)
    assert summary["acknowledged"] > 50  # the worker did get work done between kills


@POSIX_ONLY
def test_kills_of_committers_queued_behind_each_other_lose_nothing(tmp_path: Path) -> None:
    """Three workers at once contend for main: kills land among queued, offered and
    combined commits (a holder landing another's offer when both die)."""
    summary = _drive(tmp_path / "r.vrepo", 15, 20261203, "0.6", "3")
    assert summary["acknowledged"] > 30
