"""DataTrees: ``dt.vrepo.to_repo`` writes every group in one commit, ``xr.open_datatree`` and
``xr.open_groups`` with ``engine="vrepo"`` read any version back, as plain zarr would.

The tree is real data: iris-sample-data's A1B air temperature (its coordinates in ``/a1b``,
inherited by ``/a1b/air``) and esmvaltool-sample-data's MIROC6 monthly air temperature
(``/miroc6``, on its own grid and calendar). Tests named ``*dask*`` write dask arrays.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import dask
import esmvaltool_sample_data
import pytest
import xarray as xr
import zarr

import vrepo
import vrepo.xarray
from vrepo.xarray import datatree_to_repo
from xarray_checks import assert_same_as_plain_zarr, failing_from_block

MIROC6_TA = (
    Path(esmvaltool_sample_data.__file__).parent
    / "data/timeseries/CMIP6/CMIP/MIROC/MIROC6/historical/r1i1p1f1/Amon/ta/gn/v20190311"
)
MIROC6_FILE = "ta_Amon_MIROC6_historical_r1i1p1f1_gn"
FIRST, REST = slice(0, 120), slice(120, None)  # A1B: 120 years each; MIROC6: 1970s, 1980s


@pytest.fixture(scope="module")
def a1b(a1b_dataset: xr.Dataset) -> xr.Dataset:
    return a1b_dataset


@pytest.fixture(scope="module")
def miroc6() -> xr.Dataset:
    """MIROC6 ta, 1970-1989 monthly (240 steps), in memory, encodings trimmed like A1B's."""
    files = [MIROC6_TA / f"{MIROC6_FILE}_{d}01-{d + 9}12.nc" for d in (1970, 1980)]
    ds = concat_time(*(xr.open_dataset(f).load() for f in files))
    for name in ds.variables:
        ds[name].encoding = {
            k: v for k, v in ds[name].encoding.items() if k in ("units", "calendar", "dtype")
        }
    return ds


def concat_time(*parts: xr.Dataset) -> xr.Dataset:
    """The parts one after the other in time; variables without time stay as they are."""
    return xr.concat(parts, "time", data_vars="minimal")


def tree_of(a1b: xr.Dataset, miroc6: xr.Dataset) -> xr.DataTree:
    """``/`` (attributes only), ``/a1b`` (coordinates, bounds), ``/a1b/air`` (the data, its
    coordinates inherited from ``/a1b``) and ``/miroc6``."""
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs={"title": "air temperature, two models"}),
            "/a1b": a1b.drop_vars("air_temperature"),
            "/a1b/air": a1b[["air_temperature"]].drop_vars(list(a1b.coords)),
            "/miroc6": miroc6,
        }
    )


@pytest.fixture(scope="module")
def tree(a1b, miroc6) -> xr.DataTree:
    return tree_of(a1b, miroc6)


@pytest.fixture(scope="module")
def first(a1b, miroc6) -> xr.DataTree:
    return tree_of(a1b.isel(time=FIRST), miroc6.isel(time=FIRST))


@pytest.fixture(scope="module")
def rest(a1b, miroc6) -> xr.DataTree:
    return tree_of(a1b.isel(time=REST), miroc6.isel(time=REST))


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "air.vrepo"


@pytest.fixture
def repo(path) -> vrepo.Repository:
    return vrepo.Repository.create(path)


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


def plain_zarr(tree: xr.DataTree, where: Path) -> zarr.storage.LocalStore:
    store = zarr.storage.LocalStore(where)
    tree.to_zarr(store, mode="w", zarr_format=3, consolidated=False)
    return store


def open_plain(store: zarr.storage.LocalStore) -> xr.DataTree:
    return xr.open_datatree(store, engine="zarr", consolidated=False, zarr_format=3)


def assert_same_tree(got: xr.DataTree, reference: xr.DataTree) -> None:
    """The same tree (inheritance included), and per group the values, attributes and
    encoding plain zarr gives."""
    xr.testing.assert_identical(got.load(), reference.load())
    for group in reference.groups:
        own = got[group].to_dataset(inherit=False), reference[group].to_dataset(inherit=False)
        assert_same_as_plain_zarr(*own)


