"""Manifests against a plain dict model, plus encoding, damage, memory and a 200k sanity run."""

from __future__ import annotations

import itertools
import os
import pickle
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrepo.errors import FormatError
from vrepo.format import ChunkRef, Manifest, VirtualRef, new_id
from vrepo.format.envelope import HEADER_SIZE, FileType, compress_bytes, encode_binary

CHUNK_IDS = [new_id() for _ in range(4)]

refs_st = st.one_of(
    st.binary(max_size=12).map(ChunkRef.inlined),
    st.builds(
        ChunkRef.external,
        st.sampled_from(CHUNK_IDS),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**40),
        # a checksum, or none (refs written in format version 1)
        st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    ),
    # a virtual ref into one of a few sources (the same file with two validators among them)
    st.builds(
        VirtualRef,
        st.sampled_from(["file:///d/a.nc", "file:///d/b.nc", "file:///e/c.h5"]),
        st.integers(0, 2**40),
        st.integers(0, 2**32 - 1),
        st.sampled_from(["mtime_ns=1;size=2", "mtime_ns=3;size=4"]),
    ),
)


def _check(m: Manifest, model: dict[tuple[int, ...], ChunkRef], shape: tuple[int, ...]) -> None:
    """Compare every observable of `m` with the dict model."""
    assert len(m) == len(model)
    expected = sorted(model)
    assert [tuple(int(x) for x in c) for c in m.coords()] == expected
    assert m.coords().shape == (len(model), len(shape))
    ext = tuple(max((c[d] for c in model), default=-1) + 1 for d in range(len(shape)))
    assert m.extent == ext
    for coord in itertools.product(*(range(s + 1) for s in shape)):  # includes outside coords
        assert m.lookup(coord) == model.get(coord)
    held = [r for r in model.values() if not isinstance(r, VirtualRef)]
    assert m.stored_bytes == sum(r.length for r in held)
    assert m.chunk_ids() == sorted({r.chunk_id for r in model.values() if r.chunk_id})
    assert m == Manifest.from_refs(
        len(shape),
        np.array(expected, dtype=np.int64).reshape(len(expected), len(shape)),
        [model[c] for c in expected],
    )
    back = Manifest.decode(m.encode(), what="manifest X")
    assert back == m
    assert pickle.loads(pickle.dumps(back)) == m
    if len(m):
        limit = 20 if all(r.is_inline for r in model.values()) else 32
        limit += 0 if m.checksums is None else 8
        limit += 0 if m.locations is None else 4
        if all(isinstance(r, VirtualRef) for r in model.values()):
            limit = 24
        assert m.nbytes_in_memory / len(m) <= limit
    assert (m.ids is None) == all(r.chunk_id is None for r in model.values())
    virtual = {(r.location, r.validator) for r in model.values() if isinstance(r, VirtualRef)}
    assert set(m.sources) == virtual and len(m.sources) == len(virtual)
    assert (m.locations is None) == (not virtual)
    assert (m.checksums is None) == all(r.checksum is None for r in model.values())


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[int, ...], list[dict]]:
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    all_coords = list(itertools.product(*(range(s) for s in shape)))
    batches = draw(
        st.lists(
            st.dictionaries(
                st.sampled_from(all_coords),
                st.one_of(st.none(), refs_st),
                max_size=len(all_coords),
            ),
            max_size=6,
        )
    )
    return shape, batches


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_manifest_matches_dict_model(scenario: tuple[tuple[int, ...], list[dict]]) -> None:
    shape, batches = scenario
    ndim = len(shape)
    m = Manifest.empty(ndim)
    model: dict[tuple[int, ...], ChunkRef] = {}
    _check(m, model, shape)
    for batch in batches:
        coords = np.array(list(batch), dtype=np.int64).reshape(len(batch), ndim)
        m = m.with_changes(coords, list(batch.values()))
        for c, r in batch.items():
            if r is None:
                model.pop(c, None)
            else:
                model[c] = r
        _check(m, model, shape)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.tuples(st.integers(0, 50), st.integers(0, 3)), refs_st, max_size=40))
def test_from_refs_any_order(model: dict[tuple[int, int], ChunkRef]) -> None:
    items = list(model.items())[::-1]
    coords = np.array([c for c, _ in items], dtype=np.int32).reshape(-1, 2)
    m = Manifest.from_refs(2, coords, [r for _, r in items])
    _check(m, model, (51, 4))
    for c, r in model.items():
        assert m.lookup(c) == r


