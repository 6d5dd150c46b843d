"""``vrepo expire``, ``vrepo gc`` and ``vrepo du``, with and without ``--json``."""

from __future__ import annotations

import datetime as dt
import re
import time

import numpy as np
import pytest
import zarr

import vrepo
from test_cli import error_of, run, run_json
from test_gc import WIDTH, _new_repo
from vrepo.cli._maintenance import parse_age

ROWS = 4


@pytest.fixture
def repo_path(tmp_path):
    path = tmp_path / "r.vrepo"
    repo = _new_repo(path, rows=ROWS)
    for value in (1.0, 2.0):
        session = repo.writable_session()
        zarr.open_array(session.store, path="x", mode="r+")[:] = value
        session.commit(f"all {value}")
    return path


def test_parse_age_takes_ages_and_times():
    assert parse_age("90d", "--older-than") == dt.timedelta(days=90)
    assert parse_age("1.5h", "--older-than") == dt.timedelta(minutes=90)
    assert parse_age("0s", "--older-than") == dt.timedelta(0)
    assert parse_age("2026-01-31T00:00", "--older-than") == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    with pytest.raises(vrepo.InvalidArgumentError, match="--older-than takes an age"):
        parse_age("soon", "--older-than")


def test_expire_then_gc_frees_the_overwritten_chunks(repo_path):
    run("tag", "create", repo_path, "keep", "main~1")
    out = run("expire", repo_path, "--older-than", "0s").stdout
    assert out.startswith("expired 1 snapshot(s)") and "vrepo gc" in out  # "create x"
    assert run_json("expire", repo_path, "--older-than", "0s") == {"expired": []}
    log = [e["message"] for e in run_json("log", repo_path)]
    assert log == ["all 2.0", "all 1.0", "Repository initialized"]  # the tagged one stays
    dry = run_json("gc", repo_path, "--older-than", "0s", "--dry-run")
    assert dry["dry_run"] and dry["chunks"] == 0  # made this second: not older than 0 s yet
    time.sleep(1.1)
    report = run_json("gc", repo_path, "--older-than", "0s")
    assert (report["snapshots"], report["chunks"]) == (1, 0)  # "create x" wrote no chunks
    run("tag", "delete", repo_path, "keep")
    run("expire", repo_path, "--older-than", "0s")
    time.sleep(1.1)
    text = run("gc", repo_path, "--older-than", "0s").stdout
    expected = (
        rf"deleted {ROWS + 3} object\(s\), 4\.\d KiB: {ROWS} chunks, 1 manifests, 1 snapshots, "
    )
    assert re.match(expected + r"1 transaction logs\nkept 2 snapshot\(s\); since the last", text)
    repo = vrepo.Repository.open(repo_path)
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session().store, path="x")[:], np.full((ROWS, WIDTH), 2.0)
    )
    assert len(list(repo.ancestry())) == 2


def test_du_shows_unique_and_shared_bytes(repo_path):
    usage = run_json("du", f"{repo_path}@main")
    assert usage["stored_bytes"] == ROWS * WIDTH * 8
    assert usage["unique_bytes"] == ROWS * WIDTH * 8  # main~1's chunks were all overwritten
    (x,) = usage["arrays"]
    assert x["path"] == "/x" and x["chunks"] == ROWS and x["shared_bytes"] == 0
    table = run("du", repo_path).stdout
    assert "/x" in table and "total" in table and "reclaimable now:" in table


def test_bad_ages_and_revisions_say_what_to_do(repo_path):
    assert "--older-than takes an age such as 90d" in error_of(
        "gc", repo_path, "--older-than", "last week"
    )
    assert "is in the future: give a time that has passed" in error_of(
        "gc", repo_path, "--older-than", "2999-01-01"
    )
    assert "drop '@main'" in error_of("gc", f"{repo_path}@main")
    assert "drop '@main'" in error_of("expire", f"{repo_path}@main", "--older-than", "1d")
    assert "does not exist" in error_of(
        "expire", repo_path, "--older-than", "1d", "--branch", "nope"
    )