def snapshots(repo: vrepo.Repository) -> list[str]:
    return [s.id for s in repo.ancestry()]


# --- writing and reading a tree ------------------------------------------------------------


def test_tree_round_trips_like_plain_zarr(tmp_path, path, repo, tree):
    before = snapshots(repo)
    snapshot = tree.vrepo.to_repo(repo, message="two models")
    assert snapshots(repo) == [snapshot, *before]  # every group, one commit
    assert next(repo.ancestry()).message == "two models"
    reference = open_plain(plain_zarr(tree, tmp_path / "plain.zarr"))
    assert_same_tree(xr.open_datatree(path, engine="vrepo"), reference)
    assert_same_tree(xr.open_datatree(path), reference)  # the engine is guessed


def test_inherited_coordinates_are_stored_once_as_to_zarr_does(tmp_path, path, repo, tree):
    tree.vrepo.to_repo(repo)
    stored = zarr.open_group(repo.readonly_session().store, mode="r")
    plain = zarr.open_group(plain_zarr(tree, tmp_path / "plain.zarr"), mode="r")
    for group in ("a1b", "a1b/air", "miroc6"):
        assert sorted(stored[group].array_keys()) == sorted(plain[group].array_keys())
    assert "time" not in stored["a1b/air"]  # inherited from /a1b, not copied
    air = xr.open_datatree(path, engine="vrepo")["a1b/air"]
    xr.testing.assert_identical(air["time"], tree["a1b/air"]["time"])

    copies = repo.writable_session()
    datatree_to_repo(tree, copies, group="copies", write_inherited_coords=True)
    assert "time" in zarr.open_group(copies.store, path="copies/a1b/air", mode="r")


def test_open_groups_gives_the_datasets_plain_zarr_gives(tmp_path, path, repo, tree):
    tree.vrepo.to_repo(repo)
    got = xr.open_groups(path, engine="vrepo")
    reference = xr.open_groups(
        plain_zarr(tree, tmp_path / "plain.zarr"), engine="zarr", consolidated=False
    )
    assert sorted(got) == sorted(reference) == sorted(tree.groups)
    for group, ds in reference.items():
        assert_same_as_plain_zarr(got[group], ds)


def test_time_travel_with_every_kind_of_reference(path, repo, first, rest, tree):
    repo.create_tag("v1", first.vrepo.to_repo(repo))
    rest.vrepo.to_repo(repo, mode="a")
    v1 = repo.lookup_tag("v1")
    for old in (
        xr.open_datatree(f"{path}@v1", engine="vrepo"),
        xr.open_datatree(path, engine="vrepo", tag="v1"),
        xr.open_datatree(repo, engine="vrepo", snapshot_id=v1),
        xr.open_datatree(repo.readonly_session(tag="v1"), engine="vrepo"),
        xr.open_datatree(f"{path}@main~1", engine="vrepo"),
        xr.open_datatree(path, engine="vrepo", tag="v1", chunks={}),  # not "PATH@v1": xarray
    ):  # 2025.6 stats the path to tokenize dask chunks, and "PATH@v1" is no file
        xr.testing.assert_identical(old.load(), first)
    groups = xr.open_groups(f"{path}@v1", engine="vrepo")
    assert sorted(groups) == sorted(first.groups)
    xr.testing.assert_identical(groups["/miroc6"], first["miroc6"].to_dataset())
    xr.testing.assert_identical(xr.open_datatree(path, engine="vrepo").load(), tree)
    sub = xr.open_datatree(path, engine="vrepo", tag="v1", group="a1b")
    expected = first["a1b"].copy()
    expected.name = None  # a subtree opens as a tree of its own
    xr.testing.assert_identical(sub.load(), expected)


def test_decoding_options_reach_every_group(path, repo, tree):
    tree.vrepo.to_repo(repo)
    raw = xr.open_datatree(path, engine="vrepo", decode_cf=False)
    assert raw["miroc6"]["time"].dtype.kind == "f"
    assert raw["a1b"]["time"].dtype.kind == "f"
    assert xr.open_dataset(path, engine="vrepo", group="miroc6", decode_cf=False).time.dtype == "f8"
    untimed = xr.open_groups(path, engine="vrepo", decode_times=False, drop_variables="ta")
    assert untimed["/miroc6"]["time"].dtype.kind == "f" and "ta" not in untimed["/miroc6"]


