"""The ``vrepo`` command line, on a real repository of the A1B sample data.

Driven through typer's CliRunner on the real app, and once through the installed console
script in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from typer.testing import CliRunner
from zarr.core.sync import sync

import vrepo
import vrepo._sync
import vrepo.cli
import vrepo.config
import vrepo.engine.refs
from s3_servers import REGION

# stderr apart from stdout: click < 8.2 (typer < 0.16 runs on it) mixes the two unless told
# not to, and later runners have no such argument as they always keep them apart.
_KEEP_STDERR_APART = (
    {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}
)
runner = CliRunner(**_KEEP_STDERR_APART)


def run(*args: str, code: int = 0):
    result = runner.invoke(vrepo.cli.app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    if code == 0:
        assert result.stderr == ""
    return result


def run_json(*args: str):
    return json.loads(run(*args, "--json").stdout)


def error_of(*args: str, code: int = 1) -> str:
    """Run a failing command; its stderr must be one line, with no traceback."""
    result = run(*args, code=code)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def air(tmp_path_factory, a1b_dataset):
    """A repository with history:

    main: init - v1 "first 100 years" - "append 40 years" - v2 "warm the first 20 years"
    dev:  from v1 - "add extra/flag"
    """
    path = tmp_path_factory.mktemp("cli") / "air.vrepo"
    repo = vrepo.Repository.create(path, vrepo.RepoConfig(inline_threshold_bytes=0))
    session = repo.writable_session()
    a1b_dataset.isel(time=slice(0, 100)).to_zarr(
        session.store,
        mode="w",
        consolidated=False,
        encoding={"air_temperature": {"chunks": (20, 37, 49)}},
    )
    ids = {"v1": session.commit("first 100 years", metadata={"source": "A1B"})}
    chunk_dir = path / "chunks"
    disk_bytes_v1 = sum(f.stat().st_size for f in chunk_dir.iterdir())  # nothing else yet
    repo.create_tag("v1", ids["v1"])
    a1b_dataset.isel(time=slice(100, 140)).to_zarr(
        session.store, append_dim="time", consolidated=False
    )
    ids["append"] = session.commit("append 40 years")
    air_t = zarr.open_array(session.store, path="air_temperature")
    air_t[0:20] = air_t[0:20] + 1  # exactly chunk 0
    ids["v2"] = session.commit("warm the first 20 years\n\ndetails", metadata={"by": "test"})
    repo.create_tag("v2", ids["v2"])
    repo.create_branch("dev", ids["v1"])
    dev = repo.writable_session("dev")
    flag = (
        zarr.open_group(dev.store)
        .create_group("extra")
        .create_array("flag", shape=(10,), chunks=(5,), dtype="i1")
    )
    flag[:] = 1
    ids["dev"] = dev.commit("add extra/flag")
    ids["init"] = repo.lookup_snapshot(ids["v1"]).parent_id
    return path, repo, ids, disk_bytes_v1


@pytest.fixture
def air_copy(air, tmp_path):
    """A copy of the repository that a test may change."""
    path, _, ids, _ = air
    copy = tmp_path / "copy.vrepo"
    shutil.copytree(path, copy)
    return copy, vrepo.Repository.open(copy), ids


# --- reading ----------------------------------------------------------------------------------


def test_log_lists_first_parent_history_with_labels(air):
    path, _, ids, _ = air
    lines = run("log", path).stdout.splitlines()
    assert [line.split()[0] for line in lines] == [ids[k] for k in ("v2", "append", "v1", "init")]
    assert lines[0].endswith("(main, tag: v2) warm the first 20 years")  # first line only
    assert "(tag: v1) first 100 years" in lines[2]
    assert lines[3].endswith("Repository initialized")
    assert len(run("log", path, "-n", "2").stdout.splitlines()) == 2
    dev_log = run("log", f"{path}@dev").stdout.splitlines()
    assert [line.split()[0] for line in dev_log] == [ids["dev"], ids["v1"], ids["init"]]


def test_log_json(air):
    path, repo, ids, _ = air
    commits = run_json("log", f"{path}@main~1")
    assert [c["id"] for c in commits] == [ids["append"], ids["v1"], ids["init"]]
    first = commits[1]
    assert set(first) == {
        "id",
        "parent_id",
        "parent_ids",
        "written_at",
        "message",
        "metadata",
        "author",
        "branches",
        "tags",
    }
    author = repo.lookup_snapshot(ids["v1"]).author
    assert first["author"] == {"name": author.name, "email": author.email} and author.name
    assert first["parent_id"] == ids["init"] and first["message"] == "first 100 years"
    assert first["parent_ids"] == [ids["init"]]
    assert first["metadata"] == {"source": "A1B"}
    assert first["tags"] == ["v1"] and first["branches"] == []
    written = dt.datetime.fromisoformat(first["written_at"])
    assert written == repo.lookup_snapshot(ids["v1"]).written_at
    assert run_json("log", path, "-n", "1")[0]["branches"] == ["main"]


def test_log_graph_shows_every_branch_and_tag(air):
    path, _, ids, _ = air
    out = run("log", "--graph", path).stdout
    lines = out.splitlines()
    commit_lines = [line for line in lines if "*" in line.split(" ")[0:3]]
    assert len(commit_lines) == 5  # the dev commit too, though REF is main
    assert "(dev) add extra/flag" in out and "(main, tag: v2)" in out
    assert "(tag: v1) first 100 years" in out
    assert "|/" in lines  # dev forks from v1: its lane joins just above v1
    joined = lines.index("|/")
    assert ids["v1"] in lines[joined + 1] and lines[joined + 1].startswith("* ")
    dev_line = next(line for line in lines if ids["dev"] in line)
    main_line = next(line for line in lines if ids["v2"] in line)
    assert {dev_line[:4], main_line[:4]} == {f"* {ids['dev'][:2]}", "| * "}  # two lanes
    graph_json = run_json("log", "--graph", f"{path}@v1")
    assert {c["id"] for c in graph_json} == set(ids.values())
    assert graph_json[-1]["id"] == ids["init"]
    assert len(run("log", "--graph", "-n", "2", path).stdout.splitlines()) == 2


def test_ls_matches_zarr_and_the_bytes_on_disk(air):
    path, repo, _, disk_bytes_v1 = air
    listing = run_json("ls", f"{path}@v1")
    assert listing["snapshot_id"] == repo.resolve("v1")
    nodes = {n["path"]: n for n in listing["nodes"]}
    store = repo.readonly_session(tag="v1").store
    group = zarr.open_group(store, mode="r")
    arrays = dict(group.arrays())
    assert set(nodes) == {"/"} | {f"/{name}" for name in arrays}
    assert nodes["/"]["kind"] == "group" and nodes["/"]["shape"] is None
    for name, array in arrays.items():
        node = nodes[f"/{name}"]
        assert node["kind"] == "array"
        assert tuple(node["shape"]) == array.shape
        assert node["dtype"] == str(array.dtype)
        assert tuple(node["chunk_shape"]) == array.chunks
        # (zarr's nbytes_stored() and nchunks_initialized fail here: their prefix "latitude"
        # also matches "latitude_longitude/", in zarr 3.1.6's MemoryStore too)
        chunk_keys = [k for k in _keys(store, f"{name}/") if not k.endswith("zarr.json")]
        assert len(chunk_keys) == node["chunk_count"]
        assert node["stored_bytes"] == sum(sync(store.getsize(k)) for k in chunk_keys) > 0
    air_t = nodes["/air_temperature"]
    assert (air_t["shape"], air_t["chunk_shape"], air_t["chunk_count"]) == (
        [100, 37, 49],
        [20, 37, 49],
        5,
    )
    assert air_t["dtype"] == "float32" and air_t["attributes"]["units"] == "K"
    assert (
        listing["stored_bytes"] == disk_bytes_v1 == sum(n["stored_bytes"] for n in nodes.values())
    )

    plain = run("ls", f"{path}@v1").stdout.splitlines()
    assert plain[0].split() == ["PATH", "KIND", "DTYPE", "SHAPE", "CHUNKS", "STORED", "BYTES"]
    row = next(line for line in plain if line.startswith("/air_temperature "))
    assert row.split("  ")[0] == "/air_temperature"
    assert "(100, 37, 49)" in row and "(20, 37, 49)" in row
    assert row.split()[-2:] == ["5", str(air_t["stored_bytes"])]
    latest = {n["path"]: n for n in run_json("ls", path)["nodes"]}
    assert latest["/air_temperature"]["shape"] == [140, 37, 49]


def _keys(store, prefix: str) -> list[str]:
    async def collect() -> list[str]:
        return [key async for key in store.list_prefix(prefix)]

    return sync(collect())


def test_show(air):
    path, _, ids, _ = air
    shown = run_json("show", f"{path}@v2")
    assert shown["id"] == ids["v2"] and shown["parent_id"] == ids["append"]
    assert shown["message"] == "warm the first 20 years\n\ndetails"
    assert shown["metadata"] == {"by": "test"}
    assert shown["branches"] == ["main"] and shown["tags"] == ["v2"]
    assert shown["changes"]["chunks"] == [
        {"path": "/air_temperature", "added": 0, "changed": 1, "removed": 0}
    ]
    assert shown["changes"]["from_id"] == ids["append"]
    text = run("show", f"{path}@main").stdout
    assert f"snapshot:  {ids['v2']}" in text and f"parent:    {ids['append']}" in text
    assert "    warm the first 20 years" in text and "    details" in text
    assert '"by": "test"' in text
    assert "/air_temperature  +0 ~1 -0" in text
    first = run_json("show", f"{path}@{ids['init']}")
    assert first["parent_id"] is None and first["changes"]["added_groups"] == []


def test_diff_counts_what_was_written(air):
    path, _, ids, _ = air
    changes = run_json("diff", f"{path}@v1", f"{path}@main")
    assert changes["from_id"] == ids["v1"] and changes["to_id"] == ids["v2"]
    chunks = {c["path"]: c for c in changes["chunks"]}
    # 40 appended years: 2 new chunks of 20; then chunk 0 rewritten
    assert chunks["/air_temperature"] == {
        "path": "/air_temperature",
        "added": 2,
        "changed": 1,
        "removed": 0,
    }
    assert chunks["/time"]["added"] == 1  # chunks of 100 time steps: 100..139 is chunk 1
    assert "/air_temperature" in changes["metadata_changed"]  # its shape grew
    assert changes["added_arrays"] == [] and changes["removed_arrays"] == []

    to_dev = run_json("diff", f"{path}@v1", "@dev")  # @REVISION: in FROM's repository
    assert to_dev["added_groups"] == ["/extra"] and to_dev["added_arrays"] == ["/extra/flag"]
    assert to_dev["chunks"] == [{"path": "/extra/flag", "added": 2, "changed": 0, "removed": 0}]
    assert to_dev["metadata_changed"] == []

    siblings = run_json("diff", f"{path}@dev", "@main")  # neither descends from the other
    assert siblings["removed_groups"] == ["/extra"]
    assert {c["path"]: c for c in siblings["chunks"]}["/air_temperature"]["added"] == 2

    own = run_json("diff", f"{path}@v2")  # one argument: the snapshot's own changes
    assert own["from_id"] == ids["append"] and own["to_id"] == ids["v2"]

    text = run("diff", f"{path}@v1", "@dev").stdout.splitlines()
    assert text[0].split() == ["CHANGE", "PATH", "CHUNKS", "+added", "~changed", "-removed"]
    assert text[1].split() == ["added", "group", "/extra"]
    assert text[2].split() == ["added", "array", "/extra/flag", "+2", "~0", "-0"]
    assert run("diff", path, "@main").stdout.strip() == "no changes"
    assert "write @dev" in error_of("diff", path, "dev")


def test_diff_across_repositories_is_refused(air, air_copy):
    path = air[0]
    copy = air_copy[0]
    assert "different repositories" in error_of("diff", f"{path}@v1", f"{copy}@v1")


def test_branch_and_tag_lists(air):
    path, _, ids, _ = air
    branches = run_json("branch", path)
    assert [b["name"] for b in branches] == ["dev", "main"]
    assert branches[1] == {
        "name": "main",
        "snapshot_id": ids["v2"],
        "written_at": branches[1]["written_at"],
        "message": "warm the first 20 years\n\ndetails",
    }
    assert "branch list takes a repository, not a revision: drop '@v1'" in error_of(
        "branch", "list", f"{path}@v1"
    )  # a revision would mean nothing here: refused, not ignored
    tags = run_json("tag", path)
    assert [(t["name"], t["snapshot_id"]) for t in tags] == [("v1", ids["v1"]), ("v2", ids["v2"])]
    plain = run("tag", path).stdout.splitlines()
    assert plain[0].split() == ["NAME", "SNAPSHOT", "WRITTEN", "MESSAGE"]
    assert plain[1].split()[:2] == ["v1", ids["v1"]] and plain[1].endswith("first 100 years")


# --- writing ------------------------------------------------------------------------------------


def test_branch_commands(air_copy):
    path, repo, ids = air_copy
    assert run("branch", "create", path, "fix", "--from", "v2~1").stdout.strip() == (
        f"created branch fix at {ids['append']}"
    )
    assert repo.lookup_branch("fix") == ids["append"]
    run("branch", "create", f"{path}@dev~1", "old")
    assert repo.lookup_branch("old") == ids["v1"]
    run("branch", "create", path, "tip")
    assert repo.lookup_branch("tip") == ids["v2"]  # default: main's head
    run("branch", "reset", path, "fix", "v1")
    assert repo.lookup_branch("fix") == ids["v1"]
    assert [r.action for r in repo.branch_history("fix")] == ["reset", "create"]
    assert "deleted branch old" in run("branch", "delete", path, "old").stdout
    assert repo.list_branches() == ["dev", "fix", "main", "tip"]

    assert "already exists" in error_of("branch", "create", path, "dev")
    assert "invalid branch name 'bad name'" in error_of("branch", "create", path, "bad name")
    assert "main branch cannot be deleted" in error_of("branch", "delete", path, "main")
    assert "no branch named 'old'" in error_of("branch", "delete", path, "old")
    assert "two start points" in error_of("branch", "create", f"{path}@v1", "x", "--from", "v2")
    assert "takes a repository, not a revision" in error_of(
        "branch", "reset", f"{path}@v1", "fix", "v2"
    )
    assert "has only 3 ancestors" in error_of("branch", "reset", path, "fix", "v2~5")
    assert repo.lookup_branch("fix") == ids["v1"]  # failed commands changed nothing


def test_tag_commands(air_copy):
    path, repo, ids = air_copy
    run("tag", "create", path, "v3")
    assert repo.lookup_tag("v3") == ids["v2"]
    run("tag", "create", path, "before-warming", "v2~1")
    assert repo.lookup_tag("before-warming") == ids["append"]
    run("tag", "create", f"{path}@dev", "dev-1")
    assert repo.lookup_tag("dev-1") == ids["dev"]
    assert "deleted tag v3" in run("tag", "delete", path, "v3").stdout
    assert "existed and was deleted" in error_of("tag", "create", path, "v3")
    assert "tag 'v1' exists" in error_of("tag", "create", path, "v1", "dev")
    assert [t["name"] for t in run_json("tag", path)] == ["before-warming", "dev-1", "v1", "v2"]


def test_ambiguous_names_need_a_kind(air_copy):
    path, _, ids = air_copy
    assert "a tag named 'v1' exists" in error_of("branch", "create", path, "v1", "--from", "dev")
    repo = vrepo.Repository.open(path)  # as a repository from before that was refused holds it
    head = vrepo.engine.refs.RefHead("branch", "v1", None)
    record = vrepo.engine.refs.write_record(
        repo.storage, head, "create", ids["dev"], vrepo.engine.refs.new_operation()
    )
    vrepo._sync.run_sync(record)
    message = error_of("log", f"{path}@v1")
    assert "'v1' is both a branch" in message and "'branch:v1' or 'tag:v1'" in message
    assert run_json("log", f"{path}@branch:v1", "-n", "1")[0]["id"] == ids["dev"]
    assert run_json("log", f"{path}@tag:v1", "-n", "1")[0]["id"] == ids["v1"]


def test_init(tmp_path):
    path = tmp_path / "new.vrepo"
    out = run("init", path).stdout
    repo = vrepo.Repository.open(path)
    assert out.startswith("Initialized empty vrepo repository") and repo.resolve("main") in out
    assert "already exists" in error_of("init", path)
    assert run("tag", path).stdout.split() == ["NAME", "SNAPSHOT", "WRITTEN", "MESSAGE"]
    assert run_json("tag", path) == []
    assert run_json("ls", path) == {
        "snapshot_id": repo.resolve("main"),
        "stored_bytes": 0,
        "nodes": [],
    }
    assert run("ls", path).stdout.split() == ["PATH", "KIND", "DTYPE", "SHAPE", "CHUNKS",
                                              "STORED", "BYTES"]  # fmt: skip
    assert run("log", "--graph", path).stdout.startswith(f"* {repo.resolve('main')} ")


# --- errors -------------------------------------------------------------------------------------


def test_bad_references_fail_cleanly(air, tmp_path):
    path, _, _, _ = air
    message = error_of("log", f"{path}@nope")
    assert "no branch, tag or snapshot id 'nope'" in message
    assert "branches: dev, main; tags: v1, v2" in message
    assert "main (" in error_of("show", f"{path}@main~9") and "has only 3 ancestors" in (
        error_of("show", f"{path}@main~9")
    )
    assert "has only 1 ancestor," in error_of("ls", f"{path}@v1~2")
    missing = tmp_path / "missing.vrepo"
    assert f"no vrepo repository at '{missing}'" in error_of("ls", missing)
    assert f"vrepo init {missing}" in error_of("log", f"{missing}@v1")
    assert "'bad name' was meant as a revision" in error_of("ls", f"{path}@bad name")
    assert "nothing follows '@'" in error_of("show", f"{path}@")
    assert "does not exist" in error_of("diff", f"{path}@main", "@snapshot:0CHE4BJDYDQ2EZB98T6P")


def test_usage_errors_exit_2(air):
    path = air[0]
    assert run("log", path, "-n", "-1", code=2).stdout == ""
    assert run("frobnicate", code=2).stdout == ""
    assert "KEY=VALUE" in run("--config", "nonsense", "log", path, code=2).stderr


# --- configuration ------------------------------------------------------------------------------


@pytest.fixture
def user_config(tmp_path, monkeypatch):
    """An empty user configuration directory; afterwards, the process's config as before."""
    folder = tmp_path / "config"
    monkeypatch.setenv("VREPO_CONFIG", str(folder))
    vrepo.config.refresh()
    yield folder / "vrepo.yaml"
    monkeypatch.delenv("VREPO_CONFIG")
    vrepo.config.refresh()


