"""Swift storage against a real OpenStack Swift all-in-one on 127.0.0.1 (tests/swift_server.py).

The conformance suite (pre-authenticated token, single-writer, and refs on local disk), the
token paths (pre-auth token, user/key login, environment, provider), a 401 refresh and the
errors around it, listing pages, commits in both commit-safety modes, and a distributed
`to_repo` on a real LocalCluster read back with ``engine="vrepo"``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import xarray as xr
import zarr

import vrepo
import vrepo.storage.swift as swift_module
from swift_server import KEY, READER, READER_KEY, USER, SwiftServer, start_swift
from vrepo.errors import InvalidArgumentError, ObjectNotFoundError, StorageError
from vrepo.format import EXPIRY_PREFIX, REFS_PREFIX, REPO_INFO_KEY, TURNS_PREFIX
from vrepo.storage import RoutedStorage, Storage, SwiftStorage, SwiftToken, _http, as_storage
from vrepo.storage.routed import REFS_PREFIXES
from vrepo.testing import StorageTests

ENV = ("OS_STORAGE_URL", "OS_AUTH_TOKEN", "ST_AUTH", "ST_USER", "ST_KEY")


@pytest.fixture(scope="session")
def swift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftServer]:
    with start_swift(tmp_path_factory.mktemp("swift")) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_swift_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def container(swift_server: SwiftServer) -> str:
    return swift_server.new_container()


def preauth(server: SwiftServer, container: str, prefix: str = "repo", **kw: object) -> Storage:
    return vrepo.swift_storage(
        container, prefix, preauthurl=server.storage_url, preauthtoken=server.token(), **kw
    )


def login(server: SwiftServer, container: str, prefix: str = "repo", **kw: object) -> Storage:
    return vrepo.swift_storage(container, prefix, authurl=server.auth_url, user=USER, key=KEY, **kw)


@pytest.fixture
async def swift(swift_server: SwiftServer, container: str) -> AsyncIterator[SwiftStorage]:
    storage = preauth(swift_server, container)
    assert isinstance(storage, SwiftStorage)
    yield storage
    await storage.close()


# --- the conformance suite, in the three ways Swift storage is used -------------------------


class TestSwiftConformance(StorageTests):
    atomic_create = False  # If-None-Match is not atomic on Swift: put_if_absent refuses
    make_durable_reports_missing = False  # a PUT is durable when it returns

    @pytest.fixture
    def storage(self, swift_server: SwiftServer, container: str) -> Storage:
        return preauth(swift_server, container, single_writer=self.single_writer)

    @pytest.fixture
    def secrets(self, storage: SwiftStorage) -> Sequence[str]:
        return storage._config.auth.secrets

    async def close_storage(self, storage: Storage) -> None:
        await storage.close()  # type: ignore[attr-defined]


class TestSwiftSingleWriterConformance(TestSwiftConformance):
    single_writer = True  # one committer per branch: a conditional PUT, racers take turns


class TestSwiftRefsOnLocalConformance(StorageTests):
    make_durable_reports_missing = False  # the suite's keys are data keys: in Swift

    @pytest.fixture
    def storage(self, swift_server: SwiftServer, container: str, tmp_path: Path) -> Storage:
        # single_writer: the suite also creates data keys ("chunks/a"), which stay in Swift
        return login(swift_server, container, refs_storage=tmp_path / "refs", single_writer=True)

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return (KEY,)

    async def close_storage(self, storage: Storage) -> None:
        await storage.close()  # type: ignore[attr-defined]


# --- layout, listing, reads ------------------------------------------------------------------


async def test_keys_map_below_the_prefix(swift_server, container, swift) -> None:
    await swift.put("chunks/abc", b"hello")
    swift_server.request("PUT", f"{container}/elsewhere", b"not ours")
    swift_server.request("PUT", f"{container}/repo/folder/", b"")  # a folder marker
    assert sorted(swift_server.names(container)) == ["elsewhere", "repo/chunks/abc", "repo/folder/"]
    assert await swift.list("") == ["chunks/abc"]
    assert swift.url == f"swift://{container}/repo ({swift_server.proxy_url})"


async def test_listing_follows_markers_past_a_page(swift, monkeypatch) -> None:
    monkeypatch.setattr(swift_module, "_PAGE", 4)
    keys = [f"chunks/{i:02d}" for i in range(11)]
    await asyncio.gather(*(swift.put(key, b"c") for key in keys))
    assert await swift.list("chunks/") == keys
    assert await swift.list("chunks/", limit=6) == keys[:6]
    assert await swift.list_after("chunks/", "chunks/04", limit=5) == keys[5:10]
    assert await swift.list_after("chunks/", "chunks/04") == keys[5:]


async def test_ranges_and_missing(swift) -> None:
    await swift.put("k", b"0123456789")
    assert await swift.get("k", (3, 3)) == b""
    assert await swift.get("k", (2, 5)) == b"234"
    assert await swift.get("k", (9, 2**70)) == b"9"
    assert await swift.get("k", (11, 12)) == b""
    with pytest.raises(ObjectNotFoundError):
        await swift.get("missing", (3, 3))
    await swift.put("empty", b"")
    assert await swift.get("empty", (0, 5)) == b""
    assert await swift.size("k") == 10


# --- authentication --------------------------------------------------------------------------


async def test_user_and_key_log_in_and_are_masked(swift_server, container) -> None:
    storage = login(swift_server, container)
    await storage.put("a", b"1")
    assert await storage.get("a") == b"1"
    assert KEY not in repr(storage) and KEY not in storage.url
    assert "****" in repr(storage._config.auth)
    await storage.close()


async def test_environment_variables(swift_server, container, monkeypatch) -> None:
    monkeypatch.setenv("OS_STORAGE_URL", swift_server.storage_url)
    monkeypatch.setenv("OS_AUTH_TOKEN", swift_server.token())
    await vrepo.swift_storage(container).put("from-os-token", b"1")
    for name in ("OS_STORAGE_URL", "OS_AUTH_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", USER)
    monkeypatch.setenv("ST_KEY", KEY)
    storage = as_storage(f"swift://{container}")
    assert await storage.list("") == ["from-os-token"]
    await storage.close()


def test_missing_or_partial_credentials_are_explained(monkeypatch) -> None:
    with pytest.raises(StorageError, match="OS_STORAGE_URL and OS_AUTH_TOKEN"):
        vrepo.swift_storage("c")
    monkeypatch.setenv("ST_KEY", "k3y")  # completes a login given in part
    storage = vrepo.swift_storage("c", authurl="http://127.0.0.1:1/auth/v1.0", user="u")
    assert storage._config.auth.key == "k3y" and storage._config.auth.preauthtoken is None
    monkeypatch.setenv("OS_AUTH_TOKEN", "t0k")  # not mixed into a login given in part
    login_only = vrepo.swift_storage("c", authurl="http://h/auth", user="u")
    assert login_only._config.auth.preauthtoken is None
    monkeypatch.delenv("ST_KEY")
    with pytest.raises(InvalidArgumentError, match="go together"):
        vrepo.swift_storage("c", authurl="http://127.0.0.1:1/auth/v1.0", user="u")
    monkeypatch.delenv("OS_AUTH_TOKEN")
    with pytest.raises(InvalidArgumentError, match="preauthurl"):
        vrepo.swift_storage("c", preauthtoken="t")
    with pytest.raises(InvalidArgumentError, match="unknown storage_options"):
        as_storage("swift://c/p", {"endpoint_url": "x"})
    with pytest.raises(InvalidArgumentError, match="container"):
        vrepo.swift_storage("", preauthurl="http://h/v1/A", preauthtoken="t")


class Provider:
    """A picklable token provider: ``bad`` wrong tokens first, then real ones; counts calls."""

    def __init__(self, server: SwiftServer, bad: int) -> None:
        self.server, self.bad, self.calls = server, bad, 0

    def __call__(self) -> SwiftToken:
        self.calls += 1
        token = "AUTH_tkwrong" if self.calls <= self.bad else self.server.token()
        return SwiftToken(self.server.storage_url, token)


async def test_a_401_refreshes_the_token_once(swift_server, container) -> None:
    provider = Provider(swift_server, bad=1)
    storage = vrepo.swift_storage(container, token_provider=provider)
    await storage.put("k", b"v")  # first token refused: one refresh, then it works
    assert provider.calls == 2
    assert await storage.get("k") == b"v"
    assert provider.calls == 2

    always_bad = Provider(swift_server, bad=10**6)
    storage = vrepo.swift_storage(container, token_provider=always_bad)
    with pytest.raises(StorageError, match="401 Unauthorized; a new token was refused"):
        await storage.exists("k")  # never "missing"
    assert always_bad.calls == 2
    await storage.close()


async def test_a_stale_login_token_is_replaced(swift_server, container) -> None:
    storage = login(swift_server, container)
    storage._tokens._current = SwiftToken(swift_server.storage_url, "AUTH_tkstale")
    await storage.put("k", b"v")
    assert storage._tokens._current.token != "AUTH_tkstale"
    await storage.close()


async def test_a_refused_static_token_is_a_clear_error(swift_server, container) -> None:
    storage = vrepo.swift_storage(
        container, preauthurl=swift_server.storage_url, preauthtoken="AUTH_tkexpired"
    )
    for call in (storage.exists("k"), storage.get("k"), storage.list("")):
        with pytest.raises(StorageError, match="set a fresh OS_AUTH_TOKEN") as info:
            await call
        assert not isinstance(info.value, ObjectNotFoundError)
        assert "AUTH_tkexpired" not in str(info.value)
    await storage.close()


async def test_a_403_is_an_error_never_missing(swift_server, container) -> None:
    storage = vrepo.swift_storage(
        container, authurl=swift_server.auth_url, user=READER, key=READER_KEY
    )
    for call in (storage.exists("k"), storage.get("k"), storage.list(""), storage.put("k", b"")):
        with pytest.raises(StorageError, match="403 Forbidden: the token is valid") as info:
            await call
        assert not isinstance(info.value, ObjectNotFoundError)
        assert READER_KEY not in str(info.value)
    await storage.close()


class LostAnswers:
    """Wraps `_http.session` (``real``): the first ``count`` requests of ``method`` reach Swift and
    take effect, and then the connection breaks before the answer arrives."""

    def __init__(self, real: Any, method: str, count: int) -> None:
        self.real, self.method, self.count = real, method, count

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        wrapper = self

        class Call:
            async def __aenter__(self) -> Any:
                if method == wrapper.method and wrapper.count > 0:
                    wrapper.count -= 1
                    async with wrapper.real().request(method, url, **kwargs) as response:
                        await response.read()
                    raise aiohttp.ServerDisconnectedError()
                self.inner = wrapper.real().request(method, url, **kwargs)
                return await self.inner.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                return await self.inner.__aexit__(*exc)

        return Call()


async def test_lost_answers_are_retried_and_creates_read_back(
    swift_server, container, monkeypatch
) -> None:
    storage = preauth(swift_server, container, single_writer=True)
    real = _http.session
    monkeypatch.setattr(swift_module, "_BACKOFF", 0.001)
    lost = LostAnswers(real, "PUT", 2)
    monkeypatch.setattr(_http, "session", lambda: lost)
    await storage.put("plain", b"p")  # applied, answer lost, repeated: done once
    # applied, answer lost, repeated: the 412 refuses our own write; reading back says so
    assert await storage.put_if_absent("refs/branch.main/1.json", b"ours") is True
    assert await storage.put_if_absent("refs/branch.main/1.json", b"theirs") is False
    lost = LostAnswers(real, "GET", 10)
    monkeypatch.setattr(_http, "session", lambda: lost)
    with pytest.raises(StorageError, match="could not reach Swift"):
        await storage.get("plain")  # 5 tries, then a clear error
    monkeypatch.setattr(_http, "session", real)
    assert await storage.get("plain") == b"p"
    await storage.close()


async def test_missing_container_and_unreachable_server(swift_server, monkeypatch) -> None:
    storage = preauth(swift_server, "no-such-container")
    with pytest.raises(StorageError, match="does not exist in this account; create it"):
        await storage.put("k", b"v")
    monkeypatch.setattr(swift_module, "_BACKOFF", 0.001)
    dead = vrepo.swift_storage("c", preauthurl="http://127.0.0.1:9/v1/A", preauthtoken="t")
    with pytest.raises(StorageError, match="could not reach Swift"):
        await dead.get("k")
    await storage.close()


async def test_tokens_travel_in_pickles(swift_server, container) -> None:
    storage = login(swift_server, container)
    await storage._prepare_for_workers()
    token = storage._tokens.fresh
    assert token is not None and token.token not in repr(storage)
    copy = pickle.loads(pickle.dumps(storage))
    assert copy == storage and copy._tokens is storage._tokens  # shared in one process
    state = copy.__getstate__()
    assert state["token"] == token
    no_scatter = login(swift_server, container, scatter_credentials=False)
    await no_scatter._prepare_for_workers()
    assert "token" not in no_scatter.__getstate__()
    await storage.close()


# --- commit safety ---------------------------------------------------------------------------


async def test_put_if_absent_is_refused_without_a_promise(swift) -> None:
    with pytest.raises(StorageError, match="refs_storage") as info:
        await swift.put_if_absent("refs/branch.main/1.json", b"x")
    assert "single_writer=True" in str(info.value)
    assert await swift.list("") == []
    assert swift.supports_atomic_create is False


def test_routed_prefixes_are_what_vrepo_creates_once() -> None:
    assert set(REFS_PREFIXES) == {REFS_PREFIX, TURNS_PREFIX, EXPIRY_PREFIX, REPO_INFO_KEY}


def _write(repo: vrepo.Repository, name: str, value: float, message: str) -> str:
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name=name, shape=(4096,), chunks=(2048,), dtype="f8")
    array[:] = np.random.default_rng(int(value)).random(4096) + value  # stored chunks, not inline
    return session.commit(message)


def test_single_writer_repository(swift_server, container) -> None:
    options = {"preauthurl": swift_server.storage_url, "preauthtoken": swift_server.token()}
    with pytest.raises(StorageError, match="refs_storage"):
        vrepo.Repository.create(as_storage(f"swift://{container}/plain", options))
    url = f"swift://{container}/r"
    repo = vrepo.Repository.create(as_storage(url, {**options, "single_writer": True}))
    first = _write(repo, "a", 1.0, "one")
    second = _write(repo, "b", 2.0, "two")
    reopened, revision = vrepo.split_reference(f"{url}@main", {**options, "single_writer": True})
    assert revision == "main"
    assert [s.id for s in reopened.ancestry(branch="main")][:2] == [second, first]
    assert any(n.startswith("r/refs/branch.main/") for n in swift_server.names(container))


def test_refs_on_local_disk_data_in_swift(swift_server, container, tmp_path) -> None:
    refs_dir = tmp_path / "refs"
    options = {"authurl": swift_server.auth_url, "user": USER, "key": KEY}
    storage = as_storage(f"swift://{container}/r", {**options, "refs_storage": str(refs_dir)})
    assert isinstance(storage, RoutedStorage) and storage.supports_atomic_create
    repo = vrepo.Repository.create(storage)
    errors: list[BaseException] = []

    def commit(i: int) -> None:
        try:
            _write(vrepo.Repository.open(storage), f"v{i}", float(i), f"writer {i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(list(repo.ancestry(branch="main"))) == 5  # the root and four commits, none lost
    names = swift_server.names(container)
    assert any(n.startswith("r/chunks/") for n in names)
    assert any(n.startswith("r/snapshots/") for n in names)
    assert not any(n.startswith(("r/refs/", "r/repo.json")) for n in names)
    assert (refs_dir / "repo.json").exists() and (refs_dir / "refs").is_dir()
    assert not (refs_dir / "chunks").exists()
    session = vrepo.Repository.open(storage).readonly_session("main")
    values = zarr.open_array(session.store, path="v3")[:]
    np.testing.assert_array_equal(values, np.random.default_rng(3).random(4096) + 3.0)


class PidLogin:
    """A picklable token provider that logs in and notes which process called it."""

    def __init__(self, server: SwiftServer, calls: Path) -> None:
        self.server, self.calls = server, calls

    def __call__(self) -> SwiftToken:
        with self.calls.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return SwiftToken(self.server.storage_url, self.server.token(), time.time() + 3600)


def test_distributed_to_repo_into_swift(
    swift_server, container, a1b_dataset, dask_client, tmp_path
):
    calls = tmp_path / "logins"
    options = {"token_provider": PidLogin(swift_server, calls), "single_writer": True}
    url = f"swift://{container}/a1b"
    repo = vrepo.Repository.create(as_storage(url, options))
    dataset = a1b_dataset.isel(time=slice(0, 96)).chunk({"time": 24})
    snapshot = dataset.vrepo.to_repo(repo, message="96 years from 2 worker processes")
    workers = set(dask_client.run(os.getpid).values())
    assert len(workers) == 2 and os.getpid() not in workers
    # the workers wrote with the token scattered in their forks: only this process logged in
    assert calls.read_text().split() == [str(os.getpid())]
    back = xr.open_dataset(url, engine="vrepo", storage_options=options, chunks={})
    assert back.air_temperature.shape == dataset.air_temperature.shape
    np.testing.assert_array_equal(back.air_temperature.values, dataset.air_temperature.values)
    assert repo.lookup_branch("main") == snapshot
    token = repo.storage._tokens.fresh.token
    names = swift_server.names(container)
    assert sum(n.startswith("a1b/chunks/") for n in names) >= 4  # written by the workers
    for name in names:  # no token was written anywhere
        _, _, body = swift_server.request("GET", f"{container}/{name}")
        assert token.encode() not in body


def test_cli_on_swift(swift_server, container, monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    import vrepo.cli

    monkeypatch.setenv("ST_KEY", KEY)  # secrets from the environment, not the command line
    options = ["-s", f"authurl={swift_server.auth_url}", "-s", f"user={USER}"]
    options += ["-s", f"refs_storage={tmp_path / 'refs'}"]
    url = f"swift://{container}/cli"
    runner = CliRunner()
    result = runner.invoke(vrepo.cli.app, [*options, "init", url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(vrepo.cli.app, [*options, "log", f"{url}@main", "--json"])
    assert result.exit_code == 0, result.output
    assert "Repository initialized" in result.stdout
    assert KEY not in result.output


def test_refs_on_s3_data_in_swift(swift_server, container, moto_server) -> None:
    """The other home the issue names for refs: an S3 bucket (real moto server), whose
    conditional create is atomic, while every chunk and snapshot lives in Swift."""
    refs = moto_server.storage(moto_server.pool.take(), "refs")
    storage = login(swift_server, container, "s3refs", refs_storage=refs)
    assert isinstance(storage, RoutedStorage) and storage.supports_atomic_create
    repo = vrepo.Repository.create(storage)
    errors: list[BaseException] = []

    def commit(i: int) -> None:
        try:
            _write(vrepo.Repository.open(storage), f"v{i}", float(i), f"writer {i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(list(repo.ancestry(branch="main"))) == 4  # the root and three commits
    names = swift_server.names(container)
    assert any(n.startswith("s3refs/chunks/") for n in names)
    assert not any(n.startswith(("s3refs/refs/", "s3refs/repo.json")) for n in names)
    ref_keys = asyncio.run(refs.list(REFS_PREFIX))
    assert any(k.startswith("refs/branch.main/") for k in ref_keys)
    assert asyncio.run(refs.exists(REPO_INFO_KEY))
    assert not asyncio.run(refs.list("chunks/"))