# --- appends ---------------------------------------------------------------------------------


def test_append_grows_every_group_in_one_commit(tmp_path, path, repo, first, rest):
    v1 = first.vrepo.to_repo(repo)
    v2 = rest.vrepo.to_repo(repo, mode="a")  # each group along its own time axis
    assert snapshots(repo)[:2] == [v2, v1]
    assert next(repo.ancestry()).message == "Append along time to /a1b, /miroc6, /a1b/air"

    plain = plain_zarr(first, tmp_path / "plain.zarr")  # DataTree.to_zarr cannot append:
    for group in ("a1b", "a1b/air", "miroc6"):  # so append group by group, as users do
        own = rest[group].to_dataset(inherit=False)
        own.to_zarr(plain, group=group, append_dim="time", zarr_format=3, consolidated=False)
    assert_same_tree(xr.open_datatree(path, engine="vrepo"), open_plain(plain))


def test_append_into_a_session_leaves_the_commit_to_the_caller(path, repo, first, rest, tree):
    head = first.vrepo.to_repo(repo)
    session = repo.writable_session()
    assert datatree_to_repo(rest, session, append_dim="time") is None
    assert repo.lookup_branch("main") == head  # nothing published yet
    assert set(session.status().chunks_written) >= {"/a1b/air/air_temperature", "/miroc6/ta"}
    snapshot = session.commit("the rest")
    xr.testing.assert_identical(xr.open_datatree(path, engine="vrepo").load(), tree)
    assert snapshots(repo)[:2] == [snapshot, head]


def test_append_loop_starts_from_nothing_and_adds_groups(path, repo, first, rest, tree):
    first.vrepo.to_repo(repo, append_dim="time")  # nothing stored yet: this creates it
    grown = rest.copy()
    grown["/extra"] = xr.DataTree(xr.Dataset({"flag": ("x", [1, 2])}))
    grown.vrepo.to_repo(repo, append_dim="time")
    got = xr.open_datatree(path, engine="vrepo").load()
    xr.testing.assert_identical(got["a1b"], tree["a1b"])
    xr.testing.assert_identical(got["extra"].to_dataset(), grown["extra"].to_dataset())


def test_equal_times_add_variables_instead_of_appending(path, repo, first):
    first.vrepo.to_repo(repo)
    more = first.copy()
    more["miroc6"] = more["miroc6"].assign(ta_c=more["miroc6"]["ta"] - 273.15)
    more.vrepo.to_repo(repo, mode="a")  # the same times: xarray's "a", nothing grows
    got = xr.open_datatree(path, engine="vrepo").load()
    xr.testing.assert_identical(got, more)
    assert next(repo.ancestry()).message.startswith("Write tree /")


def test_append_only_mode_adds_variables_but_overwrites_none(path, repo, first, rest, tree):
    static = xr.Dataset({"mask": ("y", [1, 0, 1])})
    with_static = first.copy()
    with_static["static"] = xr.DataTree(static)
    with_static.vrepo.to_repo(repo)
    more = rest.copy()
    more["static"] = xr.DataTree(xr.Dataset({"mask": ("y", [9, 9, 9]), "new": ("y", [4, 5, 6])}))
    more.vrepo.to_repo(repo, mode="a-", append_dim="time")
    got = xr.open_datatree(path, engine="vrepo").load()
    xr.testing.assert_identical(got["a1b"], tree["a1b"])
    xr.testing.assert_identical(got["static"].to_dataset(), static.assign(new=("y", [4, 5, 6])))


def overlapping(first: xr.DataTree, rest: xr.DataTree) -> xr.DataTree:
    """``rest``, but /miroc6 repeats half of the stored times: only that group is wrong."""
    bad = rest.copy()
    both = concat_time(first["miroc6"].to_dataset(), rest["miroc6"].to_dataset())
    bad["miroc6"] = xr.DataTree(both.isel(time=slice(60, 180)))
    return bad


