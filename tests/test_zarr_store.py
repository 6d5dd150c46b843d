"""VRepoStore behaviour beyond the conformance suite: zarr structure, listing, bad keys."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync

import vrepo


@pytest.fixture
def repo(tmp_path) -> vrepo.Repository:
    return vrepo.Repository.create(tmp_path / "repo.vrepo")


def keys(store, prefix: str = "") -> list[str]:
    async def collect():
        return sorted([k async for k in store.list_prefix(prefix)])

    return sync(collect())


def list_dir(store, prefix: str) -> list[str]:
    async def collect():
        return sorted([k async for k in store.list_dir(prefix)])

    return sync(collect())


def test_groups_arrays_attributes_and_listing(repo):
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="w", attributes={"title": "ocean"})
    temp = root.create_group("model").create_array("temp", shape=(4, 6), chunks=(2, 3), dtype="f4")
    temp[:] = np.arange(24, dtype="f4").reshape(4, 6)
    temp.attrs["units"] = "K"
    session.commit("ocean model")

    store = repo.readonly_session().store
    assert keys(store) == [
        "model/temp/c/0/0", "model/temp/c/0/1", "model/temp/c/1/0", "model/temp/c/1/1",
        "model/temp/zarr.json", "model/zarr.json", "zarr.json",
    ]  # fmt: skip
    assert list_dir(store, "") == ["model", "zarr.json"]
    assert list_dir(store, "model") == ["temp", "zarr.json"]
    assert list_dir(store, "model/temp") == ["c", "zarr.json"]
    assert list_dir(store, "model/temp/c") == ["0", "1"]
    reread = zarr.open_group(store, mode="r")
    assert reread.attrs["title"] == "ocean"
    assert reread["model/temp"].attrs["units"] == "K"
    np.testing.assert_array_equal(reread["model/temp"][:], temp[:])


def test_delete_resize_and_overwrite(repo):
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="w")
    a = root.create_array("a", shape=(10,), chunks=(2,), dtype="i8")
    a[:] = np.arange(10)
    root.create_array("b", shape=(3,), dtype="i8")[:] = 7
    first = session.commit("a and b")

    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    root["a"].resize((5,))
    del root["b"]
    assert session.status().deleted_nodes == ("/b",)
    second = session.commit("shrink a, drop b")

    now = zarr.open_group(repo.readonly_session().store, mode="r")
    assert sorted(now.array_keys()) == ["a"]
    np.testing.assert_array_equal(now["a"][:], np.arange(5))
    assert keys(repo.readonly_session().store, "a/c") == [f"a/c/{i}" for i in range(3)]
    then = zarr.open_group(repo.readonly_session(snapshot_id=first).store, mode="r")
    np.testing.assert_array_equal(then["a"][:], np.arange(10))
    np.testing.assert_array_equal(then["b"][:], [7, 7, 7])

    # re-creating an array with another chunk layout drops the old chunks
    session = repo.writable_session()
    c = zarr.create_array(
        session.store, name="a", shape=(5,), chunks=(5,), dtype="i8", overwrite=True
    )
    np.testing.assert_array_equal(c[:], np.zeros(5))
    session.commit("re-create a")
    assert repo.lookup_snapshot(repo.lookup_branch("main")).parent_id == second


def test_sharded_partial_reads(repo):
    session = repo.writable_session()
    arr = zarr.create_array(
        session.store, name="s", shape=(64, 64), chunks=(8, 8), shards=(32, 32), dtype="u2"
    )
    data = np.arange(64 * 64, dtype="u2").reshape(64, 64)
    arr[:] = data
    session.commit("sharded")
    reread = zarr.open_array(repo.readonly_session().store, path="s", mode="r")
    np.testing.assert_array_equal(reread[3:9, 40:47], data[3:9, 40:47])
    np.testing.assert_array_equal(reread[:], data)


async def test_byte_ranges_on_stored_and_inline_chunks(tmp_path):
    repo = vrepo.Repository.create(
        tmp_path / "r.vrepo", config=vrepo.RepoConfig(inline_threshold_bytes=8)
    )
    session = repo.writable_session()
    store = session.store
    big, small = bytes(range(100)), b"tiny"
    meta = zarr.create_array(store, name="x", shape=(2,), chunks=(1,), dtype="u1")
    assert meta.shape == (2,)
    await store.set("x/c/0", cpu.Buffer.from_bytes(big))
    await store.set("x/c/1", cpu.Buffer.from_bytes(small))
    proto = default_buffer_prototype()
    for key, raw in (("x/c/0", big), ("x/c/1", small)):
        got = await store.get(key, proto, RangeByteRequest(1, 3))
        assert got.to_bytes() == raw[1:3]
        assert (await store.get(key, proto, SuffixByteRequest(2))).to_bytes() == raw[-2:]
        assert await store.getsize(key) == len(raw)


async def test_bad_keys_are_refused(repo):
    store = repo.writable_session().store
    value = cpu.Buffer.from_bytes(b"x")
    for key in ["../escape", "a/../../b", "/abs", "a//b", "a\\b", "a/./b", "", "a/"]:
        with pytest.raises(vrepo.InvalidKeyError):
            await store.set(key, value)
        with pytest.raises(vrepo.InvalidKeyError):
            await store.get(key, default_buffer_prototype())
    for key in [".zgroup", "a/.zarray", "a/.zattrs", ".zmetadata"]:
        with pytest.raises(vrepo.UnsupportedZarrFormatError, match="format 3"):
            await store.set(key, value)
    v2 = b'{"zarr_format": 2, "node_type": "group"}'
    with pytest.raises(vrepo.UnsupportedZarrFormatError):
        await store.set("zarr.json", cpu.Buffer.from_bytes(v2))
    # reading v2 keys is harmless (zarr probes for them) and finds nothing
    assert await store.get(".zgroup", default_buffer_prototype()) is None
    assert not store.session.has_uncommitted_changes


async def test_opaque_objects_are_versioned(repo):
    session = repo.writable_session()
    await session.store.set("notes/readme.txt", cpu.Buffer.from_bytes(b"hello"))
    await session.store.set("zarr.json", cpu.Buffer.from_bytes(b"not json"))
    snapshot = await session.commit_async("notes")
    store = repo.readonly_session(snapshot_id=snapshot).store
    got = await store.get("notes/readme.txt", default_buffer_prototype())
    assert got.to_bytes() == b"hello"
    assert (await store.get("zarr.json", default_buffer_prototype())).to_bytes() == b"not json"
    assert keys(store) == ["notes/readme.txt", "zarr.json"]


def test_store_equality_and_read_only_copies(repo):
    session = repo.writable_session()
    assert session.store == session.store
    assert session.store != repo.writable_session().store
    ro = session.store.with_read_only(True)
    assert ro.read_only and ro.session is session
    with pytest.raises(vrepo.ReadOnlyError):
        vrepo.VRepoStore(repo.readonly_session(), read_only=False)
