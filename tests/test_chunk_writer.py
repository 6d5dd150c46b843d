"""The whole-chunk write path of vrepo.dask: byte for byte what zarr's own setitem stores."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
import sys
import types
import warnings
from typing import Any

import dask.array as da
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from zarr.core.buffer import Buffer
from zarr.storage import MemoryStore

import vrepo
import vrepo.dask
from vrepo.dask import _chunk_writer, _zarr_internals

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
    """A numcodecs codec: it encodes synchronously on zarr 3.4.2, not before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Shuffle(elementsize=4)


@dataclasses.dataclass(frozen=True)
class AsyncOnlyGzip(zc.GzipCodec):
    """A codec that can only encode on zarr's event loop (no ``_encode_sync``), on every zarr."""

    _sync_capable = False  # how zarr 3.4.2 asks
    _encode_sync = None  # how zarr 3.1.6 asks: a protocol's method set to None is not there
    _decode_sync = None

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        compressed = gzip.compress(chunk_bytes.to_bytes(), compresslevel=1, mtime=0)
        return chunk_spec.prototype.buffer.from_bytes(compressed)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        return chunk_spec.prototype.buffer.from_bytes(gzip.decompress(chunk_bytes.to_bytes()))


@pytest.fixture(autouse=True)
def _gzip_clock(monkeypatch):
    """gzip stamps the second it compresses in; two writes a second apart differ only there."""
    monkeypatch.setattr(gzip, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.0))


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
    "numcodecs shuffle": ({"compressors": [_shuffle(), zc.ZstdCodec()]}, _block()),
    "async-only codec": ({"compressors": [AsyncOnlyGzip()]}, _block()),
    "bool": ({"dtype": "bool"}, _block() > 0),
}


@pytest.mark.parametrize("create, block", CASES.values(), ids=CASES.keys())
def test_whole_chunk_bytes_equal_zarr(create, block):
    by_zarr, by_vrepo = _pair(**create)
    if _chunk_writer.fast_path_available():  # on every known zarr: test_known_zarrs_...
        assert _chunk_writer._whole_chunk(by_vrepo, WHOLE, block) == (1, 1)
    by_zarr[WHOLE] = block
    _chunk_writer.write_block(by_vrepo, WHOLE, block)
    assert _stored(by_vrepo) == _stored(by_zarr)
    assert "c/1/1" in _stored(by_vrepo)
    np.testing.assert_array_equal(by_vrepo[WHOLE], block.astype(by_vrepo.dtype))


def test_codecs_encode_in_the_calling_thread_when_they_all_can():
    plain, async_only = _pair()[0], _pair(compressors=[AsyncOnlyGzip()])[0]
    can_sync = _zarr_internals.codec_supports_sync is not None  # zarr >= 3.1.6
    assert (_chunk_writer._sync_encoder(plain._async_array.codec_pipeline) is not None) is can_sync
    assert _chunk_writer._sync_encoder(async_only._async_array.codec_pipeline) is None


# How whole chunks are encoded on each zarr CI runs. A zarr that loses the fast path must fail
# here, not just get slower; a newer zarr is added once its path is known.
KNOWN_ZARRS = {
    "3.1.3": "by zarr's codec pipeline",  # no SupportsSyncCodec yet
    "3.1.6": "in the calling thread",
    "3.4.2": "in the calling thread",
}


def test_known_zarrs_take_the_fast_path(monkeypatch):
    reason = _chunk_writer.fast_path_reason()
    expected = KNOWN_ZARRS.get(zarr.__version__)
    if expected is not None:
        assert _chunk_writer.fast_path_available(), reason
        assert reason.endswith(f"encoded {expected}"), reason
        assert _zarr_internals.array_from_metadata is not None  # vrepo.dask opens w/o a read
    written = []
    write_chunk = _chunk_writer._write_chunk
    monkeypatch.setattr(
        _chunk_writer, "_write_chunk", lambda *args: written.append(write_chunk(*args))
    )
    by_zarr, by_vrepo = _pair()  # on an unknown zarr, either path: zarr's bytes
    by_zarr[WHOLE] = _block()
    _chunk_writer.write_block(by_vrepo, WHOLE, _block())
    assert _stored(by_vrepo) == _stored(by_zarr), reason
    assert bool(written) is _chunk_writer.fast_path_available(), reason


@pytest.fixture
def redetect():
    """The fast path detected afresh, before the test's monkeypatches and after their undoing."""
    _chunk_writer._fast_path_problem.cache_clear()
    yield
    _chunk_writer._fast_path_problem.cache_clear()


def _never(*args):
    raise AssertionError("the fast path was taken")


MISSING = {
    "chunk grid classes": ("REGULAR_GRIDS", ()),
    "codec pipeline classes": ("PIPELINES", ()),
    "zarr.core.sync.sync": ("sync", None),
    "ArraySpec": ("ArraySpec", None),
    "the empty-chunk rule": ("chunk_is_empty", None),
}


