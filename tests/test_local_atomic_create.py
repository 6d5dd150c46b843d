"""Real multi-process races on `LocalStorage`: atomic create and atomic replace."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any

from vrepo.storage import LocalStorage

PROCESSES = 8
KEYS = 20
TIMEOUT = 120  # seconds; generous for slow CI machines
PAYLOAD_SIZE = 256 * 1024


def _payload(worker: int, round_: int = 0) -> bytes:
    """A payload that identifies its writer in every byte, so a mix is detectable."""
    return bytes([worker * 16 + round_ % 16]) * PAYLOAD_SIZE


def _race_put_if_absent(storage: LocalStorage, worker: int, barrier: Any, results: Any) -> None:
    async def create(key: str) -> bool:
        return await storage.put_if_absent(key, f"worker {worker} {key}".encode())

    for i in range(KEYS):
        key = f"refs/branch.main/{i}.json"
        barrier.wait(TIMEOUT)
        results.put((key, worker, asyncio.run(create(key))))


def _race_put(storage: LocalStorage, worker: int, rounds: int, barrier: Any, done: Any) -> None:
    async def write_all() -> None:
        for round_ in range(rounds):
            await storage.put("chunks/shared", _payload(worker, round_))

    barrier.wait(TIMEOUT)
    asyncio.run(write_all())
    done.put(worker)


def _start(ctx: Any, target: Any, args_for: Any) -> list[Any]:
    processes = [
        ctx.Process(target=target, args=args_for(w), daemon=True) for w in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    return processes


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(TIMEOUT)
        assert process.exitcode == 0, f"worker failed with exit code {process.exitcode}"


def test_put_if_absent_has_exactly_one_winner_across_processes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = _start(ctx, _race_put_if_absent, lambda w: (storage, w, barrier, results))
    outcomes = [results.get(timeout=TIMEOUT) for _ in range(PROCESSES * KEYS)]
    _join(processes)

    for i in range(KEYS):
        key = f"refs/branch.main/{i}.json"
        winners = [worker for k, worker, won in outcomes if k == key and won]
        assert len(winners) == 1, f"{key}: winners {winners}"
        content = asyncio.run(storage.get(key))
        assert content == f"worker {winners[0]} {key}".encode()
    assert sorted(p.name for p in (tmp_path / "repo" / "refs" / "branch.main").iterdir()) == sorted(
        f"{i}.json" for i in range(KEYS)
    )  # no temp files left behind


def test_concurrent_put_never_mixes_payloads(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    asyncio.run(storage.put("chunks/shared", _payload(0)))
    complete = {_payload(w, r) for w in range(PROCESSES) for r in range(16)}
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)  # the writers and this reader start together
    done = ctx.Queue()
    rounds = 30
    processes = _start(ctx, _race_put, lambda w: (storage, w, rounds, barrier, done))

    async def poll() -> int:
        reads = 0
        finished = 0
        deadline = time.monotonic() + TIMEOUT
        while finished < PROCESSES:
            assert time.monotonic() < deadline, "writers did not finish in time"
            data = await storage.get("chunks/shared")
            assert data in complete, f"partial or mixed read: {len(data)} bytes"
            reads += 1
            while not done.empty():
                done.get()
                finished += 1
        return reads

    barrier.wait(TIMEOUT)
    reads = asyncio.run(poll())
    _join(processes)

    assert reads > 0
    final = asyncio.run(storage.get("chunks/shared"))
    assert final in {_payload(w, rounds - 1) for w in range(PROCESSES)}
    assert [p.name for p in (tmp_path / "repo" / "chunks").iterdir()] == ["shared"]
