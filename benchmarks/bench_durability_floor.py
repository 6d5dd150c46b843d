"""What getting the bytes to disk during a write costs: plain zarr, made to start writeback.

`bench_xarray_distributed.py` compares vrepo's write + commit (durable: every byte is on disk
when it returns) with ``to_zarr`` to a LocalStore, whose bytes are still in the page cache
when it returns. This script adds a third writer to the same rounds: ``to_zarr`` to a
LocalStore that, like vrepo, starts the writeback of every chunk file as soon as it is
written (``sync_file_range`` from a background thread) but never waits for it, so it is
*not* durable. Its ratio to plain ``to_zarr`` is a floor for any writer that must have the
data on disk at the end of the same job on this machine; vrepo's ratio is reported next to it.

Same dataset and cluster as bench_xarray_distributed (600 MB, 288 chunks, 2 worker
processes); rounds rotate the order; each run's files are deleted before the next write.

    /work/venv/bin/python benchmarks/bench_durability_floor.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys

import zarr
from _common import fmt_s, print_table, save_results, settle, temp_dir, timed
from bench_xarray_distributed import make_dataset, write_plain, write_vrepo
from distributed import Client, LocalCluster

from vrepo.storage._writeback import hand_off
from vrepo.storage.local import _write_all


class _WritebackLocalStore(zarr.storage.LocalStore):
    """A LocalStore whose chunk writes start their writeback at once (not durable)."""

    async def set(self, key: str, value: zarr.core.buffer.Buffer) -> None:
        if key.endswith("zarr.json"):
            await super().set(key, value)
            return
        data = memoryview(value.as_buffer_like()).cast("B")
        await asyncio.to_thread(_write_and_start_writeback, str(self.root / key), data)


def _write_and_start_writeback(path: str, data: memoryview) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    _write_all(fd, data)
    hand_off(fd)  # vrepo's own hand-off: writeback starts, the descriptor closes later


def write_plain_writeback(ds, path: str) -> None:  # type: ignore[no-untyped-def]
    ds.to_zarr(_WritebackLocalStore(path), mode="w", zarr_format=3, consolidated=False)


WRITERS = {
    "to_zarr": write_plain,
    "to_zarr + writeback": write_plain_writeback,
    "vrepo to_repo": write_vrepo,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    kinds = list(WRITERS)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
        temp_dir("floor") as root,
    ):
        ds = make_dataset(client)
        for r in range(args.rounds + 1):  # round 0 warms up and is not counted
            order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            for kind in order:
                path = os.path.join(root, "out")
                settle()
                seconds, _ = timed(lambda kind=kind, path=path: WRITERS[kind](ds, path))
                shutil.rmtree(path)
                if r:
                    times[kind].append(seconds)
    base = times["to_zarr"]
    ratios = {
        kind: statistics.median(t / b for t, b in zip(times[kind], base, strict=True))
        for kind in kinds
    }
    print_table(
        ["writer", "median time", "ratio to to_zarr (median of rounds)", "durable"],
        [
            [kind, fmt_s(statistics.median(times[kind])), f"{ratios[kind]:.3f}", durable]
            for kind, durable in zip(kinds, ["no", "no", "yes"], strict=True)
        ],
    )
    path = save_results("durability_floor", {"ratios": ratios, "seconds": times})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
