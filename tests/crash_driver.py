"""Kill -9 a process that commits and moves refs, at random moments; check after every kill.

Run as ``python tests/crash_driver.py REPO_DIR KILLS SEED [MAX_DELAY_S] [WORKERS]``; prints
one JSON summary line. The driver imports vrepo but never runs it itself (no threads), so it
can fork: each round forks WORKERS workers (default 1) that loop over random operations on a
local repository (commits to ``main``, which several workers contend for, so their commits
queue and combine; branch and tag creation, reset and deletion) and journal every operation
they start and every one that returns, fsynced, then kills them all with SIGKILL after a
random delay. A forked checker then opens the repository and verifies it:

- readable: every branch and tag resolves, its whole array reads, main's history walks;
- nothing acknowledged lost: every commit that returned is in main's history, every ref
  operation that returned is in effect (unless the round's unfinished operation, which may
  or may not have landed, changed that ref since);
- nothing applied twice: every commit message appears at most once in main's history.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import zarr

import vrepo

CHUNKS = 64


def _journal(path: Path, entry: dict) -> None:
    with open(path, "a") as out:
        out.write(json.dumps(entry) + "\n")
        out.flush()
        os.fsync(out.fileno())


def _create(repo_dir: Path) -> None:
    repo = vrepo.Repository.create(repo_dir)
    session = repo.writable_session()
    zarr.create_array(
        session.store, name="x", shape=(CHUNKS * 4,), chunks=(4,), dtype="i8", fill_value=0
    )
    session.commit("setup")


def _work(repo_dir: Path, journal: Path, round_: int, seed: int, worker: int = 0) -> None:
    """Random operations until killed; each journaled when it starts and when it returns.

    Workers running side by side all commit to ``main`` (so commits queue and combine), and
    each moves only the branches and tags it created, so what each ref should hold stays
    well defined."""
    rng = random.Random(seed)
    repo = vrepo.Repository.open(repo_dir)
    mine = f"w{worker}-"
    for i in range(10**6):
        op = rng.choice(["commit", "commit", "commit", "tag", "branch", "reset", "delete"])
        name = f"r{round_}{mine}{i}"
        entry: dict = {"round": round_, "worker": worker, "i": i, "op": op, "name": name}
        if op == "commit":
            session = repo.writable_session()
            chunk = rng.randrange(CHUNKS)
            zarr.open_array(session.store, path="x", mode="r+")[chunk * 4 : chunk * 4 + 4] = i
            _journal(journal, {**entry, "state": "start"})
            entry["snapshot"] = session.commit(name)
        elif op in ("tag", "branch"):
            target = repo.lookup_branch("main")
            entry["snapshot"] = target
            _journal(journal, {**entry, "state": "start"})
            (repo.create_tag if op == "tag" else repo.create_branch)(name, target)
        else:
            branches = [b for b in repo.list_branches() if mine in b]
            tags = [t for t in repo.list_tags() if mine in t]
            if op == "reset" and branches:
                entry["name"] = rng.choice(branches)
                entry["snapshot"] = repo.lookup_branch("main")
                _journal(journal, {**entry, "state": "start"})
                repo.reset_branch(entry["name"], entry["snapshot"])
            elif op == "delete" and (branches or tags):
                kind = "tag" if tags and (not branches or rng.random() < 0.5) else "branch"
                entry.update(kind=kind, name=rng.choice(tags if kind == "tag" else branches))
                _journal(journal, {**entry, "state": "start"})
                (repo.delete_tag if kind == "tag" else repo.delete_branch)(entry["name"])
            else:
                continue
        _journal(journal, {**entry, "state": "done"})


def _entries(journal: Path) -> list[dict]:
    """The journal's entries; none when the first worker was killed before it wrote one."""
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line]


