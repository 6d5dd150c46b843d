"""The ``vrepo`` fsspec protocol: any version, read-only, by URL, in every fsspec-aware tool."""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import warnings

import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr
from packaging.version import Version
from zarr.storage import FsspecStore

import vrepo
import vrepo.fsspec._filesystem
from s3_servers import REGION
from vrepo._sync import run_sync
from vrepo.errors import (
    InvalidArgumentError,
    InvalidKeyError,
    ReadOnlyError,
    RefNotFoundError,
    RepositoryNotFoundError,
)
from vrepo.fsspec import VRepoFileSystem
from vrepo.fsspec._paths import candidates
from vrepo.storage import FsspecStorage

FIRST = slice(0, 100)
# zarr 3.1.4 stopped refusing FsspecStore paths that keep a scheme (zarr-python #3343)
_ZARR_KEEPS_SCHEMES = Version(zarr.__version__) >= Version("3.1.4")


@pytest.fixture(scope="module")
def history(tmp_path_factory, a1b_dataset):
    """Real data in two commits: A1B's first 100 years, tagged v1, then the rest appended."""
    path = str(tmp_path_factory.mktemp("fsspec") / "air.vrepo")
    repo = vrepo.Repository.create(path)
    _write_history(repo, a1b_dataset)
    return path, repo


def _write_history(repo: vrepo.Repository, dataset: xr.Dataset) -> None:
    session = repo.writable_session("main")
    dataset.isel(time=FIRST).to_zarr(session.store, zarr_format=3, consolidated=False)
    repo.create_tag("v1", session.commit("first 100 years"))
    dataset.isel(time=slice(100, None)).to_zarr(
        session.store, append_dim="time", consolidated=False
    )
    session.commit("the rest")


@pytest.fixture
def fs() -> VRepoFileSystem:
    """A fresh instance (not fsspec's cached one), so opened versions are not shared."""
    return fsspec.filesystem("vrepo", skip_instance_cache=True)


def _store_bytes(repo: vrepo.Repository, key: str, ref: str = "v1") -> bytes:
    store = repo.readonly_session(ref=ref).store
    return run_sync(store.get(key)).to_bytes()


# --- xarray and zarr -----------------------------------------------------------------------


def test_open_zarr_of_a_tag_equals_engine_vrepo(history, a1b_dataset):
    path, _ = history
    expected = xr.open_dataset(path, engine="vrepo", tag="v1").load()
    opened = xr.open_zarr(f"vrepo::{path}@v1", consolidated=False).load()
    xr.testing.assert_identical(opened, expected)
    xr.testing.assert_identical(opened, a1b_dataset.isel(time=FIRST))
    with warnings.catch_warnings():  # no consolidated metadata: xarray warns, then reads
        warnings.simplefilter("ignore", RuntimeWarning)
        xr.testing.assert_identical(xr.open_zarr(f"vrepo::{path}@v1").load(), expected)


def test_without_a_revision_the_head_of_main_opens(history, a1b_dataset):
    path, _ = history
    latest = xr.open_zarr(f"vrepo::{path}", consolidated=False).load()
    xr.testing.assert_identical(latest, a1b_dataset)
    assert latest.identical(xr.open_dataset(path, engine="vrepo").load())


def test_zarr_open_group_takes_ancestors_and_snapshot_ids(history):
    path, repo = history
    v1 = repo.lookup_tag("v1")
    expected = xr.open_dataset(path, engine="vrepo", tag="v1").air_temperature.values
    for ref in ("main~1", v1, v1[:8].lower(), "tag:v1"):
        group = zarr.open_group(f"vrepo::{path}@{ref}", mode="r")
        np.testing.assert_array_equal(group["air_temperature"][:], expected)
    assert zarr.open_group(f"vrepo::{path}@main", mode="r")["time"].shape == (240,)


def test_a_folder_with_an_at_sign_still_opens(tmp_path, a1b_dataset):
    path = tmp_path / "me@home" / "air.vrepo"
    _write_history(vrepo.Repository.create(path), a1b_dataset.isel(time=slice(0, 110)))
    group = zarr.open_group(f"vrepo::{path}@v1", mode="r")
    assert group["time"].shape == (100,)
    assert zarr.open_group(f"vrepo::{path}", mode="r")["time"].shape == (110,)


# --- the file system calls -----------------------------------------------------------------


