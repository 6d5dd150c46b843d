"""Conformance tests of pickling (to this and other processes) and of `repr` hiding secrets."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Sequence

import pytest

from vrepo.errors import StorageError
from vrepo.storage import Storage
from vrepo.testing._base import StorageTestsBase, Workers, in_new_loop
from vrepo.testing._workers import CHILD_KEY, PARENT_KEY, use_copy


class PicklingTests(StorageTestsBase):
    """Pickled copies are equal and work anywhere they can; nothing shows a secret."""

    @in_new_loop
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

    @in_new_loop
    async def test_pickle_in_another_process(self, storage: Storage) -> None:
        """A copy unpickled in a new process reads this process's objects and writes ones
        this process sees. A storage that lives in one process (`shared_across_processes`
        False) must instead fail there with a `StorageError`, or see none of them."""
        await storage.put(PARENT_KEY, b"from the parent")
        workers = Workers(True, self.start_method)
        workers.start(use_copy, pickle.dumps(storage), 0, workers.results)
        stage, error, is_storage_error = (await asyncio.to_thread(workers.collect, 1))[0]
        if self.shared_across_processes:
            assert (stage, error) == ("done", None)
            assert await storage.get(CHILD_KEY) == b"from the parent and child"
        else:
            assert stage in ("unpickling", "reading") and is_storage_error, (stage, error)
            assert not await storage.exists(CHILD_KEY)

    @in_new_loop
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
