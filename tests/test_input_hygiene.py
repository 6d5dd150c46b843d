"""Bad input gets a clear `VRepoError` and changes nothing: zarr byte requests, repository
arguments, and whatever a (third-party) storage raises. The storage-level byte-range rules
are in the conformance suite (`vrepo.testing`, tests/test_storage_conformance.py)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import zarr
from botocore.exceptions import ClientError
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype

import vrepo
from vrepo.format import REPO_INFO_KEY
from vrepo.storage import as_storage, guarded

PROTO = default_buffer_prototype()

# --- zarr byte requests -------------------------------------------------------------------

BAD_REQUESTS = [
    RangeByteRequest(-1, 3),
    RangeByteRequest(-3, -1),
    RangeByteRequest(5, 2),
    OffsetByteRequest(-2),
    SuffixByteRequest(-1),
]
GOOD_REQUESTS = [
    None,
    RangeByteRequest(0, 3),
    RangeByteRequest(2, 5),
    RangeByteRequest(7, 1000),
    RangeByteRequest(4, 4),
    RangeByteRequest(200, 300),
    OffsetByteRequest(0),
    OffsetByteRequest(3),
    OffsetByteRequest(1000),
    SuffixByteRequest(0),
    SuffixByteRequest(2),
    SuffixByteRequest(1000),
]
# one key of each kind: array metadata, a stored and an inline chunk, stored and inline
# opaque objects, and a key that holds nothing
KEY_KINDS = ["x/zarr.json", "x/c/0", "x/c/1", "loose/big", "loose/small", "nothing/here"]


@pytest.fixture
def store(tmp_path: Path) -> vrepo.VRepoStore:
    """A writable store holding one key of every kind (chunks over 8 bytes are objects)."""
    repo = vrepo.Repository.create(
        tmp_path / "r.vrepo", config=vrepo.RepoConfig(inline_threshold_bytes=8)
    )
    store = repo.writable_session().store
    zarr.create_array(store, name="x", shape=(2,), chunks=(1,), dtype="u1")
    values = {"x/c/0": bytes(range(100)), "x/c/1": b"tiny", "loose/big": bytes(range(50))}
    values["loose/small"] = b"small"
    for key, value in values.items():
        zarr.core.sync.sync(store.set(key, cpu.Buffer.from_bytes(value)))
    return store


@pytest.mark.parametrize("key", KEY_KINDS)
@pytest.mark.parametrize("request_", BAD_REQUESTS, ids=repr)
async def test_negative_byte_requests_are_refused_for_every_key_kind(store, key, request_):
    """Negative requests (and an end before the start) raise `InvalidArgumentError`, whatever
    the key holds and whether it exists: never a Python slice for some keys and a clamp or
    None for others."""
    with pytest.raises(vrepo.InvalidArgumentError, match="invalid byte request"):
        await store.get(key, PROTO, request_)
    with pytest.raises(vrepo.InvalidArgumentError, match="invalid byte request"):
        await store.get_partial_values(PROTO, [(key, None), (key, request_)])
    with pytest.raises(vrepo.InvalidArgumentError, match="invalid byte request"):
        async for _ in store.get_ranges(key, [RangeByteRequest(0, 1), request_], prototype=PROTO):
            pass


@pytest.mark.parametrize("key", KEY_KINDS)
async def test_byte_requests_read_what_zarrs_local_store_reads(store, key, tmp_path):
    """Every valid request gives what zarr's own `LocalStore` gives for the same bytes."""
    reference = zarr.storage.LocalStore(tmp_path / "plain")
    whole = await store.get(key, PROTO)
    if whole is not None:
        await reference.set(key, whole)
    for request_ in GOOD_REQUESTS:
        ours, theirs = (
            await store.get(key, PROTO, request_),
            await reference.get(key, PROTO, request_),
        )
        assert (ours and ours.to_bytes()) == (theirs and theirs.to_bytes()), request_
    got = await store.get_partial_values(PROTO, [(key, r) for r in GOOD_REQUESTS])
    if whole is None:  # LocalStore raises FileNotFoundError here; the Store API says None
        assert got == [None] * len(GOOD_REQUESTS)
        return
    want = await reference.get_partial_values(PROTO, [(key, r) for r in GOOD_REQUESTS])
    assert [g.to_bytes() for g in got] == [w.to_bytes() for w in want]


