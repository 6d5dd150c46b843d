"""Real multi-process races: atomic create on local disk and on both S3 servers, and atomic
replace on local disk."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from s3_servers import s3_server_named
from vrepo.storage import LocalStorage, Storage

PROCESSES = 8
KEYS = 20
TIMEOUT = 120  # seconds; generous for slow CI machines
PAYLOAD_SIZE = 256 * 1024
# SeaweedFS serialises conditional writes to one key with a lock it retries about once a
# second, so each contended key costs it ~1-2 s: fewer keys keep its race quick.
RACE_KEYS = {"local": KEYS, "s3-moto": KEYS, "s3-seaweedfs": 10}


def _payload(worker: int, round_: int = 0) -> bytes:
    """A payload that identifies its writer in every byte, so a mix is detectable."""
    return bytes([worker * 16 + round_ % 16]) * PAYLOAD_SIZE


def _race_put_if_absent(
    storage: Storage, keys: int, worker: int, barrier: Any, results: Any
) -> None:
    async def create_all() -> None:
        for i in range(keys):
            key = f"refs/branch.main/{i}.json"
            barrier.wait(TIMEOUT)  # blocks this process's loop, which has nothing else to do
            results.put((key, worker, await storage.put_if_absent(key, _record(worker, key))))

    asyncio.run(create_all())


def _record(worker: int, key: str) -> bytes:
    return f"worker {worker} {key}".encode() * 64


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


@pytest.mark.parametrize("backend", list(RACE_KEYS))
def test_put_if_absent_has_exactly_one_winner_across_processes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "local":
        storage: Storage = LocalStorage(tmp_path / "repo")
    else:
        server = s3_server_named(request, backend.removeprefix("s3-"))
        storage = server.storage(server.pool.take(), "repo")
    keys = RACE_KEYS[backend]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = _start(ctx, _race_put_if_absent, lambda w: (storage, keys, w, barrier, results))
    outcomes = [results.get(timeout=TIMEOUT) for _ in range(PROCESSES * keys)]
    _join(processes)

    expected = sorted(f"refs/branch.main/{i}.json" for i in range(keys))
    for key in expected:
        winners = [worker for k, worker, won in outcomes if k == key and won]
        assert len(winners) == 1, f"{key}: winners {winners}"
        content = asyncio.run(storage.get(key))
        assert content == _record(winners[0], key)
    assert asyncio.run(storage.list("")) == expected
    if backend == "local":  # no temp files left behind
        names = sorted(p.name for p in (tmp_path / "repo" / "refs" / "branch.main").iterdir())
        assert names == sorted(key.rpartition("/")[2] for key in expected)


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