@pytest.mark.parametrize("name, value", MISSING.values(), ids=MISSING.keys())
def test_without_an_internal_every_block_goes_through_zarr(monkeypatch, redetect, name, value):
    monkeypatch.setattr(_zarr_internals, name, value)
    assert not _chunk_writer.fast_path_available()
    assert "every block goes through Array.__setitem__, because zarr has no" in (
        _chunk_writer.fast_path_reason()
    )
    monkeypatch.setattr(_chunk_writer, "_write_chunk", _never)
    for create, block in CASES.values():
        by_zarr, by_vrepo = _pair(**create)
        by_zarr[WHOLE] = block
        _chunk_writer.write_block(by_vrepo, WHOLE, block)
        assert _stored(by_vrepo) == _stored(by_zarr)


def _spec_with_a_new_parameter(shape, dtype, fill_value, config, prototype, *, order):
    raise AssertionError("unreachable: the call lacks order")


CHANGED = {
    "ArraySpec takes a new parameter": (
        "ArraySpec",
        _spec_with_a_new_parameter,
        "self-check raised TypeError",
    ),
    "empty chunks are no longer deleted": (
        "chunk_is_empty",
        lambda chunk, spec: False,
        "self-check stored other bytes than zarr",
    ),
}


@pytest.mark.parametrize("name, value, reason", CHANGED.values(), ids=CHANGED.keys())
def test_an_internal_that_changed_shape_fails_the_self_check(
    monkeypatch, redetect, name, value, reason
):
    monkeypatch.setattr(_zarr_internals, name, value)
    assert not _chunk_writer.fast_path_available()
    assert reason in _chunk_writer.fast_path_reason()
    monkeypatch.setattr(_chunk_writer, "_write_chunk", _never)
    by_zarr, by_vrepo = _pair()
    by_zarr[WHOLE] = _block()
    _chunk_writer.write_block(by_vrepo, WHOLE, _block())
    assert _stored(by_vrepo) == _stored(by_zarr)


@pytest.mark.skipif(
    _zarr_internals.FusedCodecPipeline is None,
    reason="this zarr release has no FusedCodecPipeline (zarr < 3.2)",
)
@pytest.mark.parametrize("create, block", CASES.values(), ids=CASES.keys())
def test_fused_pipeline_bytes_equal_zarr(create, block):
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"}):
        by_zarr, by_vrepo = _pair(**create)
    pipeline = by_vrepo._async_array.codec_pipeline
    assert isinstance(pipeline, _zarr_internals.FusedCodecPipeline)
    assert _chunk_writer._whole_chunk(by_vrepo, WHOLE, block) == (1, 1)
    by_zarr[WHOLE] = block
    _chunk_writer.write_block(by_vrepo, WHOLE, block)
    assert _stored(by_vrepo) == _stored(by_zarr)


def test_unknown_codec_pipelines_go_through_zarr():
    by_zarr, by_vrepo = _pair()
    pipeline = by_vrepo._async_array.codec_pipeline

    class Unknown(type(pipeline)):
        """A pipeline vrepo cannot know: its write may differ from its parent's."""

    fields = {f.name: getattr(pipeline, f.name) for f in dataclasses.fields(pipeline) if f.init}
    object.__setattr__(by_vrepo._async_array, "codec_pipeline", Unknown(**fields))
    assert _chunk_writer._whole_chunk(by_vrepo, WHOLE, _block()) is None
    by_zarr[WHOLE] = _block()
    _chunk_writer.write_block(by_vrepo, WHOLE, _block())
    assert _stored(by_vrepo) == _stored(by_zarr)


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


# What a fresh interpreter fails to import for vrepo.dask (zarr itself still imports it all).
BLOCKED = {
    "zarr.core.chunk_grids gone": ("zarr.core.chunk_grids",),
    "every zarr internal gone": ("zarr.core", "zarr.abc"),
}
BLOCK_IMPORTS = """
real_import = builtins.__import__

def importing(name, globals=None, locals=None, fromlist=(), level=0):
    if (globals or {{}}).get("__name__", "").startswith("vrepo.dask") and name.startswith({}):
        raise ImportError(f"{{name}} is blocked")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = importing
"""

WRITE_WITH_VREPO_DASK = """
import builtins, sys
import zarr
{block}
import dask, dask.array as da, numpy as np, vrepo, vrepo.dask
from vrepo.dask import _chunk_writer, _zarr_internals

repo = vrepo.Repository.create(sys.argv[1])
session = repo.writable_session()
target = zarr.create_array(session.store, name="t", shape=(6, 8), chunks=(3, 4), dtype="f4")
data = np.arange(48, dtype="f4").reshape(6, 8)
with dask.config.set(scheduler="threads"):
    vrepo.dask.store(da.from_array(data, chunks=(3, 4)), target)
session.commit("written")
np.testing.assert_array_equal(zarr.open_array(repo.readonly_session().store, path="t")[:], data)
print(_chunk_writer.fast_path_available(), _zarr_internals.array_from_metadata is not None)
"""


@pytest.mark.parametrize("blocked", BLOCKED.values(), ids=BLOCKED.keys())
def test_vrepo_dask_imports_and_writes_without_zarr_internals(tmp_path, blocked):
    script = WRITE_WITH_VREPO_DASK.format(block=BLOCK_IMPORTS.format(blocked))
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "r.vrepo")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    if blocked == ("zarr.core.chunk_grids",):  # what newer zarr uses instead still serves
        fast = _zarr_internals.RegularChunkGridMetadata is not None
        assert run.stdout.split() == [str(fast), "True"]
    else:
        assert run.stdout.split() == ["False", "False"]