def test_ls_and_info(history, fs):
    path, repo = history
    root = f"{path}@v1"
    names = fs.ls(root, detail=False)
    assert f"{root}/zarr.json" in names and f"{root}/air_temperature" in names
    entries = {e["name"]: e for e in fs.ls(root)}
    assert entries[f"{root}/air_temperature"]["type"] == "directory"
    meta = entries[f"{root}/zarr.json"]
    assert meta["type"] == "file" and meta["size"] == len(_store_bytes(repo, "zarr.json"))
    assert fs.info(root)["type"] == "directory"
    assert fs.info(f"vrepo://{root}/air_temperature/zarr.json")["type"] == "file"
    assert fs.ls(f"{root}/air_temperature/zarr.json", detail=False) == [
        f"{root}/air_temperature/zarr.json"
    ]
    assert fs.isdir(f"{root}/air_temperature/c") and fs.exists(f"{root}/time/zarr.json")


def test_find_lists_the_keys_of_the_version(history, fs):
    path, repo = history
    store = repo.readonly_session(ref="v1").store

    async def keys() -> list[str]:
        return sorted([k async for k in store.list()])

    expected = run_sync(keys())
    assert fs.find(f"{path}@v1") == [f"{path}@v1/{k}" for k in expected]
    sizes = fs.find(f"{path}@v1/air_temperature", detail=True)
    assert sum(e["size"] for e in sizes.values()) == fs.du(f"{path}@v1/air_temperature")
    assert fs.glob(f"{path}@v1/*/zarr.json") == sorted(
        f"{path}@v1/{k}" for k in expected if k.count("/") == 1 and k.endswith("zarr.json")
    )
    _, dirs, files = next(fs.walk(f"{path}@v1"))
    assert "air_temperature" in dirs and files == ["zarr.json"]


def test_cat_file_with_ranges(history, fs):
    path, repo = history
    key = "air_temperature/c/0/0/0"
    whole = _store_bytes(repo, key)
    url = f"{path}@v1/{key}"
    assert fs.cat_file(url) == whole
    assert fs.cat_file(url, start=10, end=50) == whole[10:50]
    assert fs.cat_file(url, start=-7) == whole[-7:]
    assert fs.cat_file(url, start=5, end=-5) == whole[5:-5]
    assert fs.cat_file(url, start=len(whole) - 3, end=len(whole) + 100) == whole[-3:]
    assert fs.cat_file(url, start=20, end=10) == b""
    assert fs.cat_ranges([url, url, f"{path}@v1/zarr.json"], [0, 100, 0], [10, 200, 5]) == [
        whole[:10],
        whole[100:200],
        _store_bytes(repo, "zarr.json")[:5],
    ]


def test_fsspec_open_reads_a_zarr_json(history):
    path, repo = history
    with fsspec.open(f"vrepo::{path}@v1/air_temperature/zarr.json") as file:
        meta = json.load(file)
    assert meta["node_type"] == "array" and meta["shape"][0] == 100
    with fsspec.open(f"vrepo::{path}@v1/zarr.json", "rb") as file:
        file.seek(3)
        assert file.read(10) == _store_bytes(repo, "zarr.json")[3:13]


def test_a_pinned_file_system_takes_keys(history):
    path, repo = history
    pinned = fsspec.filesystem("vrepo", location=path, ref="v1")
    assert "zarr.json" in pinned.ls("", detail=False)
    assert pinned.cat("/zarr.json") == _store_bytes(repo, "zarr.json")
    same = VRepoFileSystem(location=f"{path}@v1", skip_instance_cache=True)
    assert same.cat_file("time/zarr.json") == pinned.cat_file("time/zarr.json")
    async_fs = VRepoFileSystem(location=path, ref="v1", asynchronous=True)
    group = zarr.open_group(FsspecStore(async_fs, path="", read_only=True), mode="r")
    assert group["time"].shape == (100,)
    with pytest.raises(InvalidArgumentError, match="revision one way only"):
        VRepoFileSystem(location=f"{path}@v1", ref="main").ls("")
    with pytest.raises(InvalidArgumentError, match="needs location="):
        VRepoFileSystem(ref="v1")