def test_zero_dim() -> None:
    ref = ChunkRef.inlined(b"scalar")
    m = Manifest.from_refs(0, np.empty((1, 0), dtype=int), [ref])
    assert (len(m), m.extent, m.keys.tolist(), m.lookup(())) == (1, (), [0], ref)
    assert Manifest.decode(m.encode(), what="m") == m
    assert len(m.with_changes(np.empty((1, 0), dtype=int), [None])) == 0
    with pytest.raises(ValueError):
        Manifest.from_refs(0, np.empty((2, 0), dtype=int), [ref, ref])


def test_columns_and_dtypes() -> None:
    cid = new_id()
    m = Manifest.from_refs(
        2,
        np.array([[1, 0], [0, 3]]),
        [ChunkRef.external(cid, 10, 20), ChunkRef.inlined(b"ab")],
    )
    assert m.extent == (2, 4)
    assert m.keys.dtype == np.uint64 and m.keys.tolist() == [3, 4]
    assert m.ids is not None and m.ids.shape == (2, 12) and m.ids.dtype == np.uint8
    assert not m.ids[0].any()
    assert m.offsets.dtype == np.uint64 and m.lengths.dtype == np.uint32
    assert bytes(m.inline_blob) == b"ab"
    assert m.nbytes_in_memory == 2 * 32
    with pytest.raises(ValueError):
        m.keys[0] = 5  # immutable


def test_checksum_column() -> None:
    cid = new_id()
    refs = [
        ChunkRef.external(cid, 10, 0, checksum=0),
        ChunkRef.inlined(b"ab"),
        ChunkRef.external(cid, 10, 10),  # from a version-1 manifest: no checksum
        ChunkRef.external(cid, 10, 20, checksum=2**32 - 1),
    ]
    m = Manifest.from_refs(1, np.array([[0], [1], [2], [3]]), refs)
    assert m.checksums is not None and m.checksums.dtype == np.uint64
    assert [m.lookup((i,)) for i in range(4)] == refs
    assert Manifest.decode(m.encode(), what="m") == m
    assert m.nbytes_in_memory == 4 * 40
    # removing the last checksummed rows leaves the canonical form: no column
    legacy = m.with_changes(np.array([[0], [3]]), [None, None])
    assert legacy.checksums is None and legacy.lookup((2,)) == refs[2]
    assert Manifest.decode(legacy.encode(), what="m").checksums is None
    # a version-1 manifest changed by today's vrepo: old rows keep no checksum
    mixed = legacy.with_changes(np.array([[5]]), [ChunkRef.external(cid, 3, checksum=9)])
    assert mixed.lookup((2,)).checksum is None and mixed.lookup((5,)).checksum == 9
    assert Manifest.decode(mixed.encode(), what="m") == mixed


def test_with_changes_grows_and_shrinks_extent() -> None:
    m = Manifest.from_refs(2, np.array([[0, 0]]), [ChunkRef.inlined(b"a")])
    m2 = m.with_changes(np.array([[5, 7]]), [ChunkRef.inlined(b"b")])
    assert m2.extent == (6, 8) and m2.lookup((0, 0)) == ChunkRef.inlined(b"a")
    m3 = m2.with_changes(np.array([[5, 7], [9, 9]]), [None, None])  # deleting outside is a no-op
    assert m3 == m and m3.extent == (1, 1)
    assert m.with_changes(np.empty((0, 2), dtype=int), []) is m


def test_bad_input() -> None:
    r = ChunkRef.inlined(b"x")
    with pytest.raises(ValueError, match="more than once"):
        Manifest.from_refs(1, np.array([[2], [2]]), [r, r])
    with pytest.raises(ValueError, match="more than once"):
        Manifest.empty(1).with_changes(np.array([[2], [2]]), [r, None])
    with pytest.raises(ValueError, match="shape"):
        Manifest.from_refs(2, np.array([[1]]), [r])
    with pytest.raises(ValueError, match="between 0"):
        Manifest.from_refs(1, np.array([[-1]]), [r])
    with pytest.raises(ValueError, match="integers"):
        Manifest.from_refs(1, np.array([[1.5]]), [r])
    with pytest.raises(ValueError, match="2 chunk coordinates but 1"):
        Manifest.from_refs(1, np.array([[1], [2]]), [r])
    with pytest.raises(ValueError, match="2\\*\\*63"):
        Manifest.from_refs(3, np.array([[2**32 - 1] * 3]), [r])
    with pytest.raises(ValueError):
        Manifest.empty(2).lookup((1,))


def test_lookup_outside() -> None:
    m = Manifest.from_refs(2, np.array([[1, 1]]), [ChunkRef.inlined(b"a")])
    assert m.lookup((-1, 0)) is None
    assert m.lookup((2, 0)) is None
    assert m.lookup((0, 2)) is None
    assert m.lookup((1, 1)) == ChunkRef.inlined(b"a")


# --- encoding and damage ---------------------------------------------------------------


