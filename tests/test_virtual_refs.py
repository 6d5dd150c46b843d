"""Virtual chunk refs: chunks of NetCDF4/HDF5 files referenced in place, read through zarr and
xarray, checked against their containers and validators."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.core.buffer import default_buffer_prototype

import vrepo
from conftest import A1B_SAMPLE
from virtual_sources import chunk_table, url
from vrepo._sync import run_sync
from vrepo.format import ChunkRef, Manifest, VirtualRef

ARRAY = "air_temperature"


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A folder holding a copy of iris-sample-data's A1B file (tests change and delete it)."""
    folder = tmp_path / "sources"
    folder.mkdir()
    shutil.copy(A1B_SAMPLE, folder / A1B_SAMPLE.name)
    return folder


def new_repo(tmp_path: Path, *containers: Path, split: int = 32768) -> vrepo.Repository:
    repo = vrepo.Repository.create(
        tmp_path / "repo.vrepo", vrepo.RepoConfig(manifest_split_refs=split)
    )
    for folder in containers:
        repo.add_virtual_chunk_container(url(folder) + "/")
    return repo


def define_like(session: vrepo.Session, ds: xr.Dataset, virtual: dict[str, tuple]) -> None:
    """The dataset's arrays in ``session`` (small ones stored), the ``virtual`` ones with the
    given chunk shape, uncompressed, and no chunk written."""
    encoding = {v: {"chunks": ds[v].shape or None} for v in ds.variables if v not in virtual}
    encoding.update({v: {"chunks": chunks, "compressors": None} for v, chunks in virtual.items()})
    lazy = ds.assign({v: ds[v].chunk() for v in virtual})  # only dask arrays wait
    lazy.to_zarr(session.store, compute=False, encoding=encoding, zarr_format=3, consolidated=False)


def reference_file(session: vrepo.Session, path: Path, name: str, **options: object) -> int:
    coords, offsets, lengths = chunk_table(path, name)
    return session.set_virtual_refs(
        name, coords, [url(path)] * len(coords), offsets, lengths, **options
    )


def defined_a1b(
    tmp_path: Path, sources: Path, **repo_options: object
) -> tuple[vrepo.Repository, vrepo.Session, np.ndarray]:
    """A repository allowing ``sources``, and a session in which A1B's arrays are defined
    (its big one without chunks); with the big array's values."""
    repo = new_repo(tmp_path, sources, **repo_options)
    session = repo.writable_session()
    with xr.open_dataset(sources / A1B_SAMPLE.name) as ds:
        define_like(session, ds, {ARRAY: (1, 37, 49)})
        return repo, session, ds[ARRAY].values


def virtual_a1b(tmp_path: Path, sources: Path, **repo_options: object) -> vrepo.Repository:
    repo, session, _ = defined_a1b(tmp_path, sources, **repo_options)
    assert reference_file(session, sources / A1B_SAMPLE.name, ARRAY) == 240
    session.commit("A1B, referenced in place")
    return repo


def ref_at(session: vrepo.Session, coords: tuple[int, ...]) -> ChunkRef | VirtualRef | None:
    content = run_sync(session._ensure_content())
    return run_sync(content.chunk_ref(f"/{ARRAY}", coords))


# --- reading back --------------------------------------------------------------------------


@pytest.mark.parametrize("split", [32768, 16])  # one manifest piece, or 15
def test_a1b_referenced_in_place_reads_back_equal(tmp_path, sources, split):
    repo = virtual_a1b(tmp_path, sources, split=split)
    session = repo.readonly_session("main")
    assert isinstance(ref_at(session, (3, 0, 0)), VirtualRef)
    assert not any((tmp_path / "repo.vrepo" / "chunks").glob("*")) or all(
        p.stat().st_size < 10_000 for p in (tmp_path / "repo.vrepo" / "chunks").iterdir()
    )  # no chunk of the big array was copied
    with xr.open_dataset(sources / A1B_SAMPLE.name) as expected:
        array = zarr.open_array(session.store, path=ARRAY, mode="r")
        np.testing.assert_array_equal(array[:], expected[ARRAY].values)
        with xr.open_dataset(tmp_path / "repo.vrepo", engine="vrepo") as back:
            xr.testing.assert_identical(back.load(), expected.load())