def test_a_branch_is_read_as_of_first_use_until_the_cache_is_invalidated(tmp_path):
    path = str(tmp_path / "r.vrepo")
    repo = vrepo.Repository.create(path)
    session = repo.writable_session("main")
    zarr.create_group(session.store, attributes={"n": 1})
    session.commit("one")
    fs = fsspec.filesystem("vrepo", skip_instance_cache=True)
    assert json.loads(fs.cat_file(f"{path}/zarr.json"))["attributes"] == {"n": 1}
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="r+").attrs["n"] = 2
    session.commit("two")
    assert json.loads(fs.cat_file(f"{path}/zarr.json"))["attributes"] == {"n": 1}
    fs.invalidate_cache()
    assert json.loads(fs.cat_file(f"{path}/zarr.json"))["attributes"] == {"n": 2}


def test_a_mapper_reads_as_a_url_does(history):
    path, _ = history
    mapper = fsspec.get_mapper(f"vrepo::{path}@v1")
    assert "air_temperature/zarr.json" in mapper
    opened = xr.open_zarr(mapper, consolidated=False)
    xr.testing.assert_identical(opened, xr.open_dataset(path, engine="vrepo", tag="v1"))


def test_before_fsspec_2025_10_chained_paths_are_relative_to_fo(history, monkeypatch):
    """Older fsspec gives a chained URL's path to the file system as ``fo`` and the path ''."""
    path, repo = history
    monkeypatch.setattr(vrepo.fsspec._filesystem, "_PATH_PASSED", False)
    make = VRepoFileSystem
    fs = make(fo=f"{path}@v1", target_protocol="file", target_options={}, skip_instance_cache=True)
    assert "zarr.json" in fs.ls("", detail=False) and "time/zarr.json" in fs.find("")
    assert fs.cat_file("/zarr.json") == _store_bytes(repo, "zarr.json")
    one = make(fo=f"{path}@v1/zarr.json", target_protocol="file", skip_instance_cache=True)
    with one.open("") as file:
        assert file.read() == _store_bytes(repo, "zarr.json")


def test_the_split_takes_the_shortest_prefix_first():
    found = [(c.location, c.revision, c.rest) for c in candidates("/d/a@b/r@v1/k/zarr.json")]
    assert found[:5] == [
        ("/d", None, "a@b/r@v1/k/zarr.json"),
        ("/d/a", "b", "r@v1/k/zarr.json"),
        ("/d/a@b", None, "r@v1/k/zarr.json"),
        ("/d/a@b/r", "v1", "k/zarr.json"),
        ("/d/a@b/r@v1", None, "k/zarr.json"),
    ]
    assert [c.location for c in candidates("bucket/r@v1/k", "s3")][:2] == [
        "s3://bucket",
        "s3://bucket/r",
    ]
    assert next(candidates("s3://bucket/r")).text == "s3://bucket"


def test_the_file_system_pickles(history, fs):
    path, _ = history
    copy = pickle.loads(pickle.dumps(fs))
    assert copy.cat_file(f"{path}@v1/zarr.json") == fs.cat_file(f"{path}@v1/zarr.json")


# --- errors -------------------------------------------------------------------------------


def test_a_missing_key_is_file_not_found(history, fs):
    path, _ = history
    missing = f"{path}@v1/air_temperature/c/999/0/0"
    for call in (fs.cat_file, fs.info, fs.ls, fs.open):
        with pytest.raises(FileNotFoundError):
            call(missing)
    with pytest.raises(FileNotFoundError):
        fsspec.open(f"vrepo::{missing}").open()
    assert not fs.exists(missing)
    with pytest.raises(IsADirectoryError):
        fs.cat_file(f"{path}@v1")
    with pytest.raises(IsADirectoryError):
        fs.open(f"{path}@v1/time")
    assert fs.find(missing) == []
    assert fs.cat_ranges([missing], [0], [4])[0].__class__ is FileNotFoundError
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges([missing], [0], [4], on_error="raise")
    # a key only in later commits is missing from v1
    assert fs.exists(f"{path}/air_temperature/c/2/0/0")
    assert not fs.exists(f"{path}@v1/air_temperature/c/2/0/0")


def test_no_repository_and_no_revision_say_so(history, fs, tmp_path):
    path, _ = history
    with pytest.raises(RepositoryNotFoundError, match=r"vrepo\.Repository\.create"):
        fs.ls(str(tmp_path / "nothing" / "here"))
    assert not fs.exists(str(tmp_path / "nothing"))
    with pytest.raises(RefNotFoundError, match="v1"):
        fs.cat_file(f"{path}@v9/zarr.json")
    with pytest.raises(RefNotFoundError):
        xr.open_zarr(f"vrepo::{path}@nope", consolidated=False)