def test_config_commands(user_config):
    assert run("config", "get", "dask.split-every").stdout.strip() == "32"
    out = run("config", "set", "dask.split-every", "8").stdout
    assert str(user_config) in out
    assert "split-every: 8" in user_config.read_text()
    assert run("config", "get", "dask.split-every").stdout.strip() == "8"
    assert run_json("config", "get", "dask.split-every") == 8
    listed = run_json("config", "list")
    assert listed["dask.split-every"] == 8 and listed["repository.inline-threshold-bytes"] == 512
    plain = run("config", "list").stdout.splitlines()
    assert "dask.split-every=8" in plain and "storage.s3.scatter-credentials=true" in plain
    assert "unknown vrepo configuration key" in error_of("config", "get", "no.such-key")
    assert "must be an integer" in error_of("config", "set", "dask.split-every", "many")
    assert run_json("config", "get", "dask.split-every") == 8


def test_global_config_option_lasts_one_invocation(user_config, tmp_path):
    got = run("-c", "dask.split-every=5", "--config", "dask.split-every=6", "config", "get",
              "dask.split-every")  # fmt: skip
    assert got.stdout.strip() == "6"
    assert vrepo.config.get("dask.split-every") == 32  # not left behind
    path = tmp_path / "r.vrepo"
    run("--config", "repository.inline-threshold-bytes=0", "init", path)
    assert vrepo.Repository.open(path).config.inline_threshold_bytes == 0
    assert vrepo.config.get("repository.inline-threshold-bytes") == 512
    assert "unknown vrepo configuration key" in error_of("--config", "x.y=1", "config", "list")
    assert "must be an integer" in error_of("-c", "dask.split-every=x", "config", "list")