def test_a_bad_append_in_any_group_commits_nothing(path, repo, first, rest):
    head = first.vrepo.to_repo(repo)
    with pytest.raises(vrepo.InvalidArgumentError, match=r"group '/miroc6': .* overlap"):
        overlapping(first, rest).vrepo.to_repo(repo, mode="a")
    missing = rest.copy()
    del missing["miroc6"]
    with pytest.raises(vrepo.InvalidArgumentError, match="'/miroc6' is stored along"):
        missing.vrepo.to_repo(repo, append_dim="time")
    assert repo.lookup_branch("main") == head and len(snapshots(repo)) == 2
    xr.testing.assert_identical(xr.open_datatree(path, engine="vrepo").load(), first)


def test_a_failing_group_leaves_the_session_as_it_was(repo, first, rest, tree):
    first.vrepo.to_repo(repo)
    session = repo.writable_session()
    status = session.status()
    with pytest.raises(vrepo.InvalidArgumentError, match="overlap"):
        datatree_to_repo(overlapping(first, rest), session, mode="a")
    # /, /a1b and /miroc6 are written before /a1b/air's encoding turns out to be refused:
    with pytest.raises(vrepo.InvalidArgumentError, match=r"group '/a1b/air'.*encoding"):
        datatree_to_repo(
            rest, session, mode="a", encoding={"/a1b/air": {"air_temperature": {"chunks": 1}}}
        )
    assert session.status() == status and not session.has_uncommitted_changes
    datatree_to_repo(rest, session, mode="a")  # the session is still usable
    session.commit("the rest")
    xr.testing.assert_identical(xr.open_datatree(repo, engine="vrepo").load(), tree)


# --- modes and arguments -------------------------------------------------------------------


def test_modes(path, repo, first, a1b, miroc6):
    first.vrepo.to_repo(repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="group '/'"):
        first.vrepo.to_repo(repo)  # mode "w-", the default, refuses to overwrite
    only = xr.DataTree.from_dict({"/miroc6": miroc6.isel(time=slice(0, 12))})
    only.vrepo.to_repo(repo, mode="w")  # "w" replaces the whole tree, as to_zarr's does
    assert xr.open_datatree(path, engine="vrepo").groups == ("/", "/miroc6")

    first.vrepo.to_repo(repo, mode="w")
    scalars = ["latitude_longitude", "forecast_reference_time", "height"]  # region: dropped
    warmer = a1b.isel(time=slice(10, 20)).drop_vars(scalars)
    warmer = warmer.assign(air_temperature=warmer.air_temperature + 1)  # a copy: not in place
    fix = tree_of(warmer, miroc6.isel(time=slice(10, 20)))
    fix.vrepo.to_repo(repo, region="auto", message="recalibrated")
    got = xr.open_datatree(path, engine="vrepo").load()
    expected = first["a1b/air"]["air_temperature"].copy()
    expected[10:20] += 1
    xr.testing.assert_identical(got["a1b/air"]["air_temperature"], expected)
    xr.testing.assert_identical(got["miroc6"].to_dataset(), first["miroc6"].to_dataset())
    others = dict.fromkeys(["bnds", "latitude", "longitude", "plev", "lat", "lon"], "auto")
    fix.vrepo.to_repo(repo, region={"time": slice(10, 20), **others})  # each group: its own
    xr.testing.assert_identical(xr.open_datatree(path, engine="vrepo").load(), got)
    fix["static"] = xr.DataTree(xr.Dataset({"orog": ("latitude", a1b.latitude.values)}))
    with pytest.raises(vrepo.InvalidArgumentError, match="'/static' has variables but none"):
        fix.vrepo.to_repo(repo, region={"time": slice(10, 20)})


def test_group_places_the_tree_and_encoding_is_by_node_path(path, repo, first):
    encoding = {"/miroc6": {"ta": {"chunks": (12, 2, 2, 2)}}}
    first.vrepo.to_repo(repo, group="runs/r1", encoding=encoding)
    got = xr.open_datatree(path, engine="vrepo", group="runs/r1")
    xr.testing.assert_identical(got.load(), first)
    assert got["miroc6"]["ta"].encoding["chunks"] == (12, 2, 2, 2)