def _expected_refs(entries: list[dict]) -> tuple[dict, dict, set[tuple[str, str]]]:
    """(branches, tags) as the acknowledged operations left them, and the refs an unfinished
    operation may have changed since (kind, name)."""
    branches: dict[str, str | None] = {}
    tags: dict[str, str | None] = {}
    uncertain: set[tuple[str, str]] = set()
    started: dict[tuple[int, int], dict] = {}
    for e in entries:
        key = (e["round"], e.get("worker", 0), e["i"])
        if e["state"] == "start":
            started[key] = e
            continue
        started.pop(key, None)
        if e["op"] == "branch" or e["op"] == "reset":
            branches[e["name"]] = e["snapshot"]
        elif e["op"] == "tag":
            tags[e["name"]] = e["snapshot"]
        elif e["op"] == "delete":
            (tags if e["kind"] == "tag" else branches)[e["name"]] = None
    for e in started.values():  # the unfinished operations: each may or may not have landed
        if e["op"] in ("branch", "reset"):
            uncertain.add(("branch", e["name"]))
        elif e["op"] == "tag":
            uncertain.add(("tag", e["name"]))
        elif e["op"] == "delete":
            uncertain.add((e["kind"], e["name"]))
    return branches, tags, uncertain


def _check(repo_dir: Path, journal: Path) -> list[str]:
    """What is wrong with the repository, given the journal (empty: nothing)."""
    problems = []
    entries = _entries(journal)
    repo = vrepo.Repository.open(repo_dir)
    history = list(repo.ancestry(branch="main"))
    messages = [info.message for info in history]
    ids = {info.id for info in history}
    zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    doubled = sorted({m for m in messages if messages.count(m) > 1})
    if doubled:
        problems.append(f"applied twice: {doubled}")
    for e in entries:
        if e["state"] == "done" and e["op"] == "commit" and e["snapshot"] not in ids:
            problems.append(f"acknowledged commit lost: {e}")
    branches, tags, uncertain = _expected_refs(entries)
    for kind, expected, listed in (
        ("branch", branches, set(repo.list_branches())),
        ("tag", tags, set(repo.list_tags())),
    ):
        for name in listed:  # readable
            session = repo.readonly_session(**{kind: name})
            np.asarray(zarr.open_array(session.store, path="x", mode="r")[:])
        for name, snapshot in expected.items():
            if (kind, name) in uncertain:
                continue
            lookup = repo.lookup_tag if kind == "tag" else repo.lookup_branch
            actual = lookup(name) if name in listed else None
            if actual != snapshot:
                problems.append(f"{kind} {name}: expected {snapshot}, found {actual}")
    return problems


def _in_child(func, *args) -> int:
    """Run ``func(*args)`` in a forked child; its exit status (0: it returned)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            func(*args)
            code = 0
        except BaseException as exc:
            print(f"crash_driver child failed: {exc!r}", file=sys.stderr)
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def main() -> int:
    repo_dir, kills, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    max_delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.4
    workers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    journal = repo_dir.parent / "journal.jsonl"
    rng = random.Random(seed)
    if _in_child(_create, repo_dir) != 0:
        raise SystemExit("could not create the repository")
    summary = {"kills": 0, "unreadable": 0, "problems": [], "acknowledged": 0}
    for round_ in range(kills):
        pids = []
        for worker in range(workers):
            seed = rng.randrange(2**32)
            pid = os.fork()
            if pid == 0:
                try:
                    _work(repo_dir, journal, round_, seed, worker)
                finally:
                    os._exit(0)
            pids.append(pid)
        time.sleep(rng.uniform(0.05, max_delay))
        for pid in pids:  # all at one moment: some queued, one perhaps landing their commits
            os.kill(pid, signal.SIGKILL)
        for pid in pids:
            os.waitpid(pid, 0)
        summary["kills"] += 1
        report = repo_dir.parent / f"check-{round_}.json"

        def check(report: Path = report) -> None:
            report.write_text(json.dumps(_check(repo_dir, journal)))

        if _in_child(check) != 0 or not report.exists():
            summary["unreadable"] += 1
        else:
            summary["problems"] += json.loads(report.read_text())
    summary["acknowledged"] = sum(e["state"] == "done" for e in _entries(journal))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