def test_hdf5_contiguous_and_chunked_datasets(tmp_path):
    folder = tmp_path / "h5"
    folder.mkdir()
    path = folder / "synthetic.h5"
    rng = np.random.default_rng(1)
    grid = rng.standard_normal((6, 10)).astype("<f8")
    series = np.arange(1000, dtype="<i4").reshape(20, 50)
    with h5py.File(path, "w") as f:
        f.create_dataset("grid", data=grid)  # contiguous
        f.create_dataset("series", data=series, chunks=(4, 50))
    repo = new_repo(tmp_path, folder)
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    root.create_array("grid", shape=grid.shape, chunks=grid.shape, dtype="<f8", compressors=None)
    root.create_array("series", shape=(20, 50), chunks=(4, 50), dtype="<i4", compressors=None)
    for name in ("grid", "series"):
        reference_file(session, path, name)
    session.commit("h5")
    read = zarr.open_group(repo.readonly_session("main").store, mode="r")
    np.testing.assert_array_equal(read["grid"][:], grid)
    np.testing.assert_array_equal(read["series"][:], series)
    np.testing.assert_array_equal(read["series"][5:13, 7], series[5:13, 7])


def test_a_virtual_chunk_overwritten_with_data_becomes_stored(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    session = repo.writable_session()
    array = zarr.open_array(session.store, path=ARRAY)
    array[2] = np.full((37, 49), 7.5, np.float32)
    session.commit("one step overwritten")
    after = repo.readonly_session("main")
    assert isinstance(ref_at(after, (2, 0, 0)), ChunkRef)
    assert isinstance(ref_at(after, (3, 0, 0)), VirtualRef)
    with xr.open_dataset(sources / A1B_SAMPLE.name) as ds:
        expected = ds[ARRAY].values.copy()
    expected[2] = 7.5
    np.testing.assert_array_equal(zarr.open_array(after.store, path=ARRAY, mode="r")[:], expected)


def test_fork_sessions_carry_virtual_refs_through_a_commit(tmp_path, sources):
    source = sources / A1B_SAMPLE.name
    repo, session, expected = defined_a1b(tmp_path, sources, split=16)
    coords, offsets, lengths = chunk_table(source, ARRAY)
    forks = []
    for part in np.array_split(np.arange(len(coords)), 3):  # each fork a third of the chunks
        fork = pickle.loads(pickle.dumps(session.fork()))
        fork.set_virtual_refs(
            ARRAY, coords[part], [url(source)] * len(part), offsets[part], lengths[part]
        )
        forks.append(pickle.loads(pickle.dumps(fork)))
    session.merge(*forks)
    session.commit("three forks")
    read = repo.readonly_session("main")
    np.testing.assert_array_equal(zarr.open_array(read.store, path=ARRAY, mode="r")[:], expected)


def test_locations_may_come_dictionary_encoded(tmp_path, sources):
    source = sources / A1B_SAMPLE.name
    repo, session, expected = defined_a1b(tmp_path, sources)
    coords, offsets, lengths = chunk_table(source, ARRAY)
    index = np.zeros(len(coords), np.uint32)
    session.set_virtual_refs(ARRAY, coords, [url(source)], offsets, lengths, location_index=index)
    session.commit("dictionary-encoded")
    read = repo.readonly_session("main")
    np.testing.assert_array_equal(zarr.open_array(read.store, path=ARRAY, mode="r")[:], expected)


# --- what goes wrong -----------------------------------------------------------------------


def test_a_changed_source_gives_the_validators_error(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    source = sources / A1B_SAMPLE.name
    with open(source, "r+b") as f:  # same size, other bytes, newer mtime
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    array = zarr.open_array(repo.readonly_session("main").store, path=ARRAY, mode="r")
    with pytest.raises(vrepo.VirtualSourceChangedError) as caught:
        array[0]
    message = str(caught.value)
    assert f"/{ARRAY}" in message and "(0, 0, 0)" in message and str(source) in message
    assert caught.value.location == url(source)


def test_a_given_validator_that_does_not_match_is_caught_on_read(tmp_path, sources):
    source = sources / A1B_SAMPLE.name
    repo, session, _ = defined_a1b(tmp_path, sources)
    reference_file(session, source, ARRAY, validators={url(source): "mtime_ns=1;size=2"})
    session.commit("stale validator")
    array = zarr.open_array(repo.readonly_session("main").store, path=ARRAY, mode="r")
    with pytest.raises(vrepo.VirtualSourceChangedError, match="mtime_ns=1;size=2"):
        array[0]


def test_a_missing_source_gives_object_not_found_naming_it(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    (sources / A1B_SAMPLE.name).unlink()
    array = zarr.open_array(repo.readonly_session("main").store, path=ARRAY, mode="r")
    with pytest.raises(vrepo.ObjectNotFoundError) as caught:
        array[0]
    assert str(sources / A1B_SAMPLE.name) in str(caught.value)


def test_a_missing_source_is_refused_when_refs_are_made(tmp_path, sources):
    repo = new_repo(tmp_path, sources)
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="u1")
    with pytest.raises(vrepo.ObjectNotFoundError, match=r"nothing\.nc"):
        session.set_virtual_refs("a", [[0]], [url(sources / "nothing.nc")], [0], [2])


def test_refs_outside_every_container_are_refused_on_write(tmp_path, sources):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(A1B_SAMPLE, other / "a.nc")
    for repo in (new_repo(tmp_path / "none"), new_repo(tmp_path / "one", sources)):
        session = repo.writable_session()
        zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="u1")
        with pytest.raises(vrepo.VirtualContainerError, match="outside every virtual chunk"):
            session.set_virtual_refs("a", [[0]], [url(other / "a.nc")], [0], [2])
        assert not session.status().chunks_written


@pytest.mark.parametrize(
    "location",
    [
        "{sources}/../elsewhere/a.nc",  # '..' would leave the container
        "{sources}",  # not a URL
        "s3://bucket/a.nc",  # a scheme not read yet
        "file://relative/a.nc",
    ],
)
def test_locations_that_could_escape_are_refused(tmp_path, sources, location):
    repo = new_repo(tmp_path, sources)
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="u1")
    given = location.format(sources=sources)
    if given.startswith("/"):
        given = "file://" + given
    if location == "{sources}":
        given = str(sources)
    with pytest.raises(vrepo.InvalidArgumentError):
        session.set_virtual_refs("a", [[0]], [given], [0], [2])


