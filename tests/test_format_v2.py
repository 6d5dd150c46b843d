"""Repositories in on-storage format version 2 (one manifest per array, no history index)
stay readable and writable: ``tests/data/format_v2/`` was written by vrepo at commit c7635e7
(see ``tests/data/make_format_v2.py``). A first commit to an array cuts its manifest into
pieces; the history walks across snapshots with and without an index."""

from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import vrepo
from vrepo._sync import run_sync

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_format_v2 import expected_grid  # noqa: E402

FIXTURE = DATA / "format_v2"


@pytest.fixture
def v2_repo(tmp_path: Path) -> Path:
    path = tmp_path / "v2.vrepo"
    shutil.copytree(FIXTURE, path)
    return path


def _grid(repo: vrepo.Repository, ref: str) -> np.ndarray:
    return zarr.open_array(repo.readonly_session(ref=ref).store, path="grid", mode="r")[:]


def test_the_fixture_is_version_2() -> None:
    snapshots = list((FIXTURE / "snapshots").iterdir())
    assert len(snapshots) == 41
    for path in snapshots:
        assert struct.unpack_from("<H", path.read_bytes(), 8)[0] == 2


def test_version_2_repository_reads(v2_repo: Path) -> None:
    repo = vrepo.Repository.open(v2_repo)
    np.testing.assert_array_equal(_grid(repo, "main"), expected_grid(40))
    np.testing.assert_array_equal(_grid(repo, "v1"), expected_grid(20))
    np.testing.assert_array_equal(_grid(repo, "side"), expected_grid(10))
    np.testing.assert_array_equal(_grid(repo, "main~25"), expected_grid(15))
    messages = [i.message for i in repo.ancestry()]
    assert messages == [f"commit {i}" for i in range(40, 0, -1)] + ["Repository initialized"]
    assert repo.diff("main~1", "main").chunks[0].changed == 10


def test_commits_to_a_version_2_repository_cut_the_manifest_into_pieces(v2_repo: Path) -> None:
    repo = vrepo.Repository.open(v2_repo)
    repo.save_config(vrepo.RepoConfig(inline_threshold_bytes=64, manifest_split_refs=50))
    repo = vrepo.Repository.open(v2_repo)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="grid", mode="r+")[0:2, 0:4] = -1
    session.commit("first commit by format version 3")
    expected = expected_grid(40)
    expected[0:2, 0:4] = -1
    np.testing.assert_array_equal(_grid(repo, "main"), expected)
    head = run_sync(repo._objects.get_snapshot(repo.lookup_branch("main")))
    grid = head.node("/grid")
    assert [m.count for m in grid.manifests] == [50] * 6  # 5 rows of 10 chunks per piece
    assert {m.split for m in grid.manifests} == {(5, 10)}
    diff = repo.diff("main~1", "main")
    assert (diff.chunks[0].added, diff.chunks[0].changed, diff.chunks[0].removed) == (0, 1, 0)

    session = repo.writable_session("main")
    zarr.open_array(session.store, path="grid", mode="r+")[58:60, 36:40] = -2
    session.commit("second")
    expected[58:60, 36:40] = -2
    np.testing.assert_array_equal(_grid(vrepo.Repository.open(v2_repo), "main"), expected)
    after = run_sync(repo._objects.get_snapshot(repo.lookup_branch("main")))
    before_ids = [m.id for m in grid.manifests]
    after_ids = [m.id for m in after.node("/grid").manifests]
    assert after_ids[:5] == before_ids[:5] and after_ids[5] != before_ids[5]  # one piece new
    messages = [i.message for i in repo.ancestry()]
    assert messages[:3] == ["second", "first commit by format version 3", "commit 40"]
    assert len(messages) == 43
    np.testing.assert_array_equal(_grid(repo, "main~2"), expected_grid(40))


def test_newer_files_name_version_3(v2_repo: Path) -> None:
    repo = vrepo.Repository.open(v2_repo)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="grid", mode="r+")[0, 0] = 7
    sid = session.commit("by version 3")
    data = (v2_repo / "snapshots" / sid).read_bytes()
    assert struct.unpack_from("<H", data, 8)[0] == vrepo.format.FORMAT_VERSION == 3