def test_bad_arguments_say_what_to_do(path, repo, first, a1b):
    with pytest.raises(vrepo.InvalidArgumentError, match=r"vrepo.xarray.to_repo"):
        datatree_to_repo(a1b, repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="key it by node path"):
        first.vrepo.to_repo(repo, encoding={"miroc6": {}})
    with pytest.raises(vrepo.InvalidArgumentError, match="append_dim needs mode='a'"):
        first.vrepo.to_repo(repo, mode="w", append_dim="time")
    with pytest.raises(TypeError, match="unexpected keyword argument 'safe_chunk'"):
        first.vrepo.to_repo(repo, safe_chunk=False)  # as a misspelt argument always does
    with pytest.raises(vrepo.InvalidArgumentError, match="writable_session"):
        first.vrepo.to_repo(repo.readonly_session())
    with pytest.raises(vrepo.InvalidArgumentError, match=r"vrepo.Repository.open_or_create"):
        first.vrepo.to_repo(str(path))
    first.vrepo.to_repo(repo)
    with pytest.raises(vrepo.InvalidArgumentError, match="no argument 'tags'"):
        xr.open_datatree(path, engine="vrepo", tags="v1")
    with pytest.raises(vrepo.InvalidArgumentError, match="drop branch="):
        xr.open_groups(f"{path}@main", engine="vrepo", branch="main")


def python(*codes: str) -> list[str]:
    """What each snippet prints, each run in a fresh interpreter (all at once)."""
    runs = [subprocess.Popen([sys.executable, "-c", c], stdout=PIPE, stderr=PIPE) for c in codes]
    outputs = [run.communicate() for run in runs]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()
    return [out.decode().strip() for out, _ in outputs]


def test_the_tree_accessor_exists_whichever_is_imported_first():
    code = "import {}, {}; import xarray as xr; print(type(xr.DataTree().vrepo))"
    both = python(code.format("vrepo", "xarray"), code.format("xarray", "vrepo"))
    assert both == ["<class 'vrepo.xarray.accessor.VRepoDataTreeAccessor'>"] * 2


def test_every_xarray_module_can_be_the_first_import():
    """The hook registers the accessors while xarray's first importer is half-initialized
    (say ``import vrepo.xarray._datatree``); the accessors must not need it then."""
    names = [m.name for m in pkgutil.iter_modules(vrepo.xarray.__path__, "vrepo.xarray.")]
    assert "vrepo.xarray._datatree" in names
    code = "import {}; import xarray as xr; print(type(xr.DataTree().vrepo).__name__)"
    assert python(*map(code.format, names)) == ["VRepoDataTreeAccessor"] * len(names)


# --- dask --------------------------------------------------------------------------------------


def test_dask_tree_on_a_distributed_cluster(tmp_path, path, repo, first, rest, dask_client):
    chunked = first.chunk({"time": 24})
    snapshot = chunked.vrepo.to_repo(repo, message="on the cluster")
    assert snapshots(repo)[0] == snapshot
    rest.chunk({"time": 24}).vrepo.to_repo(repo, mode="a")
    got = xr.open_datatree(path, engine="vrepo", chunks={})
    assert got["a1b/air"]["air_temperature"].data.chunksize[0] == 24

    plain = zarr.storage.LocalStore(tmp_path / "plain.zarr")
    chunked.to_zarr(plain, zarr_format=3, consolidated=False)
    for group in ("a1b", "a1b/air", "miroc6"):
        own = rest[group].to_dataset(inherit=False).chunk({"time": 24})
        own.to_zarr(plain, group=group, append_dim="time", zarr_format=3, consolidated=False)
    assert_same_tree(got, open_plain(plain))


def test_dask_failure_in_one_group_rolls_back_the_others(repo, first, rest):
    first.chunk({"time": 24}).vrepo.to_repo(repo)
    session = repo.writable_session()
    status = session.status()
    broken = rest.chunk({"time": 24})
    air = broken["a1b/air"].to_dataset(inherit=False)
    broken["a1b/air"] = xr.DataTree(failing_from_block(air, "air_temperature", 2, "disk on fire"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        datatree_to_repo(broken, session, mode="a")
    assert session.status() == status
    assert zarr.open_array(session.store, path="miroc6/ta").shape[0] == 120
