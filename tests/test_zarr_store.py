"""VRepoStore behaviour beyond the conformance suite: zarr structure, listing, bad keys."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
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


# --- the newer Store API: coalesced range reads, sizes, synchronous access ----------------------

RANGES = [
    None,
    RangeByteRequest(0, 10),
    RangeByteRequest(12, 20),
    RangeByteRequest(95, 400),
    OffsetByteRequest(90),
    SuffixByteRequest(7),
    RangeByteRequest(500, 600),
]


@pytest.fixture
def counted_reads(monkeypatch):
    """Patch a store's content so each storage read of a chunk is recorded as (start, end)."""

    async def attach(store) -> list[tuple[int, int]]:
        content = await store.session._ensure_content()
        reads: list[tuple[int, int]] = []
        read = content.objects.read_chunk

        async def counting(ref, start=0, end=None, **checks):
            reads.append((start, end))
            return await read(ref, start, end, **checks)

        monkeypatch.setattr(content.objects, "read_chunk", counting)
        return reads

    return attach


async def _ranges(store, key, ranges, **limits) -> dict[int, bytes]:
    proto = default_buffer_prototype()
    got: dict[int, bytes] = {}
    async for batch in store.get_ranges(key, ranges, prototype=proto, **limits):
        for index, buf in batch:
            assert index not in got
            got[index] = buf.to_bytes()
    return got


async def test_get_ranges_equal_get_and_share_reads(tmp_path, counted_reads):
    repo = vrepo.Repository.create(
        tmp_path / "r.vrepo", config=vrepo.RepoConfig(inline_threshold_bytes=8)
    )
    store = repo.writable_session().store
    zarr.create_array(store, name="x", shape=(2,), chunks=(1,), dtype="u1")
    await store.set("x/c/0", cpu.Buffer.from_bytes(bytes(range(100))))  # a stored chunk
    await store.set("x/c/1", cpu.Buffer.from_bytes(b"tiny"))  # inline in the manifest
    proto = default_buffer_prototype()
    for key in ("x/c/0", "x/c/1", "x/zarr.json"):
        expected = {i: (await store.get(key, proto, r)).to_bytes() for i, r in enumerate(RANGES)}
        assert await _ranges(store, key, RANGES) == expected
        pairs = store.get_ranges_sync(key, RANGES, prototype=proto)
        assert {i: buf.to_bytes() for i, buf in pairs} == expected

    reads = await counted_reads(store)
    await _ranges(store, "x/c/0", RANGES)
    assert reads == [(0, 100)]  # every request of a 100-byte chunk: one read
    reads.clear()
    near = [RangeByteRequest(0, 10), RangeByteRequest(40, 50), RangeByteRequest(90, 95)]
    got = await _ranges(store, "x/c/0", near, max_gap_bytes=20, max_coalesced_bytes=1000)
    assert got == {0: bytes(range(10)), 1: bytes(range(40, 50)), 2: bytes(range(90, 95))}
    assert sorted(reads) == [(0, 10), (40, 50), (90, 95)]  # gaps of 30 > 20: apart
    reads.clear()
    await _ranges(store, "x/c/0", near, max_gap_bytes=40, max_coalesced_bytes=60)
    assert sorted(reads) == [(0, 50), (90, 95)]  # the size cap ends the first group
    reads.clear()
    await _ranges(store, "x/c/1", RANGES)
    assert reads == []  # inline bytes need no storage read


async def test_get_ranges_of_a_missing_key(repo):
    store = repo.writable_session().store
    proto = default_buffer_prototype()
    with pytest.raises(BaseExceptionGroup) as caught:
        await _ranges(store, "nothing/here", [RangeByteRequest(0, 1)])
    assert caught.group_contains(FileNotFoundError)
    assert await _ranges(store, "nothing/here", []) == {}
    with pytest.raises(BaseExceptionGroup):
        store.get_ranges_sync("nothing/here", [None], prototype=proto)


