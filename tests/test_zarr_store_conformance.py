"""zarr's own store conformance suite, run against VRepoStore.

Two variants: a store over a fork session (picklable, as a worker sees it) and a store over a
coordinator's writable session. A writable session refuses to pickle by design (it says to
fork), so that variant replaces the one pickling test with a check of exactly that refusal.
"""

from __future__ import annotations

import pickle

import pytest
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.testing.store import StoreTests

import vrepo
from vrepo.zarr.store import VRepoStore


@pytest.fixture
def repo(tmp_path) -> vrepo.Repository:
    return vrepo.Repository.create(tmp_path / "repo.vrepo")


class _VRepoStoreTests(StoreTests[VRepoStore, cpu.Buffer]):
    store_cls = VRepoStore
    buffer_cls = cpu.Buffer

    async def set(self, store: VRepoStore, key: str, value: Buffer) -> None:
        # bypass the store's public methods: write through the session's content directly
        content = await store.session._ensure_content()
        await content.write_object(key, value.to_bytes())

    async def get(self, store: VRepoStore, key: str) -> Buffer:
        content = await store.session._ensure_content()
        ref = content.object_ref(key)
        if ref is not None:
            return self.buffer_cls.from_bytes(await content.objects.read_chunk(ref))
        value = await store.get(key, prototype=default_buffer_prototype())
        assert value is not None, key
        return value

    def test_store_repr(self, store: VRepoStore) -> None:
        assert repr(store).startswith("VRepoStore(<")
        assert "read_only=False" in repr(store)

    def test_store_supports_writes(self, store: VRepoStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: VRepoStore) -> None:
        assert store.supports_listing


class TestForkStore(_VRepoStoreTests):
    @pytest.fixture
    def store_kwargs(self, repo: vrepo.Repository) -> dict:
        return {"session": repo.writable_session("main").fork()}


class TestSessionStore(_VRepoStoreTests):
    @pytest.fixture
    def store_kwargs(self, repo: vrepo.Repository) -> dict:
        return {"session": repo.writable_session("main")}

    async def test_serializable_store(self, store: VRepoStore) -> None:
        with pytest.raises(vrepo.VRepoError, match=r"fork\(\)"):
            pickle.dumps(store)