# --- terminals and the installed script ---------------------------------------------------------


def test_rich_output_on_a_terminal(air, monkeypatch):
    from rich.console import Console

    from vrepo.cli import _render  # loaded by the commands only: not there when run alone

    path = air[0]
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, highlight=False)
    monkeypatch.setattr(_render, "console", lambda: console)
    run("ls", f"{path}@dev")
    tree = buffer.getvalue()
    assert "\x1b[" in tree  # styled
    assert "└── " in tree or "├── " in tree
    for text in ("air_temperature", "float32 (100, 37, 49)", "chunks (20, 37, 49)", "extra"):
        assert text in _strip_ansi(tree), text
    buffer.seek(0)
    buffer.truncate(0)
    run("log", "--graph", path)
    assert "(dev) add extra/flag" in _strip_ansi(buffer.getvalue())


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_installed_console_script(air):
    path, _, ids, _ = air
    script = Path(sys.executable).parent / "vrepo"
    assert script.exists(), "reinstall: pip install -e .[test] (adds the vrepo script)"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [script, "log", f"{path}@main~1", "--json"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert [c["id"] for c in json.loads(done.stdout)] == [ids["append"], ids["v1"], ids["init"]]
    piped = subprocess.run([script, "ls", path], capture_output=True, text=True, env=env)
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout  # plain when piped
    assert "(140, 37, 49)" in piped.stdout
    failed = subprocess.run(
        [script, "show", f"{path}@main~7"], capture_output=True, text=True, env=env
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"error: main~7 goes back past the first snapshot: main ({ids['v2']}) has only 3 "
        "ancestors, so use ~0 to ~3"
    ]


def test_xarray_reads_what_ls_lists(air, a1b_dataset):
    path, _, _, _ = air
    listing = {n["path"]: n for n in run_json("ls", f"{path}@v2~1")["nodes"]}
    opened = xr.open_dataset(f"{path}@v2~1", engine="vrepo")
    assert listing["/air_temperature"]["shape"] == list(opened.air_temperature.shape)
    np.testing.assert_array_equal(
        opened.air_temperature.values, a1b_dataset.air_temperature.values[:140]
    )


def test_s3_references_with_storage_options(moto_server, monkeypatch):
    bucket = moto_server.pool.take()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.credentials.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.credentials.secret_access_key)
    options = ["-s", f"endpoint_url={moto_server.endpoint_url}", "-s", f"region={REGION}"]
    url = f"s3://{bucket}/cli/air"
    run(*options, "init", url)
    repo = vrepo.Repository.open(moto_server.storage(bucket, "cli/air"))
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(6,), chunks=(2,), dtype="i4")[:] = 1
    repo.create_tag("v1", session.commit("x"))
    commits = run_json(*options, "log", f"{url}@v1")
    assert [c["message"] for c in commits] == ["x", "Repository initialized"]
    nodes = run_json(*options, "ls", f"{url}@v1~0")["nodes"]
    assert nodes[1]["path"] == "/x" and nodes[1]["chunk_count"] == 3
    assert run_json(*options, "diff", f"{url}@v1~1", "@v1")["added_arrays"] == ["/x"]
    assert "no vrepo repository" in error_of(*options, "log", f"s3://{bucket}/elsewhere")
    assert "apply only to s3://" in error_of(*options, "log", "some/local/path")
    assert "unknown storage option" in run("-s", "colour=red", "log", url, code=2).stderr