async def test_get_partial_values_in_order_and_coalesced(repo, counted_reads):
    store = repo.writable_session().store
    a, b = bytes(range(250)) * 4, b"bee" * 400  # both above the inline threshold
    await store.set("a", cpu.Buffer.from_bytes(a))
    await store.set("b", cpu.Buffer.from_bytes(b))
    reads = await counted_reads(store)
    wanted = [
        ("a", RangeByteRequest(0, 2)),
        ("missing", None),
        ("b", SuffixByteRequest(1)),
        ("a", OffsetByteRequest(998)),
    ]
    got = await store.get_partial_values(default_buffer_prototype(), (kr for kr in wanted))
    assert [g if g is None else g.to_bytes() for g in got] == [a[:2], None, b"e", a[998:]]
    assert len(reads) == 2  # one read per key: a's two ranges are near enough to share it


async def test_getsize_prefix_is_a_directory_and_reads_nothing(repo, counted_reads):
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="w")
    root.create_array("c", shape=(4,), chunks=(2,), dtype="i8")[:] = 1
    root.create_array("cc", shape=(4,), chunks=(4,), dtype="i8")[:] = 2
    store = session.store
    reads = await counted_reads(store)
    for prefix, as_dir in [("", ""), ("c", "c/"), ("c/", "c/"), ("cc", "cc/"), ("c/c", "c/c/")]:
        below = [k async for k in store.list_prefix(as_dir)]
        assert await store.getsize_prefix(prefix) == sum([await store.getsize(k) for k in below])
    assert await store.getsize_prefix("c") < await store.getsize_prefix("")
    assert reads == []
    assert not await store.is_empty("c") and await store.is_empty("c/zz")
    assert not await store.is_empty("") and await store.is_empty("d")


def test_sync_methods_refuse_vrepo_loop_and_zarr_falls_back(repo):
    from vrepo._sync import run_sync

    store = repo.writable_session().store
    protocol = getattr(zarr.abc.store, "SupportsSyncStore", None)  # not in zarr 3.1.3
    assert protocol is None or isinstance(store, protocol)
    assert store._supports_sync_io
    store.set_sync("k", cpu.Buffer.from_bytes(b"v"))

    async def on_vrepo_loop():
        assert not store._supports_sync_io  # zarr's fused pipeline then stays async here
        with pytest.raises(RuntimeError, match="await the async variant"):
            store.get_sync("k")
        return await store.get("k", default_buffer_prototype())

    assert run_sync(on_vrepo_loop()).to_bytes() == b"v"


PIPELINES = ["zarr.core.codec_pipeline.BatchedCodecPipeline"]
if hasattr(zarr.core.codec_pipeline, "FusedCodecPipeline"):  # zarr >= 3.4: uses get_sync & co
    PIPELINES.append("zarr.core.codec_pipeline.FusedCodecPipeline")


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.rsplit(".", 1)[-1])
def test_sharded_arrays_under_each_codec_pipeline(repo, pipeline, monkeypatch):
    calls: dict[str, int] = {}
    for name in ("get_sync", "set_sync", "get_ranges_sync"):
        method = getattr(vrepo.VRepoStore, name)

        def counting(self, *args, _method=method, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(vrepo.VRepoStore, name, counting)
    data = np.arange(64 * 64, dtype="u2").reshape(64, 64)
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        session = repo.writable_session()
        arr = zarr.create_array(
            session.store, name="s", shape=(64, 64), chunks=(8, 8), shards=(32, 32), dtype="u2"
        )
        arr[:] = data
        arr[5:9, 1:3] = 7  # a partial shard write: read, modify, write
        data[5:9, 1:3] = 7
        session.commit("sharded")
        reread = zarr.open_array(repo.readonly_session().store, path="s", mode="r")
        np.testing.assert_array_equal(reread[3:9, 40:47], data[3:9, 40:47])
        np.testing.assert_array_equal(reread[:], data)

        async def on_vrepo_loop():  # zarr's async API on vrepo's own loop: no deadlock
            a = await zarr.api.asynchronous.open_array(store=session.store, path="s", mode="r")
            return await a.getitem((slice(0, 10), slice(0, 10)))

        from vrepo._sync import run_sync

        np.testing.assert_array_equal(run_sync(on_vrepo_loop()), data[:10, :10])
    if pipeline.endswith("FusedCodecPipeline"):
        assert calls.get("set_sync") and calls.get("get_sync") and calls.get("get_ranges_sync")
    else:
        assert not calls
