"""References: ``REPOSITORY[@REVISION]`` parsing, revision resolution, and where they are used."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
from vrepo._sync import run_sync
from vrepo.engine.reference import Reference, Revision, parse_reference, parse_revision
from vrepo.xarray.backend import VRepoBackendEntrypoint

SID = "0CHE4BJDYDQ2EZB98T6P"


@pytest.mark.parametrize(
    ("text", "location", "revision"),
    [
        ("data/ocean.vrepo", "data/ocean.vrepo", None),
        ("data/ocean.vrepo@main~2", "data/ocean.vrepo", "main~2"),
        ("s3://bucket/prefix@v1", "s3://bucket/prefix", "v1"),
        (f"./r@{SID}", "./r", SID),
        ("/home/a@b/r", "/home/a@b/r", None),  # '@' inside a path: no revision
        ("/home/a@b/r@v1.2_rc-1~3", "/home/a@b/r", "v1.2_rc-1~3"),
        ("r@x@tag:v1", "r@x", "tag:v1"),  # the last '@' with a valid revision wins
        ("r@main~", "r", "main~"),
        ("file:///tmp/r@branch:dev", "file:///tmp/r", "branch:dev"),
        ("r@bad name", "r@bad name", None),  # not a revision: part of the path
        ("r@a..b", "r@a..b", None),
        ("r@main~x", "r@main~x", None),
    ],
)
def test_parse_reference(text, location, revision):
    assert parse_reference(text) == Reference(location, revision)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("main", Revision("main")),
        ("v1~2", Revision("v1", None, 2)),
        ("main~", Revision("main", None, 1)),
        ("main~0", Revision("main")),
        ("tag:v1~10", Revision("v1", "tag", 10)),
        ("branch:dev", Revision("dev", "branch")),
        (f"snapshot:{SID}~1", Revision(SID, "snapshot", 1)),
    ],
)
def test_parse_revision(text, expected):
    parsed = parse_revision(text)
    assert parsed == expected
    assert parse_revision(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text", ["", "-x", "a..b", "x.json", "main~-1", "main~x", "head:main", "a/b", "a@b", "~2"]
)
def test_bad_revisions_are_refused(text):
    with pytest.raises(vrepo.InvalidArgumentError, match="is not a revision"):
        parse_revision(text)


@pytest.mark.parametrize(("text", "match"), [("r@", "nothing follows '@'"), ("@v1", "names no")])
def test_bad_references_are_refused(text, match):
    with pytest.raises(vrepo.InvalidArgumentError, match=match):
        parse_reference(text)


@pytest.fixture
def repo(tmp_path):
    """main: first -> a -> b -> c (tag v1 at a); branch dev from a with one commit."""
    repo = vrepo.Repository.create(tmp_path / "r")
    session = repo.writable_session()
    arr = zarr.create_array(session.store, name="x", shape=(4,), chunks=(1,), dtype="i4")
    ids = {}
    for i, name in enumerate("abc"):
        arr[i] = i + 1
        ids[name] = session.commit(name)
    repo.create_tag("v1", ids["a"])
    repo.create_branch("dev", ids["a"])
    dev = repo.writable_session("dev")
    zarr.open_array(dev.store, path="x")[3] = 9
    ids["dev"] = dev.commit("on dev")
    ids["first"] = repo.lookup_snapshot(ids["a"]).parent_id
    return repo, ids


def test_resolve_branches_tags_ids_and_ancestors(repo):
    repo, ids = repo
    assert repo.resolve("main") == ids["c"]
    assert repo.resolve("main~1") == ids["b"]
    assert repo.resolve("main~") == ids["b"]
    assert repo.resolve("main~3") == ids["first"]
    assert repo.resolve("v1") == repo.resolve("tag:v1") == ids["a"]
    assert repo.resolve("v1~1") == ids["first"]
    assert repo.resolve("dev") == repo.resolve("branch:dev") == ids["dev"]
    assert repo.resolve("dev~1") == ids["a"]
    assert repo.resolve(ids["b"]) == ids["b"]
    assert repo.resolve(f"{ids['c']}~2") == ids["a"]
    assert repo.resolve(f"snapshot:{ids['b']}") == ids["b"]


def test_going_back_past_the_first_snapshot_says_how_far_one_can_go(repo):
    repo, ids = repo
    with pytest.raises(vrepo.RefNotFoundError, match=r"main \(.*\) has only 3 ancestors.*~0 to ~3"):
        repo.resolve("main~4")
    with pytest.raises(vrepo.RefNotFoundError, match="has only 1 ancestor, so use ~0 to ~1"):
        repo.resolve("v1~2")
    with pytest.raises(vrepo.RefNotFoundError, match="has only 0 ancestors"):
        repo.resolve(f"{ids['first']}~1")


def test_unknown_names_list_what_exists(repo):
    repo, _ = repo
    with pytest.raises(
        vrepo.RefNotFoundError,
        match=r"no branch, tag or snapshot id 'nope' .*branches: dev, main; tags: v1",
    ):
        repo.resolve("nope")
    with pytest.raises(vrepo.RefNotFoundError, match="no tag 'dev'"):
        repo.resolve("tag:dev")
    with pytest.raises(vrepo.RefNotFoundError, match="no branch 'v1'"):
        repo.resolve("branch:v1")
    with pytest.raises(vrepo.RefNotFoundError, match=f"snapshot id '{SID}'"):
        repo.resolve(SID)  # a well-formed id that is not in the repository
    with pytest.raises(vrepo.SnapshotNotFoundError):
        repo.resolve(f"snapshot:{SID}")
    with pytest.raises(vrepo.InvalidArgumentError, match="is not a revision"):
        repo.resolve("two words")


def test_deleted_refs_say_so(repo):
    repo, _ = repo
    repo.delete_tag("v1")
    with pytest.raises(vrepo.RefNotFoundError, match="tag 'v1' was deleted"):
        repo.resolve("v1")


def _branch_named_like_a_tag(repo: vrepo.Repository, name: str, snapshot_id: str) -> None:
    """As a repository from before such names were refused holds it: written directly."""
    from vrepo.engine.refs import RefHead, new_operation, write_record

    head = RefHead("branch", name, None)
    run_sync(write_record(repo._objects.storage, head, "create", snapshot_id, new_operation()))


def test_a_branch_named_like_a_tag_is_refused_and_the_reverse(repo):
    repo, ids = repo
    with pytest.raises(vrepo.RefExistsError, match=r"a tag named 'v1' exists.*ambiguous"):
        repo.create_branch("v1", ids["b"])
    with pytest.raises(vrepo.RefExistsError, match=r"a branch named 'dev' exists.*ambiguous"):
        repo.create_tag("dev", ids["b"])
    assert repo.list_branches() == ["dev", "main"] and repo.list_tags() == ["v1"]


def test_a_name_both_branch_and_tag_must_be_disambiguated(repo):
    repo, ids = repo
    _branch_named_like_a_tag(repo, "v1", ids["b"])
    with pytest.raises(
        vrepo.InvalidArgumentError, match=r"'v1' is both a branch .* and a tag .*'branch:v1'"
    ):
        repo.resolve("v1")
    assert repo.resolve("branch:v1") == ids["b"]
    assert repo.resolve("tag:v1") == ids["a"]


def test_readonly_session_by_ref(repo):
    repo, ids = repo
    session = repo.readonly_session(ref="main~1")
    assert session.snapshot_id == ids["b"]
    assert zarr.open_array(session.store, path="x")[:].tolist() == [1, 2, 0, 0]
    assert repo.readonly_session(ref="dev").branch == "dev"  # a plain branch keeps its head
    with pytest.raises(vrepo.InvalidArgumentError, match="ref= alone"):
        repo.readonly_session("main", ref="v1")


def test_open_reference(repo, tmp_path):
    repo, ids = repo
    session = vrepo.open_reference(f"{tmp_path / 'r'}@v1")
    assert session.read_only and session.snapshot_id == ids["a"]
    assert vrepo.open_reference(tmp_path / "r").snapshot_id == ids["c"]  # default: main
    assert vrepo.open_reference(f"{tmp_path / 'r'}@dev~1").snapshot_id == ids["a"]
    assert vrepo.open_reference(f"file://{tmp_path / 'r'}@main~2").snapshot_id == ids["a"]
    opened, revision = vrepo.split_reference(f"{tmp_path / 'r'}@main~2")
    assert revision == "main~2" and opened.resolve(revision) == ids["a"]
    with pytest.raises(vrepo.RepositoryNotFoundError):
        vrepo.open_reference(f"{tmp_path / 'missing'}@v1")


def test_a_folder_named_like_a_reference_still_opens(tmp_path):
    odd = tmp_path / "data@v1"  # "data@v1" could be read as repository "data", tag "v1"
    repo = vrepo.Repository.create(odd)
    assert vrepo.split_reference(str(odd))[1] is None
    assert vrepo.open_reference(str(odd)).snapshot_id == repo.lookup_branch("main")
    assert vrepo.open_reference(f"{odd}@main").snapshot_id == repo.lookup_branch("main")


# --- the xarray backend -------------------------------------------------------------------


@pytest.fixture
def dataset_history(tmp_path):
    path = tmp_path / "ds.vrepo"
    repo = vrepo.Repository.create(path)
    session = repo.writable_session()
    full = xr.Dataset({"v": ("t", np.arange(9.0))}, coords={"t": np.arange(9)})
    full.isel(t=slice(0, 3)).to_zarr(session.store, mode="w", consolidated=False)
    repo.create_tag("v1", session.commit("3"))
    for stop in (6, 9):
        full.isel(t=slice(stop - 3, stop)).to_zarr(
            session.store, append_dim="t", consolidated=False
        )
        session.commit(str(stop))
    return path, full


def test_xarray_opens_path_at_revision(dataset_history):
    path, full = dataset_history
    opened = xr.open_dataset(f"{path}@main~1", engine="vrepo")
    xr.testing.assert_identical(opened.load(), full.isel(t=slice(0, 6)))
    xr.testing.assert_identical(
        xr.open_dataset(f"{path}@v1", engine="vrepo"), full.isel(t=[0, 1, 2])
    )
    guessed = xr.open_dataset(f"{path}@main~2")  # no engine=: recognised as a repository
    xr.testing.assert_identical(guessed.load(), full.isel(t=slice(0, 3)))
    xr.testing.assert_identical(xr.open_dataset(path, engine="vrepo").load(), full)
    xr.testing.assert_identical(
        xr.open_dataset(path, engine="vrepo", tag="v1").load(), full.isel(t=slice(0, 3))
    )


def test_xarray_guess_can_open_references(dataset_history, tmp_path):
    path, _ = dataset_history
    guess = VRepoBackendEntrypoint().guess_can_open
    assert guess(f"{path}@v1~1") and guess(f"{path}@anything") and guess(path)
    assert not guess(f"{tmp_path / 'elsewhere'}@v1")
    assert not guess(f"{path}@")
    assert not guess("s3://bucket/r@v1")


def test_xarray_reference_and_keywords_conflict(dataset_history):
    path, _ = dataset_history
    for keyword in ({"tag": "v1"}, {"branch": "main"}, {"snapshot_id": SID}):
        with pytest.raises(vrepo.InvalidArgumentError, match="already names revision 'v1'"):
            xr.open_dataset(f"{path}@v1", engine="vrepo", **keyword)
    with pytest.raises(vrepo.RefNotFoundError, match="has only 3 ancestors"):
        xr.open_dataset(f"{path}@main~4", engine="vrepo")


def test_a_snapshot_id_may_be_abbreviated_in_any_case(repo):
    repo, ids = repo
    for name in "abc":
        full = ids[name]
        others = [ids[n] for n in "abc" if n != name]
        n = next(k for k in range(4, 21) if all(o[:k] != full[:k] for o in others))
        assert repo.resolve(full[:n]) == full
        assert repo.resolve(full[:n].lower() + "~0") == full
        assert repo.resolve(f"snapshot:{full[:n].lower()}") == full
    assert repo.resolve(ids["b"][:12] + "~1") == ids["a"]
    with pytest.raises(vrepo.RefNotFoundError, match="no branch, tag or snapshot id"):
        repo.resolve("1ZZZ")  # an id's shape, no snapshot's start


def test_an_ambiguous_prefix_lists_the_candidates(repo):
    repo, _ = repo
    twins = ["1ABCD000000000000000", "1ABCD000000000000001"]
    for twin in twins:  # only their names matter: the prefix is refused before any is read
        run_sync(repo.storage.put(f"snapshots/{twin}", b"x"))
    with pytest.raises(vrepo.InvalidArgumentError, match="start of several snapshot ids") as info:
        repo.resolve("1abcd")
    assert all(twin in str(info.value) for twin in twins)
    assert "give more of the id" in str(info.value)


def test_ref_operations_take_any_revision(repo):
    repo, ids = repo
    repo.create_tag("v0", "main~2")
    assert repo.lookup_tag("v0") == ids["a"]
    repo.create_branch("fix", "v1")
    assert repo.lookup_branch("fix") == ids["a"]
    repo.reset_branch("fix", ids["c"][:10].lower())
    assert repo.lookup_branch("fix") == ids["c"]
    repo.create_tag("v0", "tag:v0")  # a retry of the same tag: returns normally
    with pytest.raises(vrepo.RefNotFoundError):
        repo.create_tag("v9", "nowhere~1")
    assert "v9" not in repo.list_tags()
