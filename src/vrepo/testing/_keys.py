"""Conformance tests of key validation: every operation refuses an invalid key or prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrepo.errors import InvalidKeyError
from vrepo.storage import Storage
from vrepo.testing._base import StorageTestsBase, in_new_loop

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


class KeyValidationTests(StorageTestsBase):
    """Invalid keys and prefixes are refused before anything is touched."""

    @pytest.mark.parametrize("key", BAD_KEYS)
    @in_new_loop
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
    @in_new_loop
    async def test_bad_prefixes_rejected(self, storage: Storage, prefix: str) -> None:
        """`list` refuses a prefix no valid key can start with (`InvalidKeyError`)."""
        with pytest.raises(InvalidKeyError, match="prefix"):
            await storage.list(prefix)
