"""The whole-chunk write path of vrepo.dask: byte for byte what zarr's own setitem stores."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from zarr.storage import MemoryStore

import vrepo
import vrepo.dask
from vrepo.dask import _chunk_writer

with warnings.catch_warnings():  # zarr warns that numcodecs codecs are not yet in the spec
    warnings.simplefilter("ignore")
    from zarr.codecs.numcodecs import Shuffle

SHAPE, CHUNKS = (6, 8), (3, 4)
WHOLE = (slice(3, 6), slice(4, 8))  # chunk (1, 1)


def _pair(**create) -> tuple[zarr.Array, zarr.Array]:
    """Two identical arrays on their own memory stores: one for zarr, one for vrepo's path."""
    create = {"shape": SHAPE, "chunks": CHUNKS, "dtype": "f4", **create}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(zarr.create_array(MemoryStore(), **create) for _ in range(2))


def _shuffle() -> Shuffle:
    """A numcodecs codec: it has no synchronous encode, so zarr's pipeline encodes with it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Shuffle(elementsize=4)


def _stored(array: zarr.Array) -> dict[str, bytes]:
    return {key: value.to_bytes() for key, value in array.store._store_dict.items()}


def _block(dtype="f4", seed=0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal((3, 4)) * 100
    return values.astype(dtype)


CASES = {
    "zstd default": ({}, _block()),
    "float64 target, float32 block (cast)": ({"dtype": "f8"}, _block()),
    "big-endian block": ({}, _block(">f4")),
    "Fortran-ordered block": ({}, np.asfortranarray(_block())),
    "int16 gzip + crc32c": (
        {"dtype": "i2", "compressors": [zc.GzipCodec(level=3), zc.Crc32cCodec()]},
        _block("i2"),
    ),
    "uint8 blosc, transposed": (
        {
            "dtype": "u1",
            "filters": [zc.TransposeCodec(order=(1, 0))],
            "compressors": [zc.BloscCodec()],
        },
        _block("u1"),
    ),
    "complex, no compression": ({"dtype": "c8", "compressors": None}, _block("c8")),
    "big-endian storage": ({"serializer": zc.BytesCodec(endian="big")}, _block()),
    "numcodecs shuffle (async encode)": (
        {"compressors": [_shuffle(), zc.ZstdCodec()]},
        _block(),
    ),
    "bool": ({"dtype": "bool"}, _block() > 0),
}


@pytest.mark.parametrize("create, block", CASES.values(), ids=CASES.keys())
def test_whole_chunk_bytes_equal_zarr(create, block):
    by_zarr, by_vrepo = _pair(**create)
    assert _chunk_writer._whole_chunk(by_vrepo, WHOLE, block) == (1, 1)  # the fast path
    by_zarr[WHOLE] = block
    _chunk_writer.write_block(by_vrepo, WHOLE, block)
    assert _stored(by_vrepo) == _stored(by_zarr)
    assert "c/1/1" in _stored(by_vrepo)
    np.testing.assert_array_equal(by_vrepo[WHOLE], block.astype(by_vrepo.dtype))


def test_codecs_encode_in_the_calling_thread_when_they_all_can():
    plain, shuffled = _pair()[0], _pair(compressors=[_shuffle()])[0]
    can_sync = _chunk_writer.SupportsSyncCodec is not None  # zarr >= 3.1.6
    assert (_chunk_writer._sync_codecs(plain._async_array.codec_pipeline) is not None) is can_sync
    assert _chunk_writer._sync_codecs(shuffled._async_array.codec_pipeline) is None


EMPTY_CASES = {
    "zeros, fill 0: deleted": ({}, np.zeros((3, 4), "f4"), False),
    "negative zeros, fill 0: kept (bit patterns differ)": ({}, np.full((3, 4), -0.0, "f4"), True),
    "NaN, fill NaN: deleted": ({"fill_value": np.nan}, np.full((3, 4), np.nan, "f4"), False),
    "fill value 7: deleted": ({"fill_value": 7}, np.full((3, 4), 7, "f4"), False),
    "zeros, write_empty_chunks: kept": (
        {"config": {"write_empty_chunks": True}},
        np.zeros((3, 4), "f4"),
        True,
    ),
}


@pytest.mark.parametrize("create, block, kept", EMPTY_CASES.values(), ids=EMPTY_CASES.keys())
def test_empty_chunks_follow_zarr(create, block, kept):
    by_zarr, by_vrepo = _pair(**create)
    for array in (by_zarr, by_vrepo):
        array[...] = 1  # every chunk stored, so a deletion shows
    by_zarr[WHOLE] = block
    _chunk_writer.write_block(by_vrepo, WHOLE, block)
    assert _stored(by_vrepo) == _stored(by_zarr)
    assert ("c/1/1" in _stored(by_vrepo)) is kept


PARTIAL_CASES = {
    "part of a chunk": (slice(3, 6), slice(4, 6)),
    "misaligned": (slice(1, 4), slice(0, 4)),
    "two chunks": (slice(0, 6), slice(4, 8)),
    "strided": (slice(0, 6, 2), slice(4, 8)),
    "counted from the end": (slice(-3, None), slice(4, 8)),
}


@pytest.mark.parametrize("region", PARTIAL_CASES.values(), ids=PARTIAL_CASES.keys())
def test_other_regions_go_through_zarr(region):
    by_zarr, by_vrepo = _pair()
    shape = np.empty(SHAPE)[region].shape
    block = np.arange(np.prod(shape), dtype="f4").reshape(shape)
    assert _chunk_writer._whole_chunk(by_vrepo, region, block) is None
    by_zarr[region] = block
    _chunk_writer.write_block(by_vrepo, region, block)
    assert _stored(by_vrepo) == _stored(by_zarr)


def test_a_whole_chunk_outside_the_array_is_left_to_zarr():
    by_zarr, by_vrepo = _pair()
    beyond = (slice(6, 9), slice(4, 8))
    assert _chunk_writer._whole_chunk(by_vrepo, beyond, _block()) is None
    outcomes = []
    for write in (by_zarr.__setitem__, lambda *a: _chunk_writer.write_block(by_vrepo, *a)):
        try:
            write(beyond, _block())
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    assert _stored(by_vrepo) == _stored(by_zarr)
    assert "c/2/1" not in _stored(by_vrepo)


def test_sharded_and_non_numeric_arrays_go_through_zarr():
    sharded, _ = _pair(shards=(6, 8))
    strings, _ = _pair(dtype=str, fill_value="")
    assert _chunk_writer._whole_chunk(sharded, WHOLE, _block()) is None
    assert _chunk_writer._whole_chunk(strings, WHOLE, _block().astype(str)) is None


def test_dask_store_keeps_the_targets_write_empty_chunks(tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    session = repo.writable_session()
    config = {"write_empty_chunks": True}
    target = zarr.create_array(
        session.store, name="t", shape=SHAPE, chunks=CHUNKS, dtype="f4", config=config
    )
    vrepo.dask.store(da.zeros(SHAPE, chunks=CHUNKS, dtype="f4"), target)
    assert session.status().chunks_written == {"/t": 4}  # all stored, though all fill value