def _sample() -> Manifest:
    coords = np.array([[i, j] for i in range(5) for j in range(3)])
    refs = [
        ChunkRef.inlined(bytes([k]) * k) if k % 2 else ChunkRef.external(new_id(), 100 + k, k)
        for k in range(len(coords))
    ]
    return Manifest.from_refs(2, coords, refs)


def test_encode_decode_zero_copy() -> None:
    m = _sample()
    back = Manifest.decode(m.encode(), what="manifest X")
    assert back == m
    assert not back.offsets.flags.owndata  # a view of the decompressed file


def test_corrupt_manifest() -> None:
    data = bytearray(_sample().encode())
    data[HEADER_SIZE + 3] ^= 0x04
    with pytest.raises(FormatError, match=r"manifest 1A2B.*checksum"):
        Manifest.decode(bytes(data), what="manifest 1A2B")
    with pytest.raises(FormatError):
        Manifest.decode(bytes(data[:30]), what="manifest 1A2B")


def test_manifest_wrong_type() -> None:
    with pytest.raises(FormatError, match="not a manifest"):
        Manifest.decode(encode_binary(FileType.SNAPSHOT, b"x"), what="manifest X")


def test_inconsistent_payload() -> None:
    import msgspec

    def payload(coords=(0, 2), ids=b"", **kw: object) -> bytes:
        columns = np.array(coords, "<u4").tobytes() + ids
        columns += np.array([0, 1], "<u8").tobytes() + np.array([1, 1], "<u4").tobytes()
        body: dict[str, object] = {
            "ndim": 1,
            "count": 2,
            "extent": [3],
            "has_ids": bool(ids),
            "columns": compress_bytes(columns),
            "inline_blob": b"ab",
        }
        body.update(kw)
        return encode_binary(FileType.MANIFEST, msgspec.msgpack.encode(body), compress=False)

    good = Manifest.decode(payload(), what="m")
    assert good.lookup((2,)) == ChunkRef.inlined(b"b")
    bad = [
        {"count": 3},
        {"extent": [5]},
        {"coords": (2, 0)},
        {"ids": b"x" * 5},
        {"has_ids": True},
        {"columns": b"not zstd"},
        {"inline_blob": b"a"},
        {"ndim": "one"},
        {"has_checksums": True},  # no checksum columns
    ]
    for kw in bad:
        with pytest.raises(FormatError, match="manifest X"):
            Manifest.decode(payload(**kw), what="manifest X")


def test_checksum_columns_are_validated() -> None:
    import msgspec

    def payload(missing: int) -> bytes:
        columns = np.array([0, 2], "<u4").tobytes() + bytes(12) + new_id_bytes()
        columns += np.array([0, 0], "<u8").tobytes() + np.array([1, 5], "<u4").tobytes()
        columns += np.array([0, 77], "<u4").tobytes() + bytes([missing])
        body = {
            "ndim": 1,
            "count": 2,
            "extent": [3],
            "has_ids": True,
            "columns": compress_bytes(columns),
            "inline_blob": b"a",
            "has_checksums": True,
        }
        return encode_binary(FileType.MANIFEST, msgspec.msgpack.encode(body), compress=False)

    good = Manifest.decode(payload(0b01), what="m")  # row 0 is inline: no checksum
    assert good.lookup((0,)) == ChunkRef.inlined(b"a") and good.lookup((2,)).checksum == 77
    assert Manifest.decode(payload(0b11), what="m").checksums is None  # canonical
    with pytest.raises(FormatError, match="inline ref has a checksum"):
        Manifest.decode(payload(0b10), what="m")


def new_id_bytes() -> bytes:
    from vrepo.format import id_to_bytes

    return id_to_bytes(new_id())


# --- scale sanity check (not a timed assertion) -----------------------------------------


def test_200k_inline_refs_sanity() -> None:
    n = 200_000
    refs = [ChunkRef.inlined(os.urandom(150)) for _ in range(n)]
    coords = np.arange(n).reshape(n, 1)
    t0 = time.perf_counter()
    m = Manifest.from_refs(1, coords, refs)
    data = m.encode()
    back = Manifest.decode(data, what="manifest X")
    elapsed = time.perf_counter() - t0
    print(f"\n200k inline refs: from_refs + encode + decode in {elapsed:.3f} s")
    assert back == m and len(back) == n
    assert m.nbytes_in_memory / n <= 20
    assert back.lookup((123_456,)) == refs[123_456]
    m2 = back.with_changes(np.array([[5], [n + 10]]), [None, ChunkRef.external(new_id(), 9)])
    assert len(m2) == n and m2.lookup((5,)) is None and m2.lookup((6,)) == refs[6]
    assert m2.nbytes_in_memory / n <= 32