@pytest.mark.parametrize("key", ["x/c/0", "x/c/1", "loose/big", "x/zarr.json"])
async def test_huge_and_numpy_byte_requests(store, key):
    """Requests far past the end are clipped; numpy integers (zarr's shard indexes) work."""
    whole = (await store.get(key, PROTO)).to_bytes()
    huge = [  # pairs, not a dict: zarr 3.1.3's byte requests are not hashable
        (RangeByteRequest(0, 2**70), whole),
        (RangeByteRequest(2**70, 2**71), b""),
        (OffsetByteRequest(2**70), b""),
        (SuffixByteRequest(2**70), whole),
        (RangeByteRequest(np.uint64(1), np.uint64(3)), whole[1:3]),
    ]
    for request_, expected in huge:
        assert (await store.get(key, PROTO, request_)).to_bytes() == expected, request_


# --- repository arguments ----------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


NOT_CONFIGS = ["x", {}, 0, {"inline_threshold_bytes": 5}, vrepo.RepoConfig]


@pytest.mark.parametrize("config", NOT_CONFIGS, ids=repr)
def test_create_refuses_a_config_that_is_not_a_repo_config(tmp_path, config):
    """Before anything is written: this used to write a repository nobody could open."""
    with pytest.raises(vrepo.InvalidArgumentError, match="RepoConfig"):
        vrepo.Repository.create(tmp_path / "r", config=config)
    with pytest.raises(vrepo.InvalidArgumentError, match="RepoConfig"):
        vrepo.Repository.open_or_create(tmp_path / "r", config=config)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("config", NOT_CONFIGS, ids=repr)
def test_an_existing_repository_is_untouched_by_bad_configs(tmp_path, config):
    repo = vrepo.Repository.create(tmp_path / "r")
    before = _files(tmp_path / "r")
    with pytest.raises(vrepo.InvalidArgumentError, match="RepoConfig"):
        vrepo.Repository.open_or_create(tmp_path / "r", config=config)
    with pytest.raises(vrepo.InvalidArgumentError, match="RepoConfig"):
        repo.save_config(config)
    with pytest.raises(vrepo.RepositoryExistsError):
        vrepo.Repository.create(tmp_path / "r")
    assert _files(tmp_path / "r") == before
    assert vrepo.Repository.open(tmp_path / "r").config == vrepo.RepoConfig()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("inline_threshold_bytes", 1.5),
        ("inline_threshold_bytes", "512"),
        ("commit_retries", True),
        ("commit_retries", None),
        ("commit_backoff_ms", "1"),
        ("commit_backoff_max_ms", float("nan")),
    ],
)
def test_repo_config_fields_are_checked_when_made(field, value):
    """A float threshold used to be stored, and then repo.json failed to decode on open."""
    with pytest.raises(vrepo.InvalidArgumentError, match=f"RepoConfig.{field}"):
        vrepo.RepoConfig(**{field: value})


def test_repo_config_takes_numpy_numbers_and_stays_readable(tmp_path):
    config = vrepo.RepoConfig(inline_threshold_bytes=np.int64(16), commit_backoff_ms=np.float32(2))
    assert type(config.inline_threshold_bytes) is int and type(config.commit_backoff_ms) is float
    vrepo.Repository.create(tmp_path / "r", config=config)
    assert vrepo.Repository.open(tmp_path / "r").config == config


@pytest.mark.parametrize("where", [42, None, b"/tmp/x", 1.5, ["a"], ""], ids=repr)
def test_storage_arguments_of_every_entry_point(tmp_path, monkeypatch, where):
    """Wrong types and an empty path (which used to mean the current directory) are refused
    with the accepted forms named, and nothing is created anywhere."""
    monkeypatch.chdir(tmp_path)
    entry_points = [
        vrepo.Repository.create,
        vrepo.Repository.open,
        vrepo.Repository.open_or_create,
        vrepo.Repository.exists,
        vrepo.open_reference,
        vrepo.split_reference,
    ]
    for entry_point in entry_points:
        with pytest.raises(vrepo.InvalidArgumentError) as info:
            entry_point(where)
        assert "path" in str(info.value) or "Storage" in str(info.value), entry_point
    assert os.listdir(tmp_path) == []