def test_refs_outside_every_container_are_refused_on_read(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    repo.save_config(vrepo.RepoConfig())  # containers removed: nothing virtual is read
    reopened = vrepo.Repository.open(tmp_path / "repo.vrepo")
    array = zarr.open_array(reopened.readonly_session("main").store, path=ARRAY, mode="r")
    with pytest.raises(vrepo.VirtualContainerError, match="it has none configured"):
        array[0]
    with pytest.raises(vrepo.VirtualContainerError):
        xr.open_dataset(tmp_path / "repo.vrepo", engine="vrepo")[ARRAY].load()


def test_container_prefixes_are_normalized_and_other_schemes_wait(tmp_path):
    container = vrepo.VirtualChunkContainer("file:///data//archive/./v1")
    assert container.url_prefix == "file:///data/archive/v1/"
    assert container.holds("file:///data/archive/v1/a.nc")
    assert not container.holds("file:///data/archive/v10/a.nc")
    for bad in ("file:///data/../etc/", "https://example.org/data/", "/data/"):
        with pytest.raises(vrepo.InvalidArgumentError):
            vrepo.VirtualChunkContainer(bad)
    with pytest.raises(vrepo.InvalidArgumentError):
        vrepo.RepoConfig(virtual_chunk_containers=["file:///data/"])


def test_chunks_outside_the_grid_and_bad_columns_are_refused(tmp_path, sources):
    source = sources / A1B_SAMPLE.name
    repo = new_repo(tmp_path, sources)
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="u1")
    with pytest.raises(vrepo.InvalidArgumentError, match="outside the array's chunk grid"):
        session.set_virtual_refs("a", [[2]], [url(source)], [0], [2])
    with pytest.raises(vrepo.InvalidArgumentError, match="more than once"):
        session.set_virtual_refs("a", [[1], [1]], [url(source)] * 2, [0, 2], [2, 2])
    with pytest.raises(vrepo.InvalidArgumentError, match="shape"):
        session.set_virtual_refs("a", [[0], [1]], [url(source)] * 2, [0], [2, 2])
    with pytest.raises(vrepo.InvalidArgumentError, match="not an array"):
        session.set_virtual_refs("b", [[0]], [url(source)], [0], [2])


# --- the format ----------------------------------------------------------------------------


