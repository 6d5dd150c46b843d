"""Verified chunks: every stored chunk read is checked against the length and CRC-32C its
manifest records; a damaged chunk is a `FormatError` naming the array and chunk, never wrong
data, unless checksums are turned off (lengths are checked even then)."""

from __future__ import annotations

import pickle
import re

import dask
import dask.array as da
import google_crc32c
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

import vrepo
import vrepo.dask
from vrepo._sync import run_sync

SHAPE, CHUNKS = (64, 64), (32, 32)  # float32, uncompressed: 4 KiB chunk objects
VALUES = np.arange(64 * 64, dtype="float32").reshape(SHAPE)
CHUNK_BYTES = 32 * 32 * 4


def _create_temp(store) -> zarr.Array:
    """/temp: uncompressed float32 chunks, so a stored chunk's bytes are its values."""
    return zarr.create_array(
        store,
        name="temp",
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="float32",
        compressors=None,
        fill_value=0.0,
    )


@pytest.fixture(params=["local", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path) -> vrepo.Repository:
    """A repository holding /temp (4 chunk objects) and an opaque object, committed."""
    storage = str(tmp_path / "r.vrepo") if request.param == "local" else vrepo.memory_storage()
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session("main")
    array = _create_temp(session.store)
    array[:] = VALUES
    blob = default_buffer_prototype().buffer.from_bytes(bytes(range(256)) * 4)
    run_sync(session.store.set("extra/blob", blob))
    session.commit("data")
    return repo


def _chunk_key(repo: vrepo.Repository, coords: tuple[int, ...]) -> str:
    session = repo.readonly_session("main")
    ref = run_sync(run_sync(session._ensure_content()).chunk_ref("/temp", coords))
    return f"chunks/{ref.chunk_id}"


def _object_key(repo: vrepo.Repository, key: str) -> str:
    ref = run_sync(repo.readonly_session("main")._ensure_content()).object_ref(key)
    return f"chunks/{ref.chunk_id}"


def _damage(repo: vrepo.Repository, key: str, how: str) -> None:
    """Damage a stored object in place: flip one bit, cut the end off, or append a byte."""
    storage = repo.storage
    data = bytearray(run_sync(storage.get(key)))
    if how == "flip":
        data[len(data) // 2 + 1] ^= 0x08
    elif how == "truncate":
        del data[-100:]
    else:
        data += b"\x00"
    run_sync(storage.put(key, bytes(data)))


def _read(repo: vrepo.Repository, **store_options: bool) -> np.ndarray:
    session = repo.readonly_session("main")
    store = vrepo.VRepoStore(session, **store_options) if store_options else session.store
    return zarr.open_array(store, path="temp", mode="r")[...]


def _names_the_chunk(error: pytest.ExceptionInfo, coords: str = "(1, 0)") -> None:
    text = str(error.value)
    assert f"chunk {coords} of array /temp" in text, text
    assert "restore it" in text and "write that chunk again" in text
    assert "reshape" not in text


@pytest.mark.parametrize("how", ["flip", "truncate", "append"])
def test_a_damaged_chunk_is_a_format_error_naming_array_and_chunk(repo, how: str) -> None:
    _damage(repo, _chunk_key(repo, (1, 0)), how)
    with pytest.raises(vrepo.FormatError) as e:
        _read(repo)
    _names_the_chunk(e)
    expected = "CRC-32C" if how == "flip" else "storage returned"
    assert expected in str(e.value)
    array = zarr.open_array(repo.readonly_session("main").store, path="temp", mode="r")
    np.testing.assert_array_equal(array[:32, :], VALUES[:32, :])  # other chunks read fine


def test_turning_checksums_off_returns_the_damaged_bytes(repo) -> None:
    _damage(repo, _chunk_key(repo, (1, 0)), "flip")
    for unverified in (
        lambda: _read(repo, verify_checksums=False),
        lambda: _with_setting(False, lambda: _read(repo)),
    ):
        got = unverified()
        differs = got != VALUES
        assert differs.sum() == 1 and differs[32:, :32].sum() == 1  # the flipped value
    with pytest.raises(vrepo.FormatError, match="CRC-32C"):
        _with_setting(True, lambda: _read(repo))


@pytest.mark.parametrize("how", ["truncate", "append"])
def test_a_wrong_length_is_refused_even_without_checksums(repo, how: str) -> None:
    _damage(repo, _chunk_key(repo, (0, 1)), how)
    with pytest.raises(vrepo.FormatError) as e:
        _read(repo, verify_checksums=False)
    _names_the_chunk(e, "(0, 1)")
    assert "storage returned" in str(e.value)


def _with_setting(value: bool, read):  # type: ignore[no-untyped-def]
    with vrepo.config.set({"read.verify-checksums": value}):
        return read()


def test_the_setting_is_read_when_the_store_is_made(repo) -> None:
    session = repo.readonly_session("main")
    assert session.store.verify_checksums is True
    with vrepo.config.set({"read.verify-checksums": False}):
        unverified = repo.readonly_session("main")
        assert unverified.store.verify_checksums is False
        assert unverified.store.with_read_only(True).verify_checksums is False
    assert unverified.store.verify_checksums is False  # kept, also when pickled
    assert pickle.loads(pickle.dumps(unverified.store)).verify_checksums is False


def _get(store, key: str, byte_range=None) -> bytes:  # type: ignore[no-untyped-def]
    buffer = run_sync(store.get(key, default_buffer_prototype(), byte_range))
    return buffer.to_bytes()


def test_partial_reads_check_the_length_only(repo) -> None:
    _damage(repo, _chunk_key(repo, (1, 1)), "flip")
    store = repo.readonly_session("main").store
    assert len(_get(store, "temp/c/1/1", RangeByteRequest(0, 100))) == 100
    assert len(_get(store, "temp/c/1/1", SuffixByteRequest(10))) == 10
    for whole in (None, RangeByteRequest(0, CHUNK_BYTES), OffsetByteRequest(0)):
        with pytest.raises(vrepo.FormatError, match=re.escape("chunk (1, 1) of array /temp")):
            _get(store, "temp/c/1/1", whole)
    _damage(repo, _chunk_key(repo, (0, 0)), "truncate")
    store = repo.readonly_session("main").store
    assert len(_get(store, "temp/c/0/0", RangeByteRequest(0, 100))) == 100  # still there
    with pytest.raises(vrepo.FormatError, match=r"returned 96 bytes for bytes \[3900, 4096\)"):
        _get(store, "temp/c/0/0", RangeByteRequest(3900, 5000))  # clipped to the chunk first


def test_range_reads_of_many_values_are_checked(repo) -> None:
    _damage(repo, _chunk_key(repo, (0, 0)), "truncate")
    store = repo.readonly_session("main").store
    prototype = default_buffer_prototype()
    wanted = [("temp/c/0/0", RangeByteRequest(4000, 4096)), ("temp/c/0/1", None)]
    with pytest.raises(vrepo.FormatError, match=re.escape("chunk (0, 0) of array /temp")):
        run_sync(store.get_partial_values(prototype, wanted))

    async def ranges() -> None:
        async for _ in store.get_ranges("temp/c/0/0", [SuffixByteRequest(8)], prototype=prototype):
            pass

    with pytest.raises(BaseExceptionGroup) as group:
        run_sync(ranges())
    assert group.group_contains(vrepo.FormatError)


def test_opaque_objects_are_verified_too(repo) -> None:
    _damage(repo, _object_key(repo, "extra/blob"), "flip")
    store = repo.readonly_session("main").store
    with pytest.raises(vrepo.FormatError, match="object 'extra/blob' is corrupt"):
        _get(store, "extra/blob")
    assert (
        len(
            _get(
                vrepo.VRepoStore(repo.readonly_session("main"), verify_checksums=False),
                "extra/blob",
            )
        )
        == 1024
    )


def test_sharded_arrays_check_what_they_can(tmp_path) -> None:
    """zarr reads shards by byte ranges, so a cut-off shard is caught (its index is read as
    a suffix of the recorded length); a flipped bit inside would only be found by a read of
    the whole shard (or by a crc32c codec in the array's own codecs)."""
    repo = vrepo.Repository.create(str(tmp_path / "s.vrepo"))
    session = repo.writable_session("main")
    array = zarr.create_array(
        session.store,
        name="s",
        shape=(4096,),
        chunks=(256,),
        shards=(2048,),
        dtype="int32",
        compressors=None,
    )
    array[:] = np.arange(4096)
    session.commit("sharded")
    content = run_sync(repo.readonly_session()._ensure_content())
    ref = run_sync(content.chunk_ref("/s", (1,)))
    _damage(repo, f"chunks/{ref.chunk_id}", "truncate")
    sharded = zarr.open_array(repo.readonly_session().store, path="s", mode="r")
    np.testing.assert_array_equal(sharded[:2048], np.arange(2048))
    with pytest.raises(vrepo.FormatError, match=re.escape("chunk (1,) of array /s")):
        sharded[2048:]


def test_xarray_reads_are_verified(tmp_path) -> None:
    path = tmp_path / "x.vrepo"
    repo = vrepo.Repository.create(str(path))
    session = repo.writable_session("main")
    ds = xr.Dataset({"temp": (("y", "x"), VALUES)})
    ds.to_zarr(
        session.store,
        mode="w",
        consolidated=False,
        encoding={"temp": {"chunks": CHUNKS, "compressors": None}},
    )
    session.commit("dataset")
    ref = run_sync(run_sync(repo.readonly_session()._ensure_content()).chunk_ref("/temp", (1, 1)))
    _damage(repo, f"chunks/{ref.chunk_id}", "flip")
    with pytest.raises(vrepo.FormatError, match=re.escape("chunk (1, 1) of array /temp")):
        xr.open_dataset(path, engine="vrepo")["temp"].load()
    with vrepo.config.set({"read.verify-checksums": False}):
        damaged = xr.open_dataset(path, engine="vrepo")["temp"].load()
    assert int((damaged.values != VALUES).sum()) == 1


# --- writes record the checksum ----------------------------------------------------------


def _refs(repo: vrepo.Repository, path: str = "/temp") -> list[vrepo.format.ChunkRef]:
    content = run_sync(repo.readonly_session("main")._ensure_content())
    coords = run_sync(content.chunk_coords(path))
    return [run_sync(content.chunk_ref(path, tuple(map(int, c)))) for c in coords]


def _assert_checksums_match_storage(repo: vrepo.Repository, path: str = "/temp") -> None:
    refs = _refs(repo, path)
    assert refs
    for ref in refs:
        data = run_sync(repo.storage.get(f"chunks/{ref.chunk_id}"))
        assert ref.checksum == google_crc32c.value(data) and ref.length == len(data)


def test_store_writes_record_each_chunk_checksum(repo) -> None:
    _assert_checksums_match_storage(repo)


def test_inline_chunks_carry_no_checksum(tmp_path) -> None:
    repo = vrepo.Repository.create(vrepo.memory_storage())
    session = repo.writable_session("main")
    small = zarr.create_array(session.store, name="small", shape=(4,), chunks=(2,), dtype="i1")
    small[:] = [1, 2, 3, 4]
    session.commit("inline")
    refs = _refs(repo, "/small")
    assert refs and all(r.is_inline and r.checksum is None for r in refs)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_dask_writes_record_checksums(tmp_path, scheduler: str) -> None:
    """Also through the whole-chunk writer (vrepo.dask._chunk_writer), which stores through
    the zarr store's ``set``."""
    repo = vrepo.Repository.create(str(tmp_path / "d.vrepo"))
    session = repo.writable_session("main")
    target = _create_temp(session.store)
    with dask.config.set(scheduler=scheduler):
        vrepo.dask.store(da.from_array(VALUES, chunks=CHUNKS), target)
    session.commit("dask")
    _assert_checksums_match_storage(repo)
    np.testing.assert_array_equal(_read(repo), VALUES)


def test_checksums_travel_in_pickled_forks_and_merges(tmp_path) -> None:
    repo = vrepo.Repository.create(str(tmp_path / "f.vrepo"))
    session = repo.writable_session("main")
    _create_temp(session.store)
    forks = []
    for row in (0, 1):
        fork = pickle.loads(pickle.dumps(session.fork()))
        part = zarr.open_array(fork.store, path="temp", mode="r+")
        part[row * 32 : (row + 1) * 32] = VALUES[row * 32 : (row + 1) * 32]
        forks.append(pickle.loads(pickle.dumps(fork)))
    changes = [f._change_set().chunks["/temp"] for f in forks]
    assert all(ref.checksum is not None for c in changes for ref in c.values())
    session.merge(*forks)
    session.commit("forks")
    _assert_checksums_match_storage(repo)
    _damage(repo, _chunk_key(repo, (1, 1)), "flip")
    with pytest.raises(vrepo.FormatError, match=re.escape("chunk (1, 1) of array /temp")):
        _read(repo)
