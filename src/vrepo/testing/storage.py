"""`StorageTests`: the conformance suite every `vrepo.storage.Storage` backend must pass.

Subclass it in a test module, say how to make a fresh, empty storage, and state your backend's
facts in class attributes; pytest then runs every test below against it::

    class TestMyStorage(StorageTests):
        def make_storage(self, tmp_path):
            return MyStorage(tmp_path / "root")

The tests are plain synchronous functions that run their coroutines with `asyncio.run` (one
new event loop per test), so no pytest plugin or configuration is needed.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vrepo.errors import InvalidKeyError, ObjectNotFoundError, StorageError
from vrepo.storage import Storage
from vrepo.testing._workers import (
    CHILD_KEY,
    PARENT_KEY,
    REFUSED,
    TIMEOUT,
    create_keys,
    record,
    use_copy,
)

# Keys every backend must refuse: they are empty, absolute, climb out of the root, have empty
# segments, hide behind a leading '.', contain backslashes or control characters, look like a
# drive or URL, or are too long.
BAD_KEYS = [
    "",
    "../x",
    "a/../../b",
    "a/..",
    "..",
    ".",
    "./a",
    "/abs",
    "/",
    "a//b",
    "a/",
    "a\\b",
    "..\\x",
    ".hidden",
    "a/.tmp",
    "a/\x00b",
    "a/b\n",
    "tab\there",
    "C:/Windows",
    "c:x",
    "x" * 1025,
]
BAD_PREFIXES = ["/", "/a", "a//", "../", "..", ".x", "a/..", "a/.", "a\\b"]
# Valid keys that are easy to get wrong: dots inside names, ':' past the first segment,
# non-ASCII, characters URLs escape, and 1004 characters in all.
UNUSUAL_KEYS = [
    "a.b/c..d/e.",
    "a/b:c",
    "données/é.json",
    "with space/a+b%20c&d=e",
    "/".join(["k" * 200] * 5),
]
LIST_KEYS = [
    "repo.json",
    "refs/branch.main/1.json",
    "refs/branch.main/2.json",
    "refs/branch.mainline/1.json",
    "refs/tag.v1/1.json",
    "chunks/b",
    "chunks/a",
    "chunks/deep/er/c",
    "a-b",
    "a/b",
    "a0",
]
_REFS = sorted(key for key in LIST_KEYS if key.startswith("refs/"))
_MAIN = ["refs/branch.main/1.json", "refs/branch.main/2.json"]
LISTINGS = [
    ("", sorted(LIST_KEYS)),
    ("refs/", _REFS),
    ("refs", _REFS),
    ("refs/branch.ma", [*_MAIN, "refs/branch.mainline/1.json"]),
    ("refs/branch.main/", _MAIN),
    ("refs/branch.main/2", ["refs/branch.main/2.json"]),
    ("chunks/", ["chunks/a", "chunks/b", "chunks/deep/er/c"]),
    ("chunks/a", ["chunks/a"]),
    ("chunks/deep/", ["chunks/deep/er/c"]),
    ("a", ["a-b", "a/b", "a0"]),
    ("repo.json", ["repo.json"]),
    ("repo.json/", []),
    ("nothing/", []),
    ("nothing/deeper/x", []),
    ("z", []),
]
BYTE_RANGES = [
    ((0, 3), b"012"),
    ((2, 5), b"234"),
    ((7, 100), b"789"),
    ((9, 10), b"9"),
    ((0, 10), b"0123456789"),
    ((10, 20), b""),
    ((50, 60), b""),
    ((4, 4), b""),
]

_AsyncTest = Callable[..., Coroutine[Any, Any, None]]


def _in_new_loop(body: _AsyncTest) -> Callable[..., None]:
    """Make an async test body a sync test: run it in a new event loop, then `close_storage`."""

    @functools.wraps(body)
    def test(self: StorageTests, *args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await body(self, *args, **kwargs)
            finally:
                await self.close_storage(kwargs["storage"])

        asyncio.run(main())

    return test


class _Workers:
    """Worker processes (from ``start_method``), or threads where processes cannot share."""

    def __init__(self, processes: bool, start_method: str) -> None:
        context = multiprocessing.get_context(start_method)
        self.results: Any = context.Queue() if processes else queue.Queue()
        self._barrier: Any = context.Barrier if processes else threading.Barrier
        self._new: Any = context.Process if processes else threading.Thread
        self._running: list[Any] = []

    def barrier(self, parties: int) -> Any:
        """A barrier for ``parties`` of these workers."""
        return self._barrier(parties)

    def start(self, target: Callable[..., None], *args: Any) -> None:
        """Start one worker running ``target(*args)``."""
        worker = self._new(target=target, args=args, daemon=True)
        worker.start()
        self._running.append(worker)

    def collect(self, count: int) -> dict[int, Any]:
        """The reports of ``count`` workers, by worker number, once every worker has ended."""
        reports: dict[int, Any] = {}
        while len(reports) < count:
            try:
                worker, report = self.results.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"only {len(reports)} of {count} workers reported in {TIMEOUT} s")
            reports[worker] = report
        for worker in self._running:
            worker.join(TIMEOUT)
            assert getattr(worker, "exitcode", 0) == 0, f"{worker} ended with an error"
        self._running.clear()
        return reports


class StorageTests:
    """Conformance tests for a `vrepo.storage.Storage` backend; subclass as ``Test...``.

    Provide a new, empty storage per test with `make_storage` (create it below ``tmp_path``,
    so the key tests can see that nothing is written outside it) or by overriding the
    `storage` fixture (for storages that need other fixtures, such as a server). Release
    clients in `close_storage`; list configured secrets in the `secrets` fixture. The class
    attributes state facts about the backend; a test whose capability a backend lacks checks
    the documented refusal instead, so a wrong attribute fails a test rather than hiding one.
    Storages are pickled to child processes started with ``start_method``: a backend's module
    must be importable there (the children get this process's ``sys.path``).
    """

    atomic_create: ClassVar[bool] = True
    """`put_if_absent` is atomic across processes (`supports_atomic_create` says the same).
    False: it refuses with `StorageError` and writes nothing, unless `single_writer`."""

    single_writer: ClassVar[bool] = False
    """Only with ``atomic_create = False``: `put_if_absent` creates anyway (a check, then a
    write) because the user promised one writer at a time; racing writers take turns."""

    shared_across_processes: ClassVar[bool] = True
    """A copy unpickled in another process sees the same objects. False (the storage lives in
    one process): the copy must fail there, and races run between threads instead."""

    make_durable_reports_missing: ClassVar[bool] = True
    """`make_durable` looks for its keys and raises `ObjectNotFoundError` for a missing one.
    False: writes are durable on return, so it looks nothing up and a missing key passes."""

    start_method: ClassVar[str] = "spawn"
    """How child processes start ('spawn' or 'forkserver': never a fork of a running loop)."""

    race_writers: ClassVar[int] = 8
    """How many writers race to create each key."""

    race_keys: ClassVar[int] = 4
    """How many keys they race for (each key is a separate race)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.atomic_create and cls.single_writer:
            raise TypeError(f"{cls.__name__}: single_writer applies only to atomic_create=False")

    # --- what a subclass provides ----------------------------------------------------------

    def make_storage(self, tmp_path: Path) -> Storage:
        """A new, empty storage for one test; override this or the `storage` fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must define make_storage(tmp_path) or a storage fixture"
        )

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        """The storage under test: `make_storage` below this test's ``tmp_path``."""
        return self.make_storage(tmp_path)

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        """Secrets the storage is configured with (keys, tokens, passwords); none by default."""
        return ()

    async def close_storage(self, storage: Storage) -> None:
        """Release the storage's clients; runs in each test's event loop. Default: nothing."""

    # --- helpers ---------------------------------------------------------------------------

    @property
    def _creates(self) -> bool:
        return self.atomic_create or self.single_writer

    async def _assert_refused(self, storage: Storage, key: str) -> None:
        with pytest.raises(StorageError) as info:
            await storage.put_if_absent(key, b"x")
        assert not isinstance(info.value, ObjectNotFoundError | InvalidKeyError), info.value
        assert not await storage.exists(key)

    def _workers(self) -> _Workers:
        return _Workers(self.shared_across_processes, self.start_method)

    # --- get / put -------------------------------------------------------------------------

    @_in_new_loop
    async def test_round_trip(self, storage: Storage) -> None:
        """What `put` stores, `get` returns as ``bytes``; empty objects are objects too."""
        await storage.put("chunks/abc", b"hello world")
        assert await storage.get("chunks/abc") == b"hello world"
        await storage.put("repo.json", b"")
        assert await storage.get("repo.json") == b""
        assert await storage.exists("repo.json")

    @_in_new_loop
    async def test_put_copies_memoryviews(self, storage: Storage) -> None:
        """`put` takes memoryviews of any item size and stores a copy, not the live buffer."""
        buffer = bytearray(b"abcdef")
        await storage.put("a/b", memoryview(buffer))
        buffer[:] = b"XXXXXX"
        assert await storage.get("a/b") == b"abcdef"
        numbers = memoryview(b"\x01\x00\x02\x00\x03\x00").cast("H")  # 2-byte items
        await storage.put("a/numbers", numbers)
        assert await storage.get("a/numbers") == numbers.tobytes()
        assert type(await storage.get("a/numbers")) is bytes

    @_in_new_loop
    async def test_put_new_writes_fresh_objects(self, storage: Storage) -> None:
        """`put_new` (chunks under random ids) stores large objects and leaves no temporaries."""
        data = os.urandom(2 * 1024 * 1024 + 3)
        await storage.put_new("chunks/one", memoryview(data))
        await storage.put_new("chunks/two", b"x")
        assert await storage.get("chunks/one") == data
        assert await storage.list("chunks/") == ["chunks/one", "chunks/two"]
        await storage.make_durable(["chunks/one", "chunks/two"])

    @_in_new_loop
    async def test_large_object(self, storage: Storage) -> None:
        """Objects of several MiB round-trip whole and in ranges (multipart uploads, pages)."""
        data = os.urandom(3 * 1024 * 1024 + 7)
        await storage.put("chunks/big", data)
        assert await storage.get("chunks/big") == data
        middle = (1024, 2 * 1024 * 1024)
        assert await storage.get("chunks/big", middle) == data[middle[0] : middle[1]]

    @pytest.mark.parametrize(("byte_range", "expected"), BYTE_RANGES)
    @_in_new_loop
    async def test_byte_ranges(
        self, storage: Storage, byte_range: tuple[int, int], expected: bytes
    ) -> None:
        """``get(key, (start, end))`` is bytes ``[start, end)``, clipped at the object's end."""
        await storage.put("k", b"0123456789")
        assert await storage.get("k", byte_range) == expected

    @_in_new_loop
    async def test_byte_ranges_of_an_empty_object(self, storage: Storage) -> None:
        """Any range of an empty object is empty (no error for a start past its end)."""
        await storage.put("empty", b"")
        assert await storage.get("empty", (0, 5)) == b""
        assert await storage.get("empty", (3, 3)) == b""

    @pytest.mark.parametrize("byte_range", [(-1, 3), (5, 2), (-3, -1)])
    @_in_new_loop
    async def test_bad_byte_range(self, storage: Storage, byte_range: tuple[int, int]) -> None:
        """Ranges are ``0 <= start <= end`` (no suffix or negative ranges): others raise a
        ValueError naming the byte range, before any request."""
        await storage.put("k", b"0123456789")
        with pytest.raises(ValueError, match="byte range"):
            await storage.get("k", byte_range)

    @_in_new_loop
    async def test_get_missing(self, storage: Storage) -> None:
        """A missing key, read whole or in part, raises `ObjectNotFoundError` naming it."""
        with pytest.raises(ObjectNotFoundError) as info:
            await storage.get("snapshots/nope")
        assert info.value.key == "snapshots/nope"
        with pytest.raises(ObjectNotFoundError):
            await storage.get("snapshots/nope", (0, 10))

    @_in_new_loop
    async def test_directories_and_files_in_the_path_are_not_objects(
        self, storage: Storage
    ) -> None:
        """Only keys that were written are objects: neither their parent 'directories' nor
        paths through an object exist, read, or delete anything."""
        await storage.put("a/b/c", b"x")
        for key in ["a", "a/b", "a/b/c/d"]:
            with pytest.raises(ObjectNotFoundError):
                await storage.get(key)
            with pytest.raises(ObjectNotFoundError):
                await storage.get(key, (0, 1))
            assert not await storage.exists(key)
            await storage.delete(key)
        assert await storage.get("a/b/c") == b"x"

    @_in_new_loop
    async def test_overwrite(self, storage: Storage) -> None:
        """`put` replaces an object whole: a shorter new version leaves no old tail."""
        await storage.put("refs/x", b"first version, longer")
        await storage.put("refs/x", b"second")
        assert await storage.get("refs/x") == b"second"

    @pytest.mark.parametrize("key", UNUSUAL_KEYS)
    @_in_new_loop
    async def test_unusual_valid_keys(self, storage: Storage, key: str) -> None:
        """Every valid key works as is: stored, read, listed and deleted under its own name."""
        await storage.put(key, key.encode())
        assert await storage.get(key) == key.encode()
        assert await storage.list("") == [key]
        assert await storage.list(key.partition("/")[0]) == [key]
        await storage.delete(key)
        assert not await storage.exists(key)

    # --- put_if_absent ---------------------------------------------------------------------

    @_in_new_loop
    async def test_supports_atomic_create(self, storage: Storage) -> None:
        """The storage is a `Storage` whose `supports_atomic_create` tells the truth."""
        assert isinstance(storage, Storage)
        assert storage.supports_atomic_create is self.atomic_create

    @_in_new_loop
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

    @_in_new_loop
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

    @_in_new_loop
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

    # --- delete / exists -------------------------------------------------------------------

    @_in_new_loop
    async def test_delete_and_exists(self, storage: Storage) -> None:
        """`exists` follows `put` and `delete`; deleting a missing key is not an error, and a
        deleted key reads as missing and can be created again."""
        assert not await storage.exists("chunks/a")
        await storage.put("chunks/a", b"1")
        assert await storage.exists("chunks/a")
        await storage.delete("chunks/a")
        assert not await storage.exists("chunks/a")
        await storage.delete("chunks/a")
        await storage.delete("never/existed/at/all")
        with pytest.raises(ObjectNotFoundError):
            await storage.get("chunks/a")
        if self._creates:
            assert await storage.put_if_absent("chunks/a", b"2") is True
        else:
            await self._assert_refused(storage, "chunks/a")

    # --- list ------------------------------------------------------------------------------

    @pytest.mark.parametrize(("prefix", "expected"), LISTINGS)
    @_in_new_loop
    async def test_list(self, storage: Storage, prefix: str, expected: list[str]) -> None:
        """`list(prefix)` is every key starting with the plain string ``prefix`` (mid-segment
        too, at any depth), sorted by code point, and nothing else."""
        await asyncio.gather(*(storage.put(key, key.encode()) for key in LIST_KEYS))
        assert await storage.list(prefix) == expected

    @_in_new_loop
    async def test_list_limit(self, storage: Storage) -> None:
        """``limit=n`` gives the first n keys in order; 0 gives none; a negative limit is a
        ValueError."""
        keys = [f"refs/branch.main/{i:04d}.json" for i in range(20)]
        await asyncio.gather(*(storage.put(key, b"x") for key in reversed(keys)))
        assert await storage.list("refs/", limit=3) == keys[:3]
        assert await storage.list("refs/", limit=100) == keys
        assert await storage.list("refs/", limit=0) == []
        with pytest.raises(ValueError, match="limit"):
            await storage.list("refs/", limit=-1)

    @_in_new_loop
    async def test_list_empty_storage(self, storage: Storage) -> None:
        """A new storage lists nothing, even before its root exists."""
        assert await storage.list("") == []
        assert await storage.list("refs/") == []
        assert await storage.list("refs/branch.main/", limit=1) == []

    # --- make_durable ----------------------------------------------------------------------

    @_in_new_loop
    async def test_make_durable(self, storage: Storage) -> None:
        """`make_durable` takes any iterable of written keys, including none, and leaves them
        readable."""
        keys = ["chunks/a", "chunks/deep/b", "snapshots/s"]
        for key in keys:
            await storage.put(key, key.encode())
        await storage.make_durable(keys)
        await storage.make_durable([])
        await storage.make_durable(iter(keys[:1]))
        assert [await storage.get(key) for key in keys] == [key.encode() for key in keys]

    @_in_new_loop
    async def test_make_durable_missing_keys(self, storage: Storage) -> None:
        """A missing key raises `ObjectNotFoundError` naming it, if the backend looks its keys
        up (`make_durable_reports_missing`); otherwise it passes, as nothing needs doing."""
        await storage.put("chunks/a", b"1")
        if not self.make_durable_reports_missing:
            await storage.make_durable(["chunks/a", "chunks/missing", "no/such/dir/key"])
            return
        with pytest.raises(ObjectNotFoundError) as info:
            await storage.make_durable(["chunks/a", "chunks/missing"])
        assert info.value.key == "chunks/missing"
        with pytest.raises(ObjectNotFoundError):
            await storage.make_durable(["no/such/dir/key"])

    # --- key validation --------------------------------------------------------------------

    @pytest.mark.parametrize("key", BAD_KEYS)
    @_in_new_loop
    async def test_bad_keys_rejected(self, storage: Storage, key: str, tmp_path: Path) -> None:
        """Every operation refuses an invalid key with `InvalidKeyError` (saying what a valid
        key is) before touching anything: nothing appears in the storage or below tmp_path."""
        await storage.put("sentinel", b"x")
        before = sorted(tmp_path.rglob("*"))
        operations = [
            storage.get(key),
            storage.get(key, (0, 1)),
            storage.put(key, b"x"),
            storage.put_new(key, b"x"),
            storage.put_if_absent(key, b"x"),
            storage.delete(key),
            storage.exists(key),
            storage.make_durable([key]),
        ]
        for operation in operations:
            with pytest.raises(InvalidKeyError) as info:
                await operation
            assert "valid key" in str(info.value)
        assert sorted(tmp_path.rglob("*")) == before
        assert await storage.list("") == ["sentinel"]

    @pytest.mark.parametrize("prefix", BAD_PREFIXES)
    @_in_new_loop
    async def test_bad_prefixes_rejected(self, storage: Storage, prefix: str) -> None:
        """`list` refuses a prefix no valid key can start with (`InvalidKeyError`)."""
        with pytest.raises(InvalidKeyError, match="prefix"):
            await storage.list(prefix)

    # --- pickling and repr -----------------------------------------------------------------

    @_in_new_loop
    async def test_pickle_round_trip(self, storage: Storage) -> None:
        """A used storage pickles as its configuration: the copy is equal (same hash), and
        works on the same objects in this process (no clients or pools carried over)."""
        await storage.put("a/b", b"data")
        await storage.make_durable(["a/b"])  # may start thread pools or clients
        clone = pickle.loads(pickle.dumps(storage))
        assert clone == storage and hash(clone) == hash(storage)
        assert clone.url == storage.url
        assert await clone.get("a/b") == b"data"
        await clone.put("a/c", b"through the copy")
        await clone.make_durable(["a/b", "a/c"])
        assert await storage.get("a/c") == b"through the copy"

    @_in_new_loop
    async def test_pickle_in_another_process(self, storage: Storage) -> None:
        """A copy unpickled in a new process reads this process's objects and writes ones
        this process sees. A storage that lives in one process (`shared_across_processes`
        False) must instead fail there with a `StorageError`, or see none of them."""
        await storage.put(PARENT_KEY, b"from the parent")
        workers = _Workers(True, self.start_method)
        workers.start(use_copy, pickle.dumps(storage), 0, workers.results)
        stage, error, is_storage_error = (await asyncio.to_thread(workers.collect, 1))[0]
        if self.shared_across_processes:
            assert (stage, error) == ("done", None)
            assert await storage.get(CHILD_KEY) == b"from the parent and child"
        else:
            assert stage in ("unpickling", "reading") and is_storage_error, (stage, error)
            assert not await storage.exists(CHILD_KEY)

    @_in_new_loop
    async def test_repr_and_messages_hide_secrets(
        self, storage: Storage, secrets: Sequence[str]
    ) -> None:
        """`repr` shows the credential-free `url`; no configured secret appears in repr,
        str, url or error messages."""
        texts = [repr(storage), str(storage), storage.url]
        for operation in (storage.get("never/written"), storage.get("../x")):
            with pytest.raises(StorageError) as info:
                await operation
            texts.append(str(info.value))
        assert storage.url and storage.url in repr(storage)
        for secret in secrets:
            assert secret, "an empty secret checks nothing"
            assert not [text for text in texts if secret in text]