def test_manifests_with_virtual_refs_are_version_4_and_others_stay_3():
    n = 1000
    coords = np.arange(n).reshape(n, 1)
    sources = tuple((f"file:///d/{i}.nc", f"mtime_ns={i};size=9") for i in range(10))
    refs = [VirtualRef(*sources[i % 10][:1], 8 * i, 8, sources[i % 10][1]) for i in range(n)]
    manifest = Manifest.from_refs(1, coords, refs)
    assert manifest.nbytes_in_memory == 24 * n  # keys, offsets, lengths, location index
    assert len(manifest.sources) == 10 and manifest.virtual_count == n
    data = manifest.encode()
    assert struct.unpack_from("<H", data, 8)[0] == vrepo.format.VIRTUAL_FORMAT_VERSION == 4
    back = Manifest.decode(data, what="m")
    assert back == manifest and back.refs() == refs
    plain = Manifest.from_refs(1, [[0]], [ChunkRef.inlined(b"x")])
    assert struct.unpack_from("<H", plain.encode(), 8)[0] == vrepo.format.FORMAT_VERSION == 3


def test_mixed_manifests_change_and_drop_unused_sources():
    stored = ChunkRef.external("0" + "1" * 19, 100, checksum=7)
    refs = [ChunkRef.inlined(b"ab"), VirtualRef("file:///a", 0, 4, "v"), stored]
    manifest = Manifest.from_refs(1, [[0], [1], [2]], refs)
    assert manifest.chunk_ids() == [stored.chunk_id]
    changed = manifest.with_changes([[1], [5]], [None, VirtualRef("file:///b", 4, 4, "w")])
    assert changed.sources == (("file:///b", "w"),)
    assert changed.lookup([5]) == VirtualRef("file:///b", 4, 4, "w")
    assert changed.lookup([0]) == refs[0] and changed.lookup([2]) == stored
    gone = changed.with_changes([[5]], [None])
    assert gone.locations is None and gone.sources == ()
    assert Manifest.decode(gone.encode(), what="m") == gone


