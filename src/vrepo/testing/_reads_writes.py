"""Conformance tests of reading and writing objects: `get`, `put`, `put_new`, `delete`, `exists`."""

from __future__ import annotations

import os

import pytest

from vrepo.errors import ObjectNotFoundError
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

    @pytest.mark.parametrize("byte_range", [(-1, 3), (5, 2), (-3, -1)])
    @in_new_loop
    async def test_bad_byte_range(self, storage: Storage, byte_range: tuple[int, int]) -> None:
        """Ranges are ``0 <= start <= end`` (no suffix or negative ranges): others raise a
        ValueError naming the byte range, before any request."""
        await storage.put("k", b"0123456789")
        with pytest.raises(ValueError, match="byte range"):
            await storage.get("k", byte_range)

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
