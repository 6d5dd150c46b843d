"""Scattered S3 credentials: the coordinator fetches once, workers refresh once per process.

Unit tests pickle storage objects within this process (a fresh registry of shared caches
stands in for another process); the acceptance tests run a real 4-process dask cluster
against SeaweedFS, which verifies request signatures, so missing or wrong credentials fail.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import gc
import json
import logging
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster

import vrepo
import vrepo.dask
from s3_servers import REGION, S3Server, s3_server_named
from vrepo.errors import InvalidArgumentError
from vrepo.storage import S3Credentials, S3Storage, s3_storage
from vrepo.storage import _s3_clients as s3_module
from vrepo.storage import credentials as credentials_module
from vrepo.storage._shared import SharedRegistry
from vrepo.storage.credentials import REFRESH_MARGIN, SHARED_CACHES

KEY_ID = "AKIASCATTERTEST0000"
SECRET = "scatter-secret-5be1c0a9d8e7"
TOKEN = "scatter-token-77f3a2b1c0d9"

N_BLOCKS = 1000  # one write task each
BLOCK = 128  # float64 values: 1 KiB per chunk, above the 512 B inline threshold
FRESH_FOR = 5.0  # seconds the coordinator's first credentials stay outside REFRESH_MARGIN

_calls: collections.Counter[str] = collections.Counter()  # per provider name, this process


class _Provider:
    """Counts calls per name in this process; holds no secret, so its pickle carries none."""

    def __init__(self, name: str, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.name = name
        self.lifetime = lifetime

    def __call__(self) -> S3Credentials:
        _calls[self.name] += 1
        return S3Credentials(KEY_ID, SECRET, TOKEN, datetime.now(UTC) + self.lifetime)


def _storage(name: str, *, scatter: bool = True, **options: object) -> S3Storage:
    return S3Storage(
        "bucket", "repo", credentials=_Provider(name, **options), scatter_credentials=scatter
    )  # type: ignore[arg-type]


def _get(storage: S3Storage) -> S3Credentials | None:
    return vrepo._sync.run_sync(storage._credentials.get())


@pytest.fixture
def new_process(monkeypatch: pytest.MonkeyPatch):
    """Call to make the registry of shared caches empty, as in a process just started."""

    def fresh() -> None:
        monkeypatch.setattr(credentials_module, "_shared", SharedRegistry(SHARED_CACHES))
        monkeypatch.setattr(s3_module, "_shared_clients", SharedRegistry(s3_module._SHARED_CLIENTS))

    fresh()
    return fresh


# --- unit: pickling, sharing, adopting, bounds ------------------------------------------


def test_scatter_pickles_carry_fresh_credentials(new_process) -> None:
    storage = _storage("scatter")
    assert SECRET.encode() not in pickle.dumps(storage)  # nothing fetched yet: nothing to carry
    vrepo._sync.run_sync(storage._prepare_for_workers())
    assert _calls["scatter"] == 1
    data = pickle.dumps(storage)
    assert SECRET.encode() in data and TOKEN.encode() in data
    new_process()
    clones = [pickle.loads(data) for _ in range(3)]
    assert all(clone._credentials is clones[0]._credentials for clone in clones)
    assert all(_get(clone) == _get(storage) for clone in clones)
    assert _calls["scatter"] == 1  # the workers used what the coordinator fetched


def test_without_scatter_each_process_calls_once(new_process) -> None:
    storage = _storage("own", scatter=False)
    vrepo._sync.run_sync(storage._prepare_for_workers())
    assert _calls["own"] == 0  # nothing to prepare: workers fetch their own
    _get(storage)
    data = pickle.dumps(storage)
    assert SECRET.encode() not in data and TOKEN.encode() not in data
    new_process()
    clones = [pickle.loads(data) for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(_get, clones))
    assert _calls["own"] == 2  # the coordinator's and one for this "process"


def test_same_process_copies_share_the_original_cache(new_process) -> None:
    storage = _storage("same")
    _get(storage)
    clone = pickle.loads(pickle.dumps(storage))
    assert clone._credentials is storage._credentials
    other = _storage("same")  # made independently: its own origin and cache
    assert other._credentials is not storage._credentials


def test_origin_is_not_part_of_equality() -> None:
    static = S3Storage("bucket", "repo", credentials=S3Credentials(KEY_ID, SECRET))
    clone = pickle.loads(pickle.dumps(static))
    again = S3Storage("bucket", "repo", credentials=S3Credentials(KEY_ID, SECRET))
    assert clone._origin == static._origin != again._origin
    assert clone == static == again and hash(clone) == hash(static) == hash(again)


def test_shared_cache_refreshes_once_for_all_copies(new_process) -> None:
    storage = _storage("refresh", lifetime=REFRESH_MARGIN + timedelta(seconds=1))
    vrepo._sync.run_sync(storage._prepare_for_workers())
    data = pickle.dumps(storage)
    new_process()
    clones = [pickle.loads(data) for _ in range(8)]
    time.sleep(1.1)  # the scattered credentials are now within the margin
    clones[0]._config.credentials.lifetime = timedelta(hours=1)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(_get, clones))
    assert _calls["refresh"] == 2  # the coordinator's, then one refresh for all 8 copies
    assert all(g is got[0] for g in got)
    assert not got[0].expires_within(REFRESH_MARGIN)


def test_stale_credentials_are_not_scattered(new_process) -> None:
    storage = _storage("stale", lifetime=REFRESH_MARGIN - timedelta(seconds=1))
    _get(storage)
    assert SECRET.encode() not in pickle.dumps(storage)


def test_fresher_embedded_credentials_are_adopted(new_process) -> None:
    storage = _storage("adopt", lifetime=timedelta(minutes=10))
    _get(storage)
    older = pickle.dumps(storage)
    storage._credentials.offer(S3Credentials(KEY_ID, SECRET, TOKEN, _in(timedelta(hours=1))))
    newer = pickle.dumps(storage)
    new_process()
    worker = pickle.loads(older)
    ten_minutes = worker._credentials.fresh
    assert ten_minutes is not None and ten_minutes.expires_at < _in(timedelta(minutes=11))
    assert pickle.loads(newer)._credentials.fresh.expires_at > _in(timedelta(minutes=59))
    assert worker._credentials.fresh.expires_at > _in(timedelta(minutes=59))  # shared, adopted
    pickle.loads(older)  # an older pickle arriving later changes nothing
    assert worker._credentials.fresh.expires_at > _in(timedelta(minutes=59))
    assert _calls["adopt"] == 1


def test_registries_are_bounded(new_process) -> None:
    keep = _storage("bounded")
    held = pickle.loads(pickle.dumps(keep))
    for i in range(3 * SHARED_CACHES):
        pickle.loads(pickle.dumps(_storage(f"many{i}")))
    for credentials in (S3Credentials(KEY_ID, SECRET), None):
        pickle.loads(pickle.dumps(S3Storage("bucket", credentials=credentials)))
    gc.collect()
    # The recent ones, and the one still held (shared while held, however old).
    assert len(credentials_module._shared) == SHARED_CACHES + 1
    assert len(s3_module._shared_clients) == s3_module._SHARED_CLIENTS + 1
    assert pickle.loads(pickle.dumps(keep))._credentials is held._credentials
    assert pickle.loads(pickle.dumps(keep))._shared is held._shared
    del keep, held
    gc.collect()
    assert len(credentials_module._shared) == SHARED_CACHES
    assert len(s3_module._shared_clients) == s3_module._SHARED_CLIENTS


def test_scatter_argument() -> None:
    assert s3_storage("bucket", scatter_credentials=False)._config.scatter_credentials is False
    with pytest.raises(InvalidArgumentError, match="scatter_credentials"):
        S3Storage("bucket", scatter_credentials="yes")  # type: ignore[arg-type]
    static = S3Credentials(KEY_ID, SECRET)
    unscattered = S3Storage("bucket", credentials=static, scatter_credentials=False)
    assert pickle.loads(pickle.dumps(unscattered))._credentials.fresh == static  # the config


async def test_unpickled_copies_share_one_client(moto_server: S3Server, new_process) -> None:
    storage = moto_server.storage(moto_server.pool.take(), "repo")
    await storage.put("a", b"x")
    data = pickle.dumps(storage)
    copies = [pickle.loads(data) for _ in range(10)]
    assert all(await asyncio.gather(*(copy.exists("a") for copy in copies)))
    assert all(copy._shared is copies[0]._shared for copy in copies)
    assert storage._shared is not copies[0]._shared  # the original keeps its own
    (entry,) = copies[0]._clients.values()
    assert not entry.retired  # equal credentials: no copy replaced the client
    await copies[0].close()
    assert copies[5]._clients == {}
    await storage.close()


def _in(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta


# --- end to end on a real server, in this process ------------------------------------------


def test_nothing_secret_is_written_or_shown(
    moto_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """moto accepts session tokens (SeaweedFS refuses unknown ones): scan for both."""
    caplog.set_level(logging.INFO)
    bucket = moto_server.pool.take()
    storage = moto_server.storage(bucket, "repo", credentials=_Provider("written"))
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="x", shape=(8 * BLOCK,), chunks=(BLOCK,), dtype="f8")
    fork = session.fork()
    texts = [repr(x) + str(x) for x in (storage, repo, session, fork)]
    forks = []
    for i in range(8):
        mine = pickle.loads(pickle.dumps(fork))
        block = np.random.default_rng(i).random(BLOCK)  # incompressible: not inlined
        zarr.open_array(mine.store, path="x", mode="r+")[i * BLOCK : (i + 1) * BLOCK] = block
        forks.append(pickle.loads(pickle.dumps(mine)))
        texts.append(repr(mine))
    session.merge(*forks)
    session.commit("eight forks")
    assert _calls["written"] == 1
    objects = _all_objects(moto_server, bucket)
    assert sum(key.startswith("repo/chunks/") for key in objects) == 8
    for secret in (SECRET, TOKEN):
        assert not [key for key, body in objects.items() if secret.encode() in body]
        assert not [text for text in [*texts, caplog.text] if secret in text]


def _all_objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", ())
    ]
    with ThreadPoolExecutor(32) as pool:
        bodies = pool.map(lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(), keys)
        return dict(zip(keys, bodies, strict=True))


# --- acceptance: 4 worker processes, 1,000 tasks, credentials expiring mid-job -------------


class LoggingProvider:
    """Appends "pid time" to ``log`` per call, from whichever process calls it.

    The real credentials are read from ``secrets`` (so a pickle of the provider holds no
    secret). The first call overall returns credentials expiring at ``first_expires_at``
    (when given), later calls ones valid for an hour.
    """

    def __init__(self, log: Path, secrets: Path, first_expires_at: datetime | None) -> None:
        self.log = log
        self.secrets = secrets
        self.first_expires_at = first_expires_at

    def __call__(self) -> S3Credentials:
        with open(self.log, "a+") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            log.seek(0)
            first = not log.read()
            log.write(f"{os.getpid()} {time.time()}\n")
        known = json.loads(self.secrets.read_text())
        expires_at = datetime.now(UTC) + timedelta(hours=1)
        if first and self.first_expires_at is not None:
            expires_at = self.first_expires_at
        return S3Credentials(known["key"], known["secret"], expires_at=expires_at)

    def calls(self) -> list[tuple[int, float]]:
        lines = self.log.read_text().split() if self.log.exists() else []
        return [(int(pid), float(at)) for pid, at in zip(lines[::2], lines[1::2], strict=True)]


def make_block(late_from: float, block_info: dict | None = None) -> np.ndarray:
    """Block ``i`` of the source; every tenth waits until ``late_from`` (the job spans it)."""
    (i,) = block_info[None]["chunk-location"]
    if i % 10 == 9:
        time.sleep(max(0.0, late_from - time.time()))
    return np.random.default_rng(i).random(BLOCK)


def _expected() -> np.ndarray:
    return np.concatenate([np.random.default_rng(i).random(BLOCK) for i in range(N_BLOCKS)])


@pytest.fixture(scope="module")
def cluster_client():
    cluster = LocalCluster(
        n_workers=4, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, Client(cluster) as client:
        client.run(_warm_up)  # imports, so the timed job does not wait for them
        yield client


def _warm_up() -> None:
    import s3fs  # noqa: F401

    import vrepo.dask  # noqa: F401
    from vrepo.storage.s3 import _data_loader

    _data_loader().load_service_model("s3", "service-2")


@pytest.mark.parametrize("scatter", [True, False], ids=["scatter", "no-scatter"])
def test_distributed_write_calls_provider_once_per_worker(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_client: Client,
    caplog: pytest.LogCaptureFixture,
    scatter: bool,
) -> None:
    """1,000 write tasks on 4 worker processes against SeaweedFS, which checks signatures.

    With scattering, the coordinator's one fetch expires (enters REFRESH_MARGIN) mid-job:
    every tenth block waits for that, so some writes come after it. Without, every worker
    process fetches for itself. Either way: at most one call per worker process.
    """
    caplog.set_level(logging.INFO)
    server = s3_server_named(request, "seaweedfs")
    bucket = server.pool.take()
    setup = server.storage(bucket, "repo")  # static credentials
    session = vrepo.Repository.create(setup).writable_session("main")
    zarr.create_array(
        session.store, name="x", shape=(N_BLOCKS * BLOCK,), chunks=(BLOCK,), dtype="f8"
    )
    session.commit("empty array")

    secrets = tmp_path / "secrets.json"
    secret = server.credentials.secret_access_key
    secrets.write_text(json.dumps({"key": server.credentials.access_key_id, "secret": secret}))
    first_expires_at = datetime.now(UTC) + REFRESH_MARGIN + timedelta(seconds=FRESH_FOR)
    stale_at = (first_expires_at - REFRESH_MARGIN).timestamp()
    provider = LoggingProvider(
        tmp_path / "calls.log", secrets, first_expires_at if scatter else None
    )
    storage = S3Storage(
        bucket,
        "repo",
        endpoint_url=server.endpoint_url,
        region=REGION,
        credentials=provider,
        scatter_credentials=scatter,
    )
    repo = vrepo.Repository.open(storage)  # the coordinator's one call
    session = repo.writable_session("main")
    target = zarr.open_array(session.store, path="x", mode="r+")
    source = da.map_blocks(
        make_block,
        stale_at + 0.3 if scatter else 0.0,
        chunks=((BLOCK,) * N_BLOCKS,),
        dtype="f8",
        meta=np.empty(0, "f8"),
    )
    # Only scattering puts the secret on the wire (the provider itself holds none).
    assert (secret.encode() in pickle.dumps(session.fork())) is scatter
    vrepo.dask.store(source, target)
    snapshot = session.commit("1,000 blocks")
    read = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="x", mode="r")
    with zarr.config.set({"async.concurrency": 64}):
        np.testing.assert_array_equal(read[:], _expected())

    coordinator = os.getpid()
    workers = set(cluster_client.run(os.getpid).values())
    assert len(workers) == 4 and coordinator not in workers
    calls = provider.calls()
    mine = [at for pid, at in calls if pid == coordinator]
    theirs = collections.Counter(pid for pid, _ in calls if pid != coordinator)
    assert set(theirs) <= workers, calls
    assert max(theirs.values()) == 1, calls  # once per worker process, not once per task
    assert 1 + sum(theirs.values()) <= 1 + 4
    if scatter:
        # One call before the job; after expiry the coordinator may refresh once for itself
        # (to commit), and workers called only then, not on first use.
        assert len(mine) <= 2 and mine[0] < stale_at <= min(mine[1:], default=stale_at), calls
        assert all(at >= stale_at for pid, at in calls if pid != coordinator), calls
    else:
        assert len(mine) == 1, calls

    objects = _all_objects(server, bucket)
    assert sum(key.startswith("repo/chunks/") for key in objects) == N_BLOCKS  # none inlined
    assert not [key for key, body in objects.items() if secret.encode() in body]
    logs = [
        caplog.text,
        str(cluster_client.get_worker_logs()),
        str(cluster_client.get_scheduler_logs()),
    ]
    texts = [repr(x) + str(x) for x in (storage, repo, session, session.fork())]
    assert not [text for text in logs + texts if secret in text]
