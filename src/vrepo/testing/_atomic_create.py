"""Conformance tests of `put_if_absent`: one winner per key, in one process or racing many."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

from vrepo.storage import Storage
from vrepo.testing._base import StorageTestsBase, in_new_loop
from vrepo.testing._workers import REFUSED, create_keys, record


class AtomicCreateTests(StorageTestsBase):
    """`put_if_absent` and `supports_atomic_create`, as the capability attributes say."""

    @in_new_loop
    async def test_supports_atomic_create(self, storage: Storage) -> None:
        """The storage is a `Storage` whose `supports_atomic_create` tells the truth."""
        assert isinstance(storage, Storage)
        assert storage.supports_atomic_create is self.atomic_create

    @in_new_loop
    async def test_put_if_absent(self, storage: Storage) -> None:
        """The first create returns True, a second returns False and changes nothing.
        Without atomic create (and no single-writer promise) it is refused, writing nothing."""
        key = "refs/branch.main/1.json"
        if not self._creates:
            await self._assert_refused(storage, key)
            assert await storage.list("") == []
            return
        assert await storage.put_if_absent(key, b"winner") is True
        assert await storage.put_if_absent(key, b"loser") is False
        assert await storage.get(key) == b"winner"
        assert await storage.list("refs/") == [key]

    @in_new_loop
    async def test_put_if_absent_concurrent_in_one_process(self, storage: Storage) -> None:
        """16 concurrent creates of one key on one event loop: exactly one wins, and its bytes
        are stored. Single-writer storages are called one at a time; refusing ones refuse all."""
        key = "refs/r/1"
        data = [f"writer {i}".encode() for i in range(16)]
        if not self._creates:
            for _ in data:
                await self._assert_refused(storage, key)
            return
        if self.atomic_create:
            results = await asyncio.gather(*(storage.put_if_absent(key, d) for d in data))
        else:
            results = [await storage.put_if_absent(key, d) for d in data]
        assert sum(results) == 1 and all(isinstance(r, bool) for r in results)
        assert await storage.get(key) == data[results.index(True)]

    @in_new_loop
    async def test_put_if_absent_race_across_processes(self, storage: Storage) -> None:
        """`race_writers` processes, each with an unpickled copy, create the same keys at the
        same moment (a barrier per key): exactly one wins each, and its bytes are stored.

        Storages not shared across processes race between threads; single-writer storages
        take turns; refusing storages must refuse every writer and write nothing.
        """
        keys = [f"refs/branch.main/{i}.json" for i in range(self.race_keys)]
        reports = await asyncio.to_thread(self._race, pickle.dumps(storage), keys)
        failed = {worker: report for worker, report in reports.items() if isinstance(report, str)}
        assert not failed, failed
        if not self._creates:
            refusals = [o for outcomes in reports.values() for o in outcomes]
            assert all(isinstance(o, str) and o.startswith(REFUSED) for o in refusals), refusals
            assert await storage.list("") == []
            return
        for index, key in enumerate(keys):
            outcomes = {worker: report[index] for worker, report in reports.items()}
            winners = [worker for worker, won in outcomes.items() if won is True]
            assert len(winners) == 1, f"{key}: {outcomes}"
            assert all(won is False for worker, won in outcomes.items() if worker not in winners)
            assert await storage.get(key) == record(winners[0], key)
        assert await storage.list("") == keys

    def _race(self, blob: bytes, keys: list[str]) -> dict[int, Any]:
        """Run `create_keys` in `race_writers` workers: together, or in turn (single writer)."""
        workers = self._workers()
        if self.single_writer:
            reports: dict[int, Any] = {}
            for worker in range(self.race_writers):
                workers.start(create_keys, blob, worker, keys, None, workers.results)
                reports.update(workers.collect(1))
            return reports
        barrier = workers.barrier(self.race_writers)
        for worker in range(self.race_writers):
            workers.start(create_keys, blob, worker, keys, barrier, workers.results)
        return workers.collect(self.race_writers)
