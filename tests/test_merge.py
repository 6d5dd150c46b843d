"""Branch merges and reverts: three-way merges at node, metadata and chunk granularity."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import vrepo
from vrepo.cli import app
from vrepo.engine.conflicts import Conflict

ROWS, WIDTH = 8, 4  # one chunk per row


def _repo(tmp_path, name: str = "r", config: vrepo.RepoConfig | None = None) -> vrepo.Repository:
    repo = vrepo.Repository.create(tmp_path / name, config)
    session = repo.writable_session()
    array = zarr.create_array(
        session.store,
        name="x",
        shape=(ROWS, WIDTH),
        chunks=(1, WIDTH),
        dtype="i8",
        fill_value=-1,
        compressors=None,
    )
    array[:] = np.arange(ROWS)[:, None]
    session.commit("base")
    repo.create_branch("dev", "main")
    return repo


def _edit(repo, branch: str, rows: dict[int, int | None], message: str = "edit") -> str:
    """Set whole rows (one chunk each) to a value, or delete them (None)."""
    session = repo.writable_session(branch)
    array = zarr.open_array(session.store, path="x", mode="r+")
    for row, value in rows.items():
        array[row] = -1 if value is None else value  # all fill values: the chunk is deleted
    return session.commit(message)


def _rows(repo, ref: str = "main") -> list[int]:
    session = repo.readonly_session(ref=ref)
    return zarr.open_array(session.store, path="x", mode="r")[:, 0].tolist()


def test_disjoint_chunk_edits_merge_into_a_commit_with_two_parents(tmp_path):
    repo = _repo(tmp_path)
    dev = _edit(repo, "dev", {0: 100, 1: 101})
    main = _edit(repo, "main", {6: 600})
    result = repo.merge("dev", into="main", message="bring dev in")
    assert result.kind == "merge" and result.source_id == dev and not result.settled
    assert _rows(repo) == [100, 101, 2, 3, 4, 5, 600, 7]
    assert _rows(repo, "dev") == [100, 101, 2, 3, 4, 5, 6, 7]  # the source is left alone
    info = repo.lookup_snapshot(result.snapshot_id)
    assert info.parent_ids == (main, dev) and info.is_merge and info.message == "bring dev in"
    assert result.merge_base == repo.lookup_snapshot(main).parent_id
    # the history shows both lines, each snapshot once, newest first
    ids = [i.id for i in repo.ancestry()]
    assert ids[0] == result.snapshot_id and {main, dev} <= set(ids)
    assert len(ids) == len(set(ids)) == 5  # merge, main's, dev's, base, the first
    assert repo.diff("main~1", "main").chunks_of("/x").changed == 2  # dev's rows, from main
    again = repo.merge("dev", into="main")
    assert again.kind == "up-to-date" and again.snapshot_id == result.snapshot_id


def test_a_branch_that_did_not_move_is_fast_forwarded_unless_told_otherwise(tmp_path):
    repo = _repo(tmp_path)
    before = repo.lookup_branch("main")
    dev = _edit(repo, "dev", {3: 30})
    result = repo.merge("dev")
    assert (result.kind, result.snapshot_id, result.merge_base) == ("fast-forward", dev, before)
    assert repo.lookup_branch("main") == dev
    assert repo.branch_history("main")[0].action == "reset"
    dev2 = _edit(repo, "dev", {4: 40})
    forced = repo.merge("dev", fast_forward=False)
    assert forced.kind == "merge"
    assert repo.lookup_snapshot(forced.snapshot_id).parent_ids == (dev, dev2)
    assert _rows(repo) == [0, 1, 2, 30, 40, 5, 6, 7]


def test_different_changes_to_one_chunk_conflict_and_nothing_is_committed(tmp_path):
    repo = _repo(tmp_path)
    _edit(repo, "dev", {2: 20, 3: 30})
    main = _edit(repo, "main", {3: 31, 5: 50})
    with pytest.raises(vrepo.ConflictError, match="1 conflict") as caught:
        repo.merge("dev")
    assert caught.value.conflicts == [Conflict("chunks", "/x", ((3, 0),))]
    assert "strategy='source-wins'" in str(caught.value)
    assert repo.lookup_branch("main") == main  # nothing committed
    theirs = repo.merge("dev", strategy="source-wins")
    assert theirs.settled == (Conflict("chunks", "/x", ((3, 0),)),)
    assert _rows(repo) == [0, 1, 20, 30, 4, 50, 6, 7]


def test_dest_wins_keeps_the_destinations_chunks(tmp_path):
    repo = _repo(tmp_path)
    _edit(repo, "dev", {2: 20, 3: 30})
    _edit(repo, "main", {3: 31})
    repo.merge("dev", strategy="dest-wins")
    assert _rows(repo) == [0, 1, 20, 31, 4, 5, 6, 7]


def test_the_same_change_on_both_branches_is_no_conflict(tmp_path):
    repo = _repo(tmp_path)  # its chunks are small: inline refs, equal when their bytes are
    _edit(repo, "dev", {1: 11, 2: 22, 3: None})
    _edit(repo, "main", {1: 11, 3: None})
    for branch in ("dev", "main"):
        session = repo.writable_session(branch)
        zarr.open_array(session.store, path="x", mode="r+").attrs["units"] = "K"
        session.commit("units")
    assert not repo.merge("dev").settled
    assert _rows(repo) == [0, 11, 22, -1, 4, 5, 6, 7]
    session = repo.readonly_session()
    assert zarr.open_array(session.store, path="x", mode="r").attrs["units"] == "K"
    assert repo.diff("main~1", "main").chunks_of("/x").changed == 1  # row 2 only


def test_metadata_conflicts_need_their_own_choice(tmp_path):
    repo = _repo(tmp_path)
    for branch, value in (("dev", "from dev"), ("main", "from main")):
        session = repo.writable_session(branch)
        zarr.open_array(session.store, path="x", mode="r+").attrs["note"] = value
        session.commit(f"note on {branch}")
    _edit(repo, "dev", {0: 9})
    with pytest.raises(vrepo.ConflictError) as caught:
        repo.merge("dev", strategy="source-wins")  # chunks only: the metadata still conflicts
    assert [c.kind for c in caught.value.conflicts] == ["metadata"]
    result = repo.merge("dev", metadata_strategy="source-wins")
    assert result.settled == (Conflict("metadata", "/x"),)
    array = zarr.open_array(repo.readonly_session().store, path="x", mode="r")
    assert array.attrs["note"] == "from dev" and array[0, 0] == 9


def test_nodes_added_and_deleted_on_one_side_are_taken(tmp_path):
    repo = _repo(tmp_path)
    session = repo.writable_session("dev")
    y = zarr.create_array(session.store, name="g/y", shape=(3,), chunks=(1,), dtype="f4")
    y[:] = [1.0, 2.0, 3.0]
    session.commit("add g/y")
    session = repo.writable_session("main")
    zarr.create_group(session.store, path="h")
    session.commit("add h")
    repo.merge("dev")
    store = repo.readonly_session().store
    assert zarr.open_array(store, path="g/y", mode="r")[:].tolist() == [1.0, 2.0, 3.0]
    assert isinstance(zarr.open(store, path="h", mode="r"), zarr.Group)
    session = repo.writable_session("dev")
    group = zarr.open_group(session.store, mode="r+")
    del group["g/y"]
    session.commit("drop g/y")
    repo.merge("dev")
    assert "y" not in zarr.open_group(repo.readonly_session().store, path="g", mode="r")


def test_a_node_deleted_on_one_side_and_changed_on_the_other_conflicts(tmp_path):
    repo = _repo(tmp_path)
    session = repo.writable_session("dev")
    del zarr.open_group(session.store, mode="r+")["x"]
    session.commit("drop x")
    _edit(repo, "main", {0: 5})
    with pytest.raises(vrepo.ConflictError) as caught:
        repo.merge("dev")
    assert [c.kind for c in caught.value.conflicts] == ["delete_of_updated_node"]
    repo.merge("dev", metadata_strategy="source-wins")
    assert "x" not in zarr.open_group(repo.readonly_session().store, mode="r")


def test_bad_strategies_are_refused_before_anything_is_read(tmp_path):
    repo = _repo(tmp_path)
    with pytest.raises(vrepo.InvalidArgumentError, match="strategy must be one of"):
        repo.merge("dev", strategy="ours")
    with pytest.raises(vrepo.InvalidArgumentError, match="metadata_strategy"):
        repo.revert("main", metadata_strategy="theirs")
    with pytest.raises(vrepo.RefNotFoundError):
        repo.merge("nope")


def test_revert_commits_the_inverse_of_one_snapshot(tmp_path):
    repo = _repo(tmp_path)
    first = _edit(repo, "main", {1: 10, 2: 20}, "first")
    _edit(repo, "main", {5: 50}, "second")
    result = repo.revert(first)
    assert result.kind == "revert" and result.merge_base == first
    assert _rows(repo) == [0, 1, 2, 3, 4, 50, 6, 7]
    info = repo.lookup_snapshot(result.snapshot_id)
    assert info.message.startswith(f"Revert {first}") and not info.is_merge
    _edit(repo, "main", {5: 55}, "third")
    second = repo.resolve("main~2")  # its row 5 was changed since, by "third"
    with pytest.raises(vrepo.ConflictError):
        repo.revert(second)
    with pytest.raises(vrepo.InvalidArgumentError, match="first snapshot"):
        repo.revert(list(repo.ancestry())[-1].id)


def test_appends_along_one_dimension_on_both_branches_conflict_with_a_message(
    tmp_path, a1b_dataset
):
    repo = vrepo.Repository.create(tmp_path / "air")
    a1b_dataset.isel(time=slice(0, 100)).vrepo.to_repo(repo, message="first 100 years")
    repo.create_branch("dev", "main")
    a1b_dataset.isel(time=slice(100, 120)).vrepo.to_repo(repo, branch="dev", append_dim="time")
    a1b_dataset.isel(time=slice(120, 140)).vrepo.to_repo(repo, append_dim="time")
    with pytest.raises(vrepo.ConflictError) as caught:
        repo.merge("dev")
    kinds = {c.kind for c in caught.value.conflicts}
    assert "appended_on_both" in kinds
    assert "appended to along one dimension on both branches ('time')" in str(caught.value)


def test_real_data_appended_on_one_branch_and_region_edited_on_another(tmp_path, a1b_dataset):
    repo = vrepo.Repository.create(tmp_path / "air")
    first = a1b_dataset.isel(time=slice(0, 100))
    first.vrepo.to_repo(
        repo, message="first 100 years", encoding={"air_temperature": {"chunks": (10, 37, 49)}}
    )
    repo.create_branch("fix", "main")
    fixed = first.isel(time=slice(20, 40))[["air_temperature"]] + 1.0
    fixed = fixed.drop_vars([n for n in fixed.variables if "time" not in fixed[n].dims])
    fixed.vrepo.to_repo(repo, branch="fix", region={"time": slice(20, 40)}, mode="r+")
    a1b_dataset.isel(time=slice(100, 150)).vrepo.to_repo(repo, append_dim="time")
    result = repo.merge("fix")
    assert result.kind == "merge"
    merged = xr.open_dataset(tmp_path / "air", engine="vrepo").load()
    expected = a1b_dataset.isel(time=slice(0, 150)).copy(deep=True)
    expected["air_temperature"][20:40] = expected["air_temperature"][20:40] + 1.0
    xr.testing.assert_identical(merged, expected)


def test_collection_keeps_a_merged_branchs_snapshots_after_it_is_deleted(tmp_path):
    repo = _repo(tmp_path)
    dev = _edit(repo, "dev", {0: 1000})
    _edit(repo, "main", {7: 7000})
    repo.merge("dev")
    repo.delete_branch("dev")
    repo.garbage_collect(older_than=dt.timedelta(0))
    assert repo.lookup_snapshot(dev).id == dev
    assert repo.readonly_session(snapshot_id=dev)  # still readable
    assert _rows(repo, dev) == [1000, 1, 2, 3, 4, 5, 6, 7]
    assert dev in [i.id for i in repo.ancestry()]


def test_opaque_objects_merge_key_by_key(tmp_path):
    from zarr.core.buffer import cpu

    from vrepo._sync import run_sync

    repo = _repo(tmp_path)
    for branch, key in (("dev", "notes/a.txt"), ("main", "notes/b.txt")):
        session = repo.writable_session(branch)
        run_sync(session.store.set(key, cpu.Buffer.from_bytes(key.encode())))
        session.commit(f"{key} on {branch}")
    repo.merge("dev")
    store = repo.readonly_session().store
    proto = cpu.buffer_prototype
    got = [run_sync(store.get(k, proto)).to_bytes() for k in ("notes/a.txt", "notes/b.txt")]
    assert got == [b"notes/a.txt", b"notes/b.txt"]


# --- a model of two branches, merged, against a plain-Python three-way merge -----------------

_edits = st.dictionaries(st.integers(0, ROWS - 1), st.integers(100, 103), max_size=ROWS)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    dev_edits=st.lists(_edits, min_size=1, max_size=3),
    main_edits=st.lists(_edits, max_size=3),
    strategy=st.sampled_from(["fail", "source-wins", "dest-wins"]),
    stored=st.booleans(),
)
def test_merges_agree_with_a_plain_three_way_merge(
    tmp_path_factory, dev_edits, main_edits, strategy, stored
):
    # stored: every chunk its own object, refs kept in manifest pieces of 3 chunks
    config = vrepo.RepoConfig(inline_threshold_bytes=0, manifest_split_refs=3) if stored else None
    repo = _repo(tmp_path_factory.mktemp("model"), config=config)
    base = dict(enumerate(_rows(repo)))
    sides = {"dev": dict(base), "main": dict(base)}
    touched: dict[str, set[int]] = {"dev": set(), "main": set()}
    for branch, edits in (("dev", dev_edits), ("main", main_edits)):
        for edit in edits:
            if edit:
                _edit(repo, branch, edit)
                sides[branch].update(edit)
                touched[branch].update(edit)
    # inline chunks written alike on both sides are the same change; stored ones never are
    both = touched["dev"] & touched["main"]
    clash = both if stored else {r for r in both if sides["dev"][r] != sides["main"][r]}
    head = repo.lookup_branch("main")
    if clash and strategy == "fail":
        with pytest.raises(vrepo.ConflictError) as caught:
            repo.merge("dev", strategy=strategy)
        (conflict,) = caught.value.conflicts
        assert sorted(row for row, _ in conflict.chunks) == sorted(clash)
        assert repo.lookup_branch("main") == head
        return
    repo.merge("dev", strategy=strategy)
    expected = dict(sides["main"])
    for row in touched["dev"]:
        if row not in clash or strategy == "source-wins":  # (alike on both: either)
            expected[row] = sides["dev"][row]
    assert _rows(repo) == [expected[r] for r in range(ROWS)]


# --- the command line -------------------------------------------------------------------------


def test_cli_merge_and_revert(tmp_path):
    repo = _repo(tmp_path)
    path = str(tmp_path / "r")
    _edit(repo, "dev", {0: 5, 1: 6})
    _edit(repo, "main", {1: 7})
    runner = CliRunner()
    refused = runner.invoke(app, ["merge", path, "dev"])
    assert refused.exit_code == 1
    assert "--strategy source-wins" in refused.output and "strategy=" not in refused.output
    done = runner.invoke(app, ["merge", path, "dev", "--strategy", "dest-wins", "-m", "in"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("merged dev into main: ")
    assert "settled by strategy: /x: chunks written by both" in done.output
    assert _rows(repo) == [5, 7, 2, 3, 4, 5, 6, 7]
    graph = runner.invoke(app, ["log", path, "--graph"])
    lines = graph.output.splitlines()
    assert lines[0].startswith("* ") and lines[1] == "|\\"
    assert any(line.startswith("|/") for line in lines)
    logged = json.loads(runner.invoke(app, ["log", path, "-n", "1", "--json"]).output)
    assert len(logged[0]["parent_ids"]) == 2
    shown = runner.invoke(app, ["show", path])
    assert "merged:" in shown.output and "changes from first parent:" in shown.output
    reverted = runner.invoke(app, ["revert", path, "main", "--json"])
    assert reverted.exit_code == 0, reverted.output
    assert json.loads(reverted.output)["kind"] == "revert"
    assert _rows(repo) == [0, 7, 2, 3, 4, 5, 6, 7]
    bad = runner.invoke(app, ["merge", path, "dev", "--metadata-strategy", "ours"])
    assert bad.exit_code == 2 and "--metadata-strategy" in bad.output


def test_history_html_shows_every_parent(tmp_path):
    repo = _repo(tmp_path)
    dev = _edit(repo, "dev", {0: 1})
    main = _edit(repo, "main", {7: 1})
    repo.merge("dev")
    html = repo.ancestry()._repr_html_()
    assert "<th>parents</th>" in html
    assert f"<code>{main}</code><br><code>{dev}</code>" in html


def test_a_commit_landing_during_a_merge_is_rebased_over(tmp_path, monkeypatch):
    from vrepo.engine import merge as merging

    repo = _repo(tmp_path)
    dev = _edit(repo, "dev", {0: 10})
    _edit(repo, "main", {7: 70})
    original = merging.merge_into_content
    landed = []

    async def with_a_commit_meanwhile(*args, **kwargs):
        outcome = await original(*args, **kwargs)
        other = await asyncio.to_thread(vrepo.Repository.open, tmp_path / "r")
        landed.append(await asyncio.to_thread(_edit, other, "main", {4: 40}, "meanwhile"))
        return outcome

    monkeypatch.setattr(merging, "merge_into_content", with_a_commit_meanwhile)
    result = repo.merge("dev")
    info = repo.lookup_snapshot(result.snapshot_id)
    assert info.parent_ids == (landed[0], dev)  # rebased onto the commit that landed
    assert _rows(repo) == [10, 1, 2, 3, 40, 5, 6, 70]
