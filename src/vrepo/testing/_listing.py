"""Conformance tests of `list` (by plain string prefix, sorted) and `make_durable`."""

from __future__ import annotations

import asyncio

import pytest

from vrepo.errors import ObjectNotFoundError
from vrepo.storage import Storage
from vrepo.testing._base import StorageTestsBase, in_new_loop

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


class ListingTests(StorageTestsBase):
    """`list` and `make_durable`: which keys a storage holds, and making them durable."""

    # --- list ------------------------------------------------------------------------------

    @pytest.mark.parametrize(("prefix", "expected"), LISTINGS)
    @in_new_loop
    async def test_list(self, storage: Storage, prefix: str, expected: list[str]) -> None:
        """`list(prefix)` is every key starting with the plain string ``prefix`` (mid-segment
        too, at any depth), sorted by code point, and nothing else."""
        await asyncio.gather(*(storage.put(key, key.encode()) for key in LIST_KEYS))
        assert await storage.list(prefix) == expected

    @in_new_loop
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

    @in_new_loop
    async def test_list_empty_storage(self, storage: Storage) -> None:
        """A new storage lists nothing, even before its root exists."""
        assert await storage.list("") == []
        assert await storage.list("refs/") == []
        assert await storage.list("refs/branch.main/", limit=1) == []

    @pytest.mark.parametrize(
        ("prefix", "start_after", "expected"),
        [
            ("chunks/", "chunks/a", ["chunks/b", "chunks/deep/er/c"]),
            ("chunks/", "chunks/", ["chunks/a", "chunks/b", "chunks/deep/er/c"]),
            ("chunks/", "", ["chunks/a", "chunks/b", "chunks/deep/er/c"]),
            ("chunks/", "chunks/b", ["chunks/deep/er/c"]),
            ("chunks/", "chunks/aa", ["chunks/b", "chunks/deep/er/c"]),
            ("chunks/", "chunks/z", []),
            ("chunks/", "snapshots/", []),
            ("refs/branch.main", "refs/branch.main/1.json", ["refs/branch.main/2.json", _REFS[2]]),
            ("", "refs/tag.v1/1.json", ["repo.json"]),
            ("", "chunks/deep/er/c", sorted(LIST_KEYS)[6:]),
        ],
    )
    @in_new_loop
    async def test_list_after(
        self, storage: Storage, prefix: str, start_after: str, expected: list[str]
    ) -> None:
        """`list_after(prefix, start_after)` is `list(prefix)` without the keys up to and
        including ``start_after``, in order; ``limit`` as for `list`."""
        await asyncio.gather(*(storage.put(key, key.encode()) for key in LIST_KEYS))
        assert await storage.list_after(prefix, start_after) == expected
        assert await storage.list_after(prefix, start_after, limit=1) == expected[:1]

    @in_new_loop
    async def test_list_after_many(self, storage: Storage) -> None:
        """More keys than one listing request returns (S3 pages hold 1,000) are listed from
        the start key on, every one once."""
        keys = [f"chunks/{i:05d}" for i in range(1100)]
        for start in range(0, len(keys), 200):
            await asyncio.gather(*(storage.put(key, b"x") for key in keys[start : start + 200]))
        assert await storage.list_after("chunks/", keys[99]) == keys[100:]

    @in_new_loop
    async def test_size(self, storage: Storage) -> None:
        """`size` is the stored object's length (0 for an empty one); `ObjectNotFoundError`
        names a missing key."""
        await storage.put("chunks/a", b"12345")
        await storage.put("chunks/empty", b"")
        assert await storage.size("chunks/a") == 5
        assert await storage.size("chunks/empty") == 0
        with pytest.raises(ObjectNotFoundError) as info:
            await storage.size("chunks/missing")
        assert info.value.key == "chunks/missing"

    # --- make_durable ----------------------------------------------------------------------

    @in_new_loop
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

    @in_new_loop
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
