"""Conformance tests of reading and writing objects: `get` (and `get_checked`), `put`,
`put_new`, `delete`, `exists`."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from vrepo.errors import InvalidArgumentError, ObjectNotFoundError, StorageError
from vrepo.storage import Storage
from vrepo.testing._base import StorageTestsBase, in_new_loop

# Valid keys that are easy to get wrong: dots inside names, ':' past the first segment,
# non-ASCII, characters URLs escape, and 1004 characters in all.
UNUSUAL_KEYS = [
    "a.b/c..d/e.",
    "a/b:c",
    "données/é.json",
    "with space/a+b%20c&d=e",
    "/".join(["k" * 200] * 5),
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
HUGE_BYTE_RANGES = [
    ((0, 2**31), b"0123456789"),
    ((0, 2**70), b"0123456789"),
    ((8, 2**64), b"89"),
    ((2**70, 2**71), b""),
    ((2**63, 2**63), b""),
]
BAD_BYTE_RANGES = [(-1, 3), (5, 2), (-3, -1), (-1, 2**70), (0.0, 3), (0, "3"), (True, 3), (1,)]


class ReadWriteTests(StorageTestsBase):
    """`get`, `put` and `put_new`: what is written reads back, whole or in byte ranges."""

    @in_new_loop
    async def test_round_trip(self, storage: Storage) -> None:
        """What `put` stores, `get` returns as ``bytes``; empty objects are objects too."""
        await storage.put("chunks/abc", b"hello world")
        assert await storage.get("chunks/abc") == b"hello world"
        await storage.put("repo.json", b"")
        assert await storage.get("repo.json") == b""
        assert await storage.exists("repo.json")

    @in_new_loop
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

    @in_new_loop
    async def test_put_new_writes_fresh_objects(self, storage: Storage) -> None:
        """`put_new` (chunks under random ids) stores large objects and leaves no temporaries."""
        data = os.urandom(2 * 1024 * 1024 + 3)
        await storage.put_new("chunks/one", memoryview(data))
        await storage.put_new("chunks/two", b"x")
        assert await storage.get("chunks/one") == data
        assert await storage.list("chunks/") == ["chunks/one", "chunks/two"]
        await storage.make_durable(["chunks/one", "chunks/two"])

    @in_new_loop
    async def test_large_object(self, storage: Storage) -> None:
        """Objects of several MiB round-trip whole and in ranges (multipart uploads, pages)."""
        data = os.urandom(3 * 1024 * 1024 + 7)
        await storage.put("chunks/big", data)
        assert await storage.get("chunks/big") == data
        middle = (1024, 2 * 1024 * 1024)
        assert await storage.get("chunks/big", middle) == data[middle[0] : middle[1]]

    @pytest.mark.parametrize(("byte_range", "expected"), BYTE_RANGES)
    @in_new_loop
    async def test_byte_ranges(
        self, storage: Storage, byte_range: tuple[int, int], expected: bytes
    ) -> None:
        """``get(key, (start, end))`` is bytes ``[start, end)``, clipped at the object's end."""
        await storage.put("k", b"0123456789")
        assert await storage.get("k", byte_range) == expected

    @in_new_loop
    async def test_byte_ranges_of_an_empty_object(self, storage: Storage) -> None:
        """Any range of an empty object is empty (no error for a start past its end)."""
        await storage.put("empty", b"")
        assert await storage.get("empty", (0, 5)) == b""
        assert await storage.get("empty", (3, 3)) == b""

    @pytest.mark.parametrize(("byte_range", "expected"), HUGE_BYTE_RANGES)
    @in_new_loop
    async def test_huge_byte_ranges(
        self, storage: Storage, byte_range: tuple[int, int], expected: bytes
    ) -> None:
        """Ranges far past the end of a small object are clipped (no overflow), and a missing
        key is still reported as missing."""
        await storage.put("k", b"0123456789")
        assert await storage.get("k", byte_range) == expected
        with pytest.raises(ObjectNotFoundError):
            await storage.get("missing", byte_range)

    @in_new_loop
    async def test_huge_byte_range_allocates_nothing_large(self, storage: Storage) -> None:
        """A range is clipped to the object's size before anything is allocated: 2 GiB asked
        of a 10-byte object must not allocate 2 GiB (Python allocations, all threads)."""
        await storage.put("k", b"0123456789")
        await storage.get("k", (0, 1))  # clients and connections exist before measuring
        tracemalloc.start()
        try:
            got = await storage.get("k", (0, 2**31))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert got == b"0123456789"
        assert peak < 16 * 2**20, f"reading 10 bytes allocated {peak} bytes at the peak"

    @pytest.mark.parametrize("key", ["k", "missing", "a", "a/b/c"])
    @pytest.mark.parametrize("byte_range", BAD_BYTE_RANGES)
    @in_new_loop
    async def test_bad_byte_range(
        self, storage: Storage, key: str, byte_range: tuple[int, int]
    ) -> None:
        """Ranges are two integers with ``0 <= start <= end``: negative, reversed and
        non-integer ones raise `InvalidArgumentError` naming the byte range, before any
        request, for every key (an object, a missing key, a 'directory', a path through an
        object); they are not read as Python slices."""
        await storage.put("k", b"0123456789")
        await storage.put("a/b", b"0123456789")
        with pytest.raises(InvalidArgumentError, match="byte range") as info:
            await storage.get(key, byte_range)
        assert not isinstance(info.value, StorageError)

    @in_new_loop
    async def test_numpy_integer_byte_ranges(self, storage: Storage) -> None:
        """numpy integers (as in zarr's shard indexes) are ranges like Python ints."""
        await storage.put("k", b"0123456789")
        assert await storage.get("k", (np.uint64(2), np.int64(5))) == b"234"

    @pytest.mark.parametrize(("byte_range", "expected"), [(None, b"0123456789"), *BYTE_RANGES])
    @in_new_loop
    async def test_get_checked(
        self, storage: Storage, byte_range: tuple[int, int] | None, expected: bytes
    ) -> None:
        """`get_checked` returns what `get` does, having passed exactly those bytes to the check
        once; what the check raises reaches the caller unchanged (vrepo verifies chunks so)."""
        await storage.put("k", b"0123456789")
        seen: list[bytes] = []
        assert await storage.get_checked("k", byte_range, lambda data: seen.append(data)) == (
            expected
        )
        assert seen == [expected]

        class Refused(Exception):
            pass

        def refuse(data: bytes) -> None:
            raise Refused(len(data))

        with pytest.raises(Refused):
            await storage.get_checked("k", byte_range, refuse)
        with pytest.raises(ObjectNotFoundError):
            await storage.get_checked("missing", byte_range, refuse)

    @in_new_loop
    async def test_get_missing(self, storage: Storage) -> None:
        """A missing key, read whole or in part, raises `ObjectNotFoundError` naming it."""
        with pytest.raises(ObjectNotFoundError) as info:
            await storage.get("snapshots/nope")
        assert info.value.key == "snapshots/nope"
        with pytest.raises(ObjectNotFoundError):
            await storage.get("snapshots/nope", (0, 10))

    @in_new_loop
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

    @in_new_loop
    async def test_overwrite(self, storage: Storage) -> None:
        """`put` replaces an object whole: a shorter new version leaves no old tail."""
        await storage.put("refs/x", b"first version, longer")
        await storage.put("refs/x", b"second")
        assert await storage.get("refs/x") == b"second"

    @pytest.mark.parametrize("key", UNUSUAL_KEYS)
    @in_new_loop
    async def test_unusual_valid_keys(self, storage: Storage, key: str) -> None:
        """Every valid key works as is: stored, read, listed and deleted under its own name."""
        await storage.put(key, key.encode())
        assert await storage.get(key) == key.encode()
        assert await storage.list("") == [key]
        assert await storage.list(key.partition("/")[0]) == [key]
        await storage.delete(key)
        assert not await storage.exists(key)


class DeleteTests(StorageTestsBase):
    """`delete` and `exists`."""

    @in_new_loop
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