def test_writes_are_refused(history, fs, tmp_path):
    path, _ = history
    url = f"{path}@v1/zarr.json"
    local = tmp_path / "local.bin"
    local.write_bytes(b"x")
    for write in (
        lambda: fs.pipe_file(url, b"{}"),
        lambda: fs.rm(url),
        lambda: fs.rm_file(url),
        lambda: fs.mkdir(f"{path}@v1/new"),
        lambda: fs.makedirs(f"{path}@v1/new"),
        lambda: fs.rmdir(f"{path}@v1/time"),
        lambda: fs.touch(url),
        lambda: fs.open(url, "wb"),
        lambda: fs.cp_file(url, f"{path}@v1/copy.json"),
        lambda: fs.put_file(str(local), f"{path}@v1/local.bin"),
        lambda: fsspec.open(f"vrepo::{url}", "wb").open(),
    ):
        with pytest.raises(ReadOnlyError, match="writable_session"):
            write()
    with pytest.raises(ReadOnlyError):
        group = zarr.open_group(FsspecStore(fs.__class__(asynchronous=True), path=f"{path}@v1"))
        group.attrs["n"] = 1


@pytest.mark.parametrize(
    "key",
    ["../air.vrepo@v1/zarr.json", "time/../zarr.json", "./zarr.json", "time//zarr.json"],
)
def test_a_key_never_leaves_its_repository(history, fs, key):
    path, _ = history
    with pytest.raises(InvalidKeyError, match="never leaves"):
        fs.cat_file(f"{path}@v1/{key}")
    pinned = VRepoFileSystem(location=path, ref="v1", skip_instance_cache=True)
    with pytest.raises(InvalidKeyError):
        pinned.cat_file(key)


# --- registration and other storage ---------------------------------------------------------


def test_the_protocol_is_registered_by_entry_point():
    (point,) = [
        p for p in importlib.metadata.entry_points(group="fsspec.specs") if p.name == "vrepo"
    ]
    assert point.load() is VRepoFileSystem
    assert fsspec.get_filesystem_class("vrepo") is VRepoFileSystem


def test_a_repository_on_s3_opens_by_chained_url(moto_server, a1b_dataset):
    bucket = moto_server.pool.take()
    repo = vrepo.Repository.create(moto_server.storage(bucket, "air"))
    _write_history(repo, a1b_dataset.isel(time=slice(0, 110)))
    options = {
        "endpoint_url": moto_server.endpoint_url,
        "credentials": moto_server.credentials,
        "region": REGION,
    }
    url = f"vrepo::s3://{bucket}/air@v1"
    opened = xr.open_zarr(url, storage_options={"s3": options}, consolidated=False)
    xr.testing.assert_identical(opened.load(), a1b_dataset.isel(time=FIRST))
    flat_url = f"vrepo://s3://{bucket}/air@v1"
    if _ZARR_KEEPS_SCHEMES:
        flat = xr.open_zarr(flat_url, storage_options=options, consolidated=False)
    else:  # zarr < 3.1.4 refuses a path with a scheme: the pinned form is the way there
        with pytest.raises(ValueError, match="must not include scheme"):
            xr.open_zarr(flat_url, storage_options=options, consolidated=False)
        pinned = fsspec.filesystem(
            "vrepo",
            location=f"s3://{bucket}/air",
            ref="v1",
            storage_options=options,
            asynchronous=True,
            skip_instance_cache=True,
        )
        flat = xr.open_zarr(FsspecStore(pinned), consolidated=False)
    xr.testing.assert_identical(flat.load(), opened)
    fs = fsspec.filesystem("vrepo", storage_options=options, skip_instance_cache=True)
    assert fs.cat_file(f"s3://{bucket}/air@main/time/zarr.json")
    with fsspec.open(f"{url}/zarr.json", s3=options) as file:
        assert json.load(file)["node_type"] == "group"


def test_other_fsspec_protocols_are_read_through_fsspec_storage(a1b_dataset):
    memory = fsspec.filesystem("memory")
    storage = FsspecStorage(memory, "/fsspec-view/air.vrepo", single_writer=True)
    _write_history(vrepo.Repository.create(storage), a1b_dataset.isel(time=slice(0, 110)))
    try:
        group = zarr.open_group("vrepo::memory://fsspec-view/air.vrepo@v1", mode="r")
        assert group["time"].shape == (100,)
    finally:
        memory.rm("/fsspec-view", recursive=True)