def test_storage_options_are_checked(tmp_path):
    with pytest.raises(vrepo.InvalidArgumentError, match="must be a dict"):
        as_storage("s3://bucket/r", "region=eu")  # type: ignore[arg-type]
    with pytest.raises(vrepo.InvalidArgumentError, match=r"unknown storage_options \['regoin'\]"):
        as_storage("s3://bucket/r", {"regoin": "eu-west-1"})
    with pytest.raises(vrepo.InvalidArgumentError, match="must be a dict"):
        vrepo.split_reference(str(tmp_path), ["x"])  # type: ignore[arg-type]
    with pytest.raises(vrepo.InvalidArgumentError, match="empty path"):
        as_storage("file://")


# --- failures of any storage --------------------------------------------------------------


class ThirdPartyStorage(vrepo.Storage):
    """A storage written outside vrepo: memory underneath, and raising what it is told to.

    ``failures`` maps a method name to the exception its calls raise (on keys starting with
    ``fail_prefix``), counted in ``raised``; ``results`` maps one to a value its calls return
    instead of the real one.
    """

    def __init__(self) -> None:
        self.inner = vrepo.MemoryStorage()
        self.failures: dict[str, Exception] = {}
        self.fail_prefix = ""
        self.raised = 0
        self.results: dict[str, object] = {}

    async def _do(self, method: str, key, *args, **kwargs):
        named = key[0] if isinstance(key, list) and key else key
        if method in self.failures and str(named).startswith(self.fail_prefix):
            self.raised += 1
            raise self.failures[method]
        result = await getattr(self.inner, method)(key, *args, **kwargs)
        return self.results.get(method, result)

    async def get(self, key, byte_range=None):
        return await self._do("get", key, byte_range)

    async def put(self, key, data):
        return await self._do("put", key, data)

    async def put_new(self, key, data):
        return await self._do("put_new", key, data)

    async def put_if_absent(self, key, data):
        return await self._do("put_if_absent", key, data)

    async def delete(self, key):
        return await self._do("delete", key)

    async def exists(self, key):
        return await self._do("exists", key)

    async def list(self, prefix, *, limit=None):
        return await self._do("list", prefix, limit=limit)

    async def make_durable(self, keys: Iterable[str]):
        return await self._do("make_durable", list(keys))

    @property
    def url(self) -> str:
        return "thirdparty://bucket"


FOREIGN_ERRORS = [
    RuntimeError("the client is closed"),
    OSError(5, "Input/output error"),
    KeyError("x"),
    ValueError("bad"),
    ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your rate"}}, "GetObject"),
]


def _write(repo: vrepo.Repository) -> vrepo.Session:
    session = repo.writable_session()
    array = zarr.create_array(session.store, name="x", shape=(4,), chunks=(2,), dtype="f8")
    array[:] = np.arange(4.0)
    return session


# (method that fails, on keys starting with, what the user does, the verb and key named)
OPERATIONS = {
    "create": ("exists", "", vrepo.Repository.create, "checking 'repo.json'"),
    "open": ("get", "", vrepo.Repository.open, "reading 'repo.json'"),
    "chunk write": (
        "put_new",
        "chunks/",
        lambda s: _write(vrepo.Repository.open(s)),
        "writing 'chunks/",
    ),
    "commit": (
        "put_if_absent",
        "refs/",
        lambda s: _write(vrepo.Repository.open(s)).commit("c"),
        "creating 'refs/branch.main/",
    ),
    "list branches": (
        "list",
        "",
        lambda s: vrepo.Repository.open(s).list_branches(),
        "listing 'refs/branch.",
    ),
    "chunk read": (
        "get",
        "chunks/",
        lambda s: zarr.open_array(vrepo.Repository.open(s).readonly_session().store, path="x")[:],
        "reading 'chunks/",
    ),
}


