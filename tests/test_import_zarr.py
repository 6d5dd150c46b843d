"""`vrepo.import_zarr` and ``vrepo import``: a Zarr store written by plain xarray (format 3,
and format 2 converted to 3) becomes one commit that reads back identical, its chunk bytes
copied as they are; locally, on a real distributed cluster, and from S3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner
from zarr.core.buffer import default_buffer_prototype

import vrepo
import vrepo.cli
from conftest import open_a1b
from s3_servers import REGION
from vrepo._sync import run_sync

# what xarray reads the same from either format (the codec objects differ in type)
CF_ENCODING = ("dtype", "units", "calendar", "_FillValue", "coordinates", "chunks")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A1B written with plain ``to_zarr``, as Zarr format 3 and as format 2."""
    root = tmp_path_factory.mktemp("sources")
    ds = open_a1b()
    written = {}
    for zarr_format in (3, 2):
        path = root / f"a1b-v{zarr_format}.zarr"
        ds.to_zarr(path, zarr_format=zarr_format)
        written[zarr_format] = path
    return written


def chunk_files(store: Path) -> dict[str, bytes]:
    """Every object of a local Zarr store but its metadata, by key."""
    metadata = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and p.name not in metadata
    }


def stored(session: vrepo.Session, key: str) -> bytes | None:
    buffer = run_sync(session.store.get(key, default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


def assert_reads_as_source(source: Path, repo: object, zarr_format: int, **options) -> None:
    expected = xr.open_zarr(source)
    got = xr.open_dataset(repo, engine="vrepo", chunks={}, **options)
    xr.testing.assert_identical(got, expected)
    for name in expected.variables:
        want, have = expected[name].encoding, got[name].encoding
        if zarr_format == 3:
            np.testing.assert_equal(have, want)
        else:
            pick = {k: want[k] for k in CF_ENCODING if k in want}
            np.testing.assert_equal({k: have.get(k) for k in pick}, pick, err_msg=name)
            assert set(pick) == {k for k in CF_ENCODING if k in have}, name


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_a1b_imports_as_one_commit_that_reads_identical(sources, tmp_path, zarr_format):
    source, path = sources[zarr_format], tmp_path / "a1b.vrepo"
    snapshot = vrepo.import_zarr(source, path, progress=False)  # the repository is created
    repo = vrepo.Repository.open(path)
    assert repo.lookup_branch("main") == snapshot
    assert [c.message for c in repo.ancestry(branch="main")] == [
        f"import {source}",
        "Repository initialized",
    ]
    assert_reads_as_source(source, path, zarr_format)
    # every chunk object is in the repository under its own key, byte for byte
    session = repo.readonly_session(branch="main")
    files = chunk_files(source)
    assert len(files) == 12
    for key, data in files.items():
        assert stored(session, key) == data, key


def test_v2_metadata_is_converted_by_zarrs_migration(sources, tmp_path):
    vrepo.import_zarr(sources[2], tmp_path / "r", progress=False)
    session = vrepo.Repository.open(tmp_path / "r").readonly_session(branch="main")
    doc = json.loads(stored(session, "air_temperature/zarr.json"))
    assert doc["zarr_format"] == 3
    assert doc["chunk_key_encoding"] == {"name": "v2", "configuration": {"separator": "."}}
    assert [c["name"] for c in doc["codecs"]] == ["bytes", "blosc"]  # from compressor: blosc
    assert doc["dimension_names"] == ["time", "latitude", "longitude"]
    assert "_ARRAY_DIMENSIONS" not in doc["attributes"]
    assert stored(session, "air_temperature/.zarray") is None  # no format 2 metadata kept
    root = json.loads(stored(session, "zarr.json"))
    assert root["attributes"] == {"Conventions": "CF-1.5"}
    assert "consolidated_metadata" not in root  # it would go stale with the next commit


def test_a_lone_v2_array_with_slash_keys_f_order_and_no_fill_value(tmp_path):
    import zarr

    source = zarr.create_array(
        tmp_path / "arr.zarr",
        shape=(4, 6),
        chunks=(2, 3),
        dtype="i2",
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        fill_value=None,
        compressors=None,
        order="F",
    )
    source[:] = np.arange(24).reshape(4, 6)
    vrepo.import_zarr(tmp_path / "arr.zarr", tmp_path / "r", group="x/y", progress=False)
    session = vrepo.Repository.open(tmp_path / "r").readonly_session(branch="main")
    copied = zarr.open_array(session.store, path="x/y", mode="r")
    np.testing.assert_array_equal(copied[:], source[:])
    doc = json.loads(stored(session, "x/y/zarr.json"))
    assert doc["chunk_key_encoding"] == {"name": "v2", "configuration": {"separator": "/"}}
    assert [c["name"] for c in doc["codecs"]] == ["transpose", "bytes"]
    assert stored(session, "x/y/0/1") == (tmp_path / "arr.zarr" / "0" / "1").read_bytes()


def test_import_into_groups_of_a_repository_with_data(sources, tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r")
    first = vrepo.import_zarr(sources[3], repo, group="v3", message="v3 copy")
    second = vrepo.import_zarr(sources[2], repo, group="/runs/v2/", progress=False)
    assert [s.id for s in repo.ancestry(branch="main")][:2] == [second, first]
    assert_reads_as_source(sources[3], repo, 3, group="v3")
    assert_reads_as_source(sources[2], repo, 2, group="runs/v2")
    nodes = {n.path: n.kind for n in repo.list_nodes("main")}
    assert {p: k for p, k in nodes.items() if p.count("/") < 3 and "/v3/" not in p} == {
        "/": "group",
        "/runs": "group",
        "/runs/v2": "group",
        "/v3": "group",
    }
    tree = xr.open_datatree(tmp_path / "r", engine="vrepo")
    assert tree["runs/v2/air_temperature"].shape == (240, 37, 49)


def test_an_import_never_overwrites(sources, tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r")
    vrepo.import_zarr(sources[3], repo, group="a1b", progress=False)
    head = repo.lookup_branch("main")
    with pytest.raises(vrepo.InvalidArgumentError, match=r"already has data at /a1b \(/a1b,"):
        vrepo.import_zarr(sources[2], repo, group="a1b")
    with pytest.raises(vrepo.InvalidArgumentError, match=r"already has data at / \(/a1b, "):
        vrepo.import_zarr(sources[2], repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="/a1b/time is an array"):
        vrepo.import_zarr(sources[2], repo, group="a1b/time/inside")
    assert repo.lookup_branch("main") == head  # nothing committed
    vrepo.import_zarr(sources[2], repo, branch="main", group="other")  # elsewhere is fine


def test_bad_input(sources, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(vrepo.UnsupportedZarrFormatError, match="is not a Zarr store"):
        vrepo.import_zarr(tmp_path / "empty", tmp_path / "r")
    with pytest.raises(vrepo.InvalidArgumentError, match="not a directory"):
        vrepo.import_zarr(tmp_path / "missing.zarr", tmp_path / "r")
    with pytest.raises(vrepo.InvalidArgumentError, match="invalid group"):
        vrepo.import_zarr(sources[3], tmp_path / "r", group="a/../b")
    with pytest.raises(vrepo.InvalidArgumentError, match="source_options apply only to a URL"):
        vrepo.import_zarr(sources[3], tmp_path / "r", source_options={"anon": True})
    with pytest.raises(vrepo.RefNotFoundError):
        vrepo.import_zarr(sources[3], tmp_path / "r", branch="nope")


def test_progress_is_shown_when_asked(sources, tmp_path, capsys):
    vrepo.import_zarr(sources[3], tmp_path / "r", progress=True)
    assert "copying 12 chunks" in capsys.readouterr().err


def test_the_import_command(sources, tmp_path):
    runner = CliRunner()
    repo = tmp_path / "r.vrepo"
    args = ["import", str(sources[2]), str(repo), "--group", "a1b", "-m", "from v2"]
    result = runner.invoke(vrepo.cli.app, args)
    assert result.exit_code == 0, result.output
    snapshot = vrepo.Repository.open(repo).lookup_branch("main")
    assert f"into {repo} at a1b on main (snapshot {snapshot})" in result.output
    assert vrepo.Repository.open(repo).lookup_snapshot(snapshot).message == "from v2"
    assert_reads_as_source(sources[2], repo, 2, group="a1b")
    again = runner.invoke(vrepo.cli.app, args)
    assert again.exit_code == 1
    assert "never overwrites; import into a new group (--group GROUP)" in again.output
    assert "group=" not in again.output  # the command's advice, not Python's


def test_a_distributed_import_copies_on_the_workers(sources, tmp_path, dask_client):
    from distributed import get_task_stream

    with get_task_stream(dask_client) as tasks:
        snapshot = vrepo.import_zarr(sources[2], tmp_path / "r", progress=False)
    ran = [str(t["key"]) for t in tasks.data]
    assert sum("vrepo-import-" in key for key in ran) >= 2  # batches on two workers
    repo = vrepo.Repository.open(tmp_path / "r")
    assert repo.lookup_branch("main") == snapshot
    assert_reads_as_source(sources[2], tmp_path / "r", 2)
    session = repo.readonly_session(branch="main")
    for key, data in chunk_files(sources[2]).items():
        assert stored(session, key) == data, key


def test_an_s3_source(sources, tmp_path, moto_server):
    bucket = moto_server.pool.take()
    options = {
        "endpoint_url": moto_server.endpoint_url,
        "key": moto_server.credentials.access_key_id,
        "secret": moto_server.credentials.secret_access_key,
        "client_kwargs": {"region_name": REGION},
    }
    url = f"s3://{bucket}/a1b.zarr"
    open_a1b().to_zarr(url, zarr_format=3, storage_options=options)
    vrepo.import_zarr(url, tmp_path / "r", source_options=options, progress=False)
    assert_reads_as_source(sources[3], tmp_path / "r", 3)