def test_diff_and_sizes_tell_virtual_refs_apart(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    first = repo.resolve("main")
    session = repo.writable_session()
    coords, offsets, lengths = chunk_table(sources / A1B_SAMPLE.name, ARRAY)
    session.set_virtual_refs(ARRAY, coords[:5], [url(sources / A1B_SAMPLE.name)] * 5,
                             offsets[:5] + 4, lengths[:5])  # fmt: skip
    zarr.open_array(session.store, path=ARRAY)[10] = 1.0  # a virtual chunk becomes stored
    session.commit("five refs moved, one chunk stored")
    chunks = {c.path: c for c in repo.diff(first, "main").chunks}
    assert (chunks[f"/{ARRAY}"].changed, chunks[f"/{ARRAY}"].added) == (6, 0)
    assert {c.path for c in repo.diff(first, first).chunks} == set()
    node = next(n for n in repo.list_nodes("main") if n.path == f"/{ARRAY}")
    assert node.stored_bytes == 37 * 49 * 4  # the stored chunk only: virtual bytes are not held


def test_garbage_collection_and_disk_usage_leave_virtual_refs_alone(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    session = repo.writable_session()
    zarr.open_array(session.store, path=ARRAY)[0] = 2.0  # one stored chunk
    session.commit("one chunk stored")
    abandoned = repo.writable_session()
    zarr.open_array(abandoned.store, path=ARRAY)[1] = 3.0  # a chunk no snapshot names
    abandoned.discard_changes()
    time.sleep(1.1)  # chunk ids name their second: a collection keeps what that second made
    report = repo.garbage_collect(older_than=dt.timedelta(0))
    assert (report.chunks, report.manifests, report.snapshots) == (1, 0, 0)
    usage = repo.disk_usage("main")
    array = next(a for a in usage.arrays if a.path == f"/{ARRAY}")
    assert (array.chunks, array.stored_bytes) == (1, 37 * 49 * 4)  # virtual ones: not held
    with xr.open_dataset(sources / A1B_SAMPLE.name) as ds:
        expected = ds[ARRAY].values.copy()
    expected[0] = 2.0
    read = zarr.open_array(repo.readonly_session("main").store, path=ARRAY, mode="r")
    np.testing.assert_array_equal(read[:], expected)


def test_byte_ranges_of_a_virtual_chunk_are_read_and_validated(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    store = repo.readonly_session("main").store
    coords, offsets, _ = chunk_table(sources / A1B_SAMPLE.name, ARRAY)
    row = int(np.flatnonzero((coords == [4, 0, 0]).all(axis=1))[0])
    with open(sources / A1B_SAMPLE.name, "rb") as f:
        f.seek(int(offsets[row]) + 100)
        expected = f.read(50)
    prototype = default_buffer_prototype()
    got = run_sync(store.get(f"{ARRAY}/c/4/0/0", prototype, RangeByteRequest(100, 150)))
    assert got.to_bytes() == expected
    ranges = [RangeByteRequest(100, 120), RangeByteRequest(120, 150), None]
    parts = run_sync(store.get_partial_values(prototype, [(f"{ARRAY}/c/4/0/0", r) for r in ranges]))
    assert parts[0].to_bytes() + parts[1].to_bytes() == expected
    assert len(parts[2].to_bytes()) == 37 * 49 * 4


def test_read_only_sessions_refuse_virtual_refs(tmp_path, sources):
    repo = virtual_a1b(tmp_path, sources)
    with pytest.raises(vrepo.ReadOnlyError):
        repo.readonly_session("main").set_virtual_refs(ARRAY, [[0, 0, 0]], ["file:///x"], [0], [1])


def test_an_older_vrepo_refuses_only_the_manifests_with_virtual_refs(
    tmp_path, sources, monkeypatch
):
    virtual_a1b(tmp_path, sources)
    versions = {
        p.name: struct.unpack_from("<H", p.read_bytes(), 8)[0]
        for p in (tmp_path / "repo.vrepo" / "manifests").iterdir()
    }
    assert sorted(set(versions.values())) == [3, 4]  # the coordinates' stored, the big one's not
    monkeypatch.setattr(vrepo.format.envelope, "NEWEST_VERSION", 3)  # as vrepo did before
    for name, version in versions.items():
        data = (tmp_path / "repo.vrepo" / "manifests" / name).read_bytes()
        if version == 3:
            Manifest.decode(data, what=name)
        else:
            with pytest.raises(vrepo.FormatError, match="written by a newer vrepo"):
                Manifest.decode(data, what=name)


def test_spellings_of_one_location_share_one_source(tmp_path, sources):
    source = sources / A1B_SAMPLE.name
    repo, session, expected = defined_a1b(tmp_path, sources)
    coords, offsets, lengths = chunk_table(source, ARRAY)
    spellings = [url(source), f"file://{sources}//./{A1B_SAMPLE.name}"]
    index = np.arange(len(coords)) % 2
    session.set_virtual_refs(ARRAY, coords, spellings, offsets, lengths, location_index=index)
    session.commit("two spellings")
    manifests = [
        Manifest.decode(p.read_bytes(), what=p.name)
        for p in (tmp_path / "repo.vrepo" / "manifests").iterdir()
    ]
    assert {s for m in manifests for s in m.sources} == {
        (url(source), next(s for m in manifests for s in m.sources)[1])
    }
    read = zarr.open_array(repo.readonly_session("main").store, path=ARRAY, mode="r")
    np.testing.assert_array_equal(read[:], expected)


def test_concurrent_sessions_rebase_virtual_refs(tmp_path, sources):
    source = sources / A1B_SAMPLE.name
    repo, session, expected = defined_a1b(tmp_path, sources, split=16)
    session.commit("arrays defined")
    coords, offsets, lengths = chunk_table(source, ARRAY)
    first, second = repo.writable_session(), repo.writable_session()
    for writer, rows in ((first, slice(0, 100)), (second, slice(100, None))):
        n = len(coords[rows])
        writer.set_virtual_refs(
            ARRAY, coords[rows], [url(source)] * n, offsets[rows], lengths[rows]
        )
    first.commit("the first 100 steps")
    second.commit("the others")  # lost the race: rebased onto the first, no overlap
    read = zarr.open_array(repo.readonly_session("main").store, path=ARRAY, mode="r")
    np.testing.assert_array_equal(read[:], expected)
    clash = repo.writable_session()
    late = repo.writable_session()
    for writer in (clash, late):
        writer.set_virtual_refs(ARRAY, coords[:1], [url(source)], offsets[:1] + 8, lengths[:1])
    clash.commit("step 0 moved")
    with pytest.raises(vrepo.ConflictError):
        late.commit("step 0 moved too")


@pytest.mark.parametrize("scheduler", ["threads", "distributed"])
def test_a_virtual_dataset_reads_on_dask(tmp_path, sources, scheduler, request):
    virtual_a1b(tmp_path, sources)
    if scheduler == "distributed":
        request.getfixturevalue("dask_client")  # worker processes open the repository
    with (
        xr.open_dataset(tmp_path / "repo.vrepo", engine="vrepo", chunks={}) as back,
        xr.open_dataset(sources / A1B_SAMPLE.name) as expected,
    ):
        assert back[ARRAY].chunks is not None
        mean = (
            back[ARRAY]
            .mean("time")
            .compute(scheduler=None if scheduler != "threads" else "threads")
        )
        xr.testing.assert_allclose(mean, expected[ARRAY].mean("time"))