@pytest.mark.parametrize("error", FOREIGN_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_foreign_storage_errors_reach_users_as_storage_error(operation, error):
    """Whatever a third-party storage raises becomes `StorageError` naming the operation
    and the key, with the original chained."""
    method, prefix, act, names = OPERATIONS[operation]
    storage = ThirdPartyStorage()
    if operation != "create":
        repo = vrepo.Repository.create(storage, config=vrepo.RepoConfig(inline_threshold_bytes=0))
        if operation == "chunk read":
            _write(repo).commit("data")
    storage.failures[method], storage.fail_prefix = error, prefix
    with pytest.raises(vrepo.StorageError) as info:
        act(storage)
    assert info.value.__cause__ is error
    assert names in str(info.value) and "thirdparty://bucket" in str(info.value)
    assert f"ThirdPartyStorage.{method}" in str(info.value)
    assert storage.raised


@pytest.mark.parametrize(
    "error",
    [
        vrepo.StorageError("throttled; try later"),
        vrepo.ObjectNotFoundError("chunks/x"),
        vrepo.InvalidKeyError("bad key"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_vrepo_errors_from_storage_pass_unchanged(error):
    storage = ThirdPartyStorage()
    repo = vrepo.Repository.create(storage)
    storage.failures["list"] = error
    with pytest.raises(type(error)) as info:
        repo.list_branches()
    assert info.value is error


def test_a_missing_object_reported_as_file_not_found_is_object_not_found():
    storage = ThirdPartyStorage()
    storage.failures["get"] = FileNotFoundError("repo.json")
    with pytest.raises(vrepo.RepositoryNotFoundError):
        vrepo.Repository.open(storage)


def test_a_lost_create_race_still_reads_as_false():
    """`put_if_absent` returning False is no error: here another process 'won' repo.json."""
    storage = ThirdPartyStorage()
    storage.results["put_if_absent"] = False
    with pytest.raises(vrepo.RepositoryExistsError, match="at the same time"):
        vrepo.Repository.create(storage)


def test_lost_commit_races_rebase_through_the_guard():
    storage = ThirdPartyStorage()
    repo = vrepo.Repository.create(storage)
    first, second = _write(repo), repo.writable_session()
    zarr.create_group(second.store, path="other")
    first.commit("one")
    second.commit("two, after losing the race for the next ref record")
    assert [s.message for s in repo.ancestry()][:2] == [
        "two, after losing the race for the next ref record",
        "one",
    ]


def test_results_of_the_wrong_type_are_storage_errors():
    storage = ThirdPartyStorage()
    vrepo.Repository.create(storage)
    storage.results["get"] = "text"
    with pytest.raises(vrepo.StorageError, match=r"ThirdPartyStorage.get.*not the object.s bytes"):
        vrepo.Repository.open_or_create(storage)


def test_a_create_returning_none_is_no_lost_race_but_is_read_back():
    """A `put_if_absent` returning None (a forgotten return) is a failure, not a lost race:
    like any failed create it is settled by reading the key back (tests/test_exactly_once.py),
    here finding the object it did write."""
    storage = ThirdPartyStorage()
    storage.results["put_if_absent"] = None
    repo = vrepo.Repository.open_or_create(storage)
    assert [r.action for r in repo.branch_history("main")] == ["create"]
    storage.results.pop("put_if_absent")
    assert vrepo.Repository.open(storage).lookup_branch("main") == repo.lookup_branch("main")


def test_the_guard_is_invisible_to_users_and_pickles(tmp_path):
    storage = vrepo.LocalStorage(tmp_path / "r")
    repo = vrepo.Repository.create(storage)
    assert repo.storage is storage
    assert vrepo.Repository.open(repo.storage).storage is storage
    wrapped = guarded(storage)
    assert guarded(wrapped) is wrapped and wrapped.url == storage.url
    copy = pickle.loads(pickle.dumps(wrapped))
    assert copy == wrapped and copy.inner == storage
    fork = pickle.loads(pickle.dumps(repo.writable_session().fork()))
    assert fork._objects.storage == wrapped
    assert REPO_INFO_KEY in os.listdir(tmp_path / "r")
