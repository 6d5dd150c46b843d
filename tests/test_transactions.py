"""Transactions: a ``with`` block commits its writes once on a clean exit, or nothing at all."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
from vrepo.errors import ConflictError, InvalidArgumentError


def _repo(tmp_path) -> vrepo.Repository:
    repo = vrepo.Repository.create(str(tmp_path / "r.vrepo"))
    session = repo.writable_session()
    zarr.create_array(session.store, name="x", shape=(4,), chunks=(1,), dtype="i4", fill_value=0)
    session.commit("setup")
    return repo


def _values(repo: vrepo.Repository, ref: str = "main") -> np.ndarray:
    return zarr.open_array(repo.readonly_session(ref=ref).store, path="x", mode="r")[:]


def test_a_clean_exit_commits_once(tmp_path) -> None:
    repo = _repo(tmp_path)
    tx = repo.transaction("main", message="two chunks", metadata={"run": 7}, author="Ada")
    with tx as store:
        array = zarr.open_array(store, path="x", mode="r+")
        array[0] = 1
        array[1] = 2
        np.testing.assert_array_equal(_values(repo), [0, 0, 0, 0])  # nothing visible yet
    assert tx.committed and tx.snapshot_id == repo.lookup_branch("main")
    assert tx.session.snapshot_id == tx.snapshot_id
    info = repo.lookup_snapshot(tx.snapshot_id)
    assert (info.message, info.metadata, info.author) == (
        "two chunks",
        {"run": 7},
        vrepo.Author("Ada"),
    )
    assert [i.message for i in repo.ancestry()][:2] == ["two chunks", "setup"]
    np.testing.assert_array_equal(_values(repo), [1, 2, 0, 0])
    assert "committed" in repr(tx)


def test_an_exception_discards_everything_and_propagates(tmp_path) -> None:
    repo = _repo(tmp_path)
    head = repo.lookup_branch("main")
    tx = repo.transaction(message="never lands")
    with pytest.raises(RuntimeError, match="half way"), tx as store:
        zarr.open_array(store, path="x", mode="r+")[0] = 5
        zarr.create_group(store, path="g")
        raise RuntimeError("half way")
    assert not tx.committed and tx.snapshot_id is None
    assert repo.lookup_branch("main") == head and not tx.session.has_uncommitted_changes
    np.testing.assert_array_equal(_values(repo), [0, 0, 0, 0])


def test_a_block_that_writes_nothing_commits_nothing_unless_asked(tmp_path) -> None:
    repo = _repo(tmp_path)
    head = repo.lookup_branch("main")
    tx = repo.transaction(message="nothing")
    with tx:
        pass
    assert tx.snapshot_id is None and repo.lookup_branch("main") == head
    empty = repo.transaction(message="a marker", allow_empty=True)
    with empty:
        pass
    assert empty.committed and repo.lookup_snapshot(empty.snapshot_id).parent_id == head


def test_a_conflict_at_the_end_raises_and_publishes_nothing(tmp_path) -> None:
    repo = _repo(tmp_path)
    tx = repo.transaction(message="loses")
    with pytest.raises(ConflictError, match="/x"), tx as store:
        zarr.open_array(store, path="x", mode="r+")[0] = 1
        other = repo.writable_session()
        zarr.open_array(other.store, path="x", mode="r+")[0] = 2
        winner = other.commit("meanwhile")
    assert repo.lookup_branch("main") == winner and tx.snapshot_id is None
    np.testing.assert_array_equal(_values(repo), [2, 0, 0, 0])
    assert tx.session.has_uncommitted_changes  # kept, as a failed commit keeps them


def test_disjoint_commits_meanwhile_are_rebased_onto(tmp_path) -> None:
    repo = _repo(tmp_path)
    tx = repo.transaction(message="rebased")
    with tx as store:
        zarr.open_array(store, path="x", mode="r+")[0] = 1
        other = repo.writable_session()
        zarr.open_array(other.store, path="x", mode="r+")[3] = 4
        other.commit("meanwhile")
    np.testing.assert_array_equal(_values(repo), [1, 0, 0, 4])


def test_xarray_writes_inside_a_transaction(tmp_path, a1b_dataset) -> None:
    repo = vrepo.Repository.create(str(tmp_path / "air.vrepo"))
    ds = a1b_dataset.isel(time=slice(0, 24))
    tx = repo.transaction(message="A1B, two years")
    with tx as store:
        ds.to_zarr(store, zarr_format=3, consolidated=False)
    back = xr.open_dataset(str(tmp_path / "air.vrepo"), engine="vrepo", snapshot_id=tx.snapshot_id)
    xr.testing.assert_identical(back.load(), ds)


def test_bad_arguments_are_refused_before_the_block_runs(tmp_path) -> None:
    repo = _repo(tmp_path)
    with pytest.raises(InvalidArgumentError, match="message must be a str"):
        repo.transaction(message=3)
    with pytest.raises(InvalidArgumentError):
        repo.transaction(message="m", rebase_with="mine")
    with pytest.raises(InvalidArgumentError):
        repo.transaction(message="m", author="<bad>")
    tx = repo.transaction(message="once")
    with tx:
        pass
    with pytest.raises(InvalidArgumentError, match="one with-block"), tx:
        pass
