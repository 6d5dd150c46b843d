"""Progress of long operations: a bar when asked (or when a terminal watches), none in logs."""

from __future__ import annotations

import datetime as dt
import io
import sys

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
import vrepo.dask
from vrepo import _progress


class _Terminal(io.StringIO):
    """A standard error that says it is a terminal, and keeps what was written."""

    def isatty(self) -> bool:
        return True


def _target(tmp_path):
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    session = repo.writable_session()
    target = zarr.create_array(session.store, name="x", shape=(40,), chunks=(4,), dtype="f8")
    return repo, session, target


def test_a_local_scheduler_shows_a_rich_bar_of_the_blocks(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _, session, target = _target(tmp_path)
    vrepo.dask.store(da.ones(40, chunks=8), target, progress=True)
    assert "writing 5 blocks" in terminal.getvalue()
    assert session.status().chunks_written == {"/x": 10}


def test_by_default_only_a_terminal_sees_progress(tmp_path, monkeypatch, capfd):
    _, _, target = _target(tmp_path)
    vrepo.dask.store(da.ones(40, chunks=8), target)  # pytest's stderr is no terminal
    vrepo.dask.store(da.ones(40, chunks=8), target, progress=False)
    out, err = capfd.readouterr()
    assert "blocks" not in out + err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    vrepo.dask.store(da.ones(40, chunks=8), target)
    assert "writing 5 blocks" in terminal.getvalue()


def test_to_repo_passes_progress_on(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    ds = xr.Dataset({"t": ("x", np.arange(12.0))}).chunk({"x": 4})
    ds.vrepo.to_repo(repo, message="first", progress=False)
    assert terminal.getvalue() == ""
    ds.vrepo.to_repo(repo, mode="w", message="again", progress=True)
    assert "blocks" in terminal.getvalue()


@pytest.mark.slow
def test_a_distributed_client_shows_dask_s_own_bar(tmp_path, dask_client, capsys):
    _, session, target = _target(tmp_path)
    vrepo.dask.store(da.ones(40, chunks=8), target, progress=True)
    out, err = capsys.readouterr()
    assert "100%" in out + err  # distributed's text progress bar, finished
    assert session.status().chunks_written == {"/x": 10}


def test_garbage_collection_and_expiry_name_their_phases(tmp_path, monkeypatch):
    phases: list[str] = []
    from vrepo.engine import repo_maintenance

    monkeypatch.setattr(repo_maintenance, "steps", _recording_steps(phases))
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    for n in range(3):
        session = repo.writable_session()
        zarr.create_array(session.store, name=f"a{n}", shape=(2,), chunks=(1,), dtype="i1")
        session.commit(f"commit {n}")
    repo.expire_snapshots(older_than=vrepo_now(), progress=True)
    repo.garbage_collect(older_than=dt.timedelta(0), progress=True)
    assert any(p.startswith("walking the histories of 1 branches") for p in phases)
    assert any(p.startswith("recording the cuts") for p in phases)
    assert "finding what branches, tags and pending commits reach" in phases
    assert any(p.startswith("deleting") for p in phases)


def test_a_terminal_sees_the_phases(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with _progress.steps("collecting garbage", progress=True) as note:
        note("listing")
    assert "collecting garbage" in terminal.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    with _progress.steps("collecting garbage", progress=False) as note:
        note("listing")
    assert quiet.getvalue() == ""


def vrepo_now():
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def _recording_steps(phases: list[str]):
    import contextlib

    @contextlib.contextmanager
    def steps(title: str, *, progress: bool | None):
        assert progress is True
        yield phases.append

    return steps
