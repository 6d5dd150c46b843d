"""S3Storage against real servers (moto and SeaweedFS on 127.0.0.1), plus S3Credentials.

The behaviour every backend shares is tested in test_storage.py (which includes both S3
servers) and the multi-process race in test_local_atomic_create.py; this file covers what
is specific to S3: key layout, request counts, the ambiguous-failure resolution of
put_if_absent, error messages, credentials, per-loop clients and pickling.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import zarr
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

import vrepo
import vrepo.storage._s3_clients as s3_clients_module
import vrepo.storage._s3_create as s3_create_module
import vrepo.storage._s3_listing as s3_listing_module
from s3_servers import REGION, S3Server, free_ports
from vrepo.errors import InvalidArgumentError, InvalidKeyError, ObjectNotFoundError, StorageError
from vrepo.storage import S3Credentials, S3Storage, as_storage, s3_storage
from vrepo.storage.credentials import REFRESH_MARGIN

SECRET = "s3cr3t-Never-Shown-0123456789"
TOKEN = "t0ken-Never-Shown-9876543210"


# --- layout and plain operations ------------------------------------------------------


async def test_keys_map_below_the_prefix(
    s3_server: S3Server, s3_bucket: str, s3: S3Storage
) -> None:
    await s3.put("chunks/abc", b"hello")
    assert await s3.put_if_absent("refs/branch.main/1.json", b"ref")
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "repo/chunks/abc",
        "repo/refs/branch.main/1.json",
    ]
    assert client.get_object(Bucket=s3_bucket, Key="repo/chunks/abc")["Body"].read() == b"hello"
    client.put_object(Bucket=s3_bucket, Key="elsewhere", Body=b"not ours")
    client.put_object(Bucket=s3_bucket, Key="repo/folder/", Body=b"")  # a console folder marker
    assert await s3.list("") == ["chunks/abc", "refs/branch.main/1.json"]


async def test_empty_prefix_uses_the_bucket_root(s3_server: S3Server, s3_bucket: str) -> None:
    storage = s3_server.storage(s3_bucket)
    await storage.put("repo.json", b"{}")
    assert await storage.list("") == ["repo.json"]
    assert s3_server.client().head_object(Bucket=s3_bucket, Key="repo.json")
    await storage.close()


async def test_get_ranges_and_missing(s3: S3Storage) -> None:
    await s3.put("k", b"0123456789")
    assert await s3.get("k", (3, 3)) == b""
    assert await s3.get("k", (9, 10)) == b"9"
    assert await s3.get("k", (11, 12)) == b""
    with pytest.raises(ObjectNotFoundError):
        await s3.get("missing", (3, 3))
    await s3.put("empty", b"")
    assert await s3.get("empty", (0, 5)) == b""


def _count_requests(fs: Any, operation: str) -> list[str]:
    """Record every HTTP request (retries included) the client sends for ``operation``."""
    sent: list[str] = []
    fs.s3.meta.events.register(
        f"before-send.s3.{operation}", lambda **kwargs: sent.append(operation)
    )
    return sent


async def test_list_with_limit_is_one_request(s3: S3Storage) -> None:
    keys = [f"refs/branch.main/{999 - i:012d}.json" for i in range(25)]
    await asyncio.gather(*(s3.put(key, b"r") for key in keys))
    requests = _count_requests(await s3._filesystem(), "ListObjectsV2")
    assert await s3.list("refs/branch.main/", limit=1) == [min(keys)]
    assert len(requests) == 1
    assert await s3.list("refs/branch.main/", limit=3) == sorted(keys)[:3]
    assert len(requests) == 2
    assert await s3.list("refs/branch.main/", limit=0) == []
    assert len(requests) == 2  # nothing to ask


async def test_list_follows_pages(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_listing_module, "_MAX_PAGE", 4)
    keys = [f"chunks/{i:02d}" for i in range(10)]
    await asyncio.gather(*(s3.put(key, b"c") for key in keys))
    requests = _count_requests(await s3._filesystem(), "ListObjectsV2")
    assert await s3.list("chunks/") == keys
    assert len(requests) == 3
    assert await s3.list("chunks/", limit=6) == keys[:6]
    assert len(requests) == 5


async def test_make_durable_sends_nothing(s3: S3Storage) -> None:
    fs = await s3._filesystem()
    requests = _count_requests(fs, "HeadObject") + _count_requests(fs, "GetObject")
    await s3.make_durable(["chunks/never-written"])
    assert requests == []
    with pytest.raises(InvalidKeyError):
        await s3.make_durable(["../x"])


# --- put_if_absent: ambiguous failures are resolved by reading back ---------------------


def _client_error(status: int, code: str, retry_attempts: int = 0) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"simulated {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retry_attempts},
        },
        "PutObject",
    )


def _faulty_put(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch, faults: list[tuple[bool, Exception]]
) -> list[str]:
    """Make the next conditional PUTs fail: (apply the real PUT first?, error to raise)."""
    calls: list[str] = []
    real = S3Storage._conditional_put

    async def conditional_put(fs: Any, path: str, body: bytes) -> None:
        calls.append(path)
        if not faults:
            return await real(storage, fs, path, body)
        applied, error = faults.pop(0)
        if applied:
            await real(storage, fs, path, body)
        raise error

    monkeypatch.setattr(storage, "_conditional_put", conditional_put)
    monkeypatch.setattr(s3_create_module, "_CONFLICT_BACKOFF", 0.001)
    return calls


@pytest.mark.parametrize(
    "error",
    [
        ConnectionClosedError(endpoint_url="http://127.0.0.1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1"),
        _client_error(503, "ServiceUnavailable"),
        _client_error(412, "PreconditionFailed", retry_attempts=1),  # 412 to botocore's retry
    ],
    ids=["connection-closed", "read-timeout", "503", "412-after-retry"],
)
async def test_applied_then_failed_is_a_win(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    calls = _faulty_put(s3, monkeypatch, [(True, error)])
    assert await s3.put_if_absent("refs/1", b"ours")
    assert len(calls) == 1  # read back, not written again
    assert await s3.get("refs/1") == b"ours"


@pytest.mark.parametrize(
    "error",
    [ConnectionClosedError(endpoint_url="http://127.0.0.1"), _client_error(500, "InternalError")],
    ids=["connection-closed", "500"],
)
async def test_failed_before_applying_is_retried(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    calls = _faulty_put(s3, monkeypatch, [(False, error)])
    assert await s3.put_if_absent("refs/1", b"ours")
    assert len(calls) == 2
    assert await s3.get("refs/1") == b"ours"


async def test_unknown_outcome_with_another_writers_object_is_a_loss(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await s3.put("refs/1", b"theirs")
    _faulty_put(s3, monkeypatch, [(False, ReadTimeoutError(endpoint_url="x"))])
    assert not await s3.put_if_absent("refs/1", b"ours")
    _faulty_put(s3, monkeypatch, [(False, _client_error(412, "PreconditionFailed", 2))])
    assert not await s3.put_if_absent("refs/1", b"ours")
    assert await s3.get("refs/1") == b"theirs"


async def test_conflict_409_is_retried(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    conflict = _client_error(409, "ConditionalRequestConflict")
    calls = _faulty_put(s3, monkeypatch, [(False, conflict), (False, conflict)])
    assert await s3.put_if_absent("refs/1", b"ours")
    assert len(calls) == 3
    calls = _faulty_put(s3, monkeypatch, [(False, conflict)])
    assert not await s3.put_if_absent("refs/1", b"again")
    assert len(calls) == 2


async def test_never_resolved_raises(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    faults = [(False, ConnectionClosedError(endpoint_url="x")) for _ in range(20)]
    calls = _faulty_put(s3, monkeypatch, faults)
    with pytest.raises(StorageError, match=r"'refs/1'.*neither applied nor refused"):
        await s3.put_if_absent("refs/1", b"ours")
    assert len(calls) == s3_create_module._CREATE_ATTEMPTS
    assert not await s3.exists("refs/1")


async def test_definite_failures_are_not_retried(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _faulty_put(s3, monkeypatch, [(False, _client_error(403, "AccessDenied"))])
    with pytest.raises(StorageError, match="check the credentials"):
        await s3.put_if_absent("refs/1", b"ours")
    assert len(calls) == 1
    calls = _faulty_put(s3, monkeypatch, [(False, _client_error(501, "NotImplemented"))])
    with pytest.raises(StorageError, match=r"supports conditional writes \(If-None-Match"):
        await s3.put_if_absent("refs/1", b"ours")
    assert len(calls) == 1


# --- errors ---------------------------------------------------------------------------


async def test_missing_bucket(s3_server: S3Server) -> None:
    storage = s3_server.storage("vrepo-no-such-bucket", "repo")
    operations = [
        storage.get("chunks/a"),
        storage.put("chunks/a", b"x"),
        storage.put_if_absent("refs/1", b"x"),
        storage.list("refs/"),
    ]
    for operation in operations:
        with pytest.raises(StorageError) as info:
            await operation
        message = str(info.value)
        assert not isinstance(info.value, ObjectNotFoundError)
        assert "'vrepo-no-such-bucket' does not exist" in message
        assert "create the bucket" in message
        assert s3_server.endpoint_url in message
    await storage.close()


async def test_wrong_credentials(seaweedfs_server: S3Server) -> None:
    bucket = seaweedfs_server.pool.take()
    wrong = S3Credentials(seaweedfs_server.credentials.access_key_id, SECRET)
    storage = seaweedfs_server.storage(bucket, "repo", credentials=wrong)
    unknown = seaweedfs_server.storage(bucket, credentials=S3Credentials("NOSUCHKEY", SECRET))
    for operation in [
        storage.get("chunks/a"),
        storage.put("chunks/a", b"x"),
        storage.put_if_absent("refs/1", b"x"),
        storage.list("refs/"),
        storage.exists("chunks/a"),
        unknown.get("chunks/a"),
    ]:
        with pytest.raises(StorageError) as info:
            await operation
        message = str(info.value)
        assert "denied access" in message
        assert "check the credentials" in message
        assert seaweedfs_server.endpoint_url in message
        assert SECRET not in message
    await storage.close()
    await unknown.close()


async def test_anonymous_access_is_refused_by_seaweedfs(seaweedfs_server: S3Server) -> None:
    storage = S3Storage(
        seaweedfs_server.pool.take(), endpoint_url=seaweedfs_server.endpoint_url, anonymous=True
    )
    with pytest.raises(StorageError, match="denied access"):
        await storage.put("a", b"x")
    await storage.close()


async def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    (port,) = free_ports(1)  # nothing listens there
    new_filesystem = S3Storage._new_filesystem

    def without_retries(self: S3Storage, credentials: S3Credentials | None) -> Any:
        fs = new_filesystem(self, credentials)
        fs.config_kwargs["retries"] = {"max_attempts": 1}  # botocore would back off for ~10 s
        return fs

    monkeypatch.setattr(S3Storage, "_new_filesystem", without_retries)
    storage = S3Storage(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        region=REGION,
        credentials=S3Credentials("KEY", SECRET),
    )
    with pytest.raises(StorageError, match=r"could not talk to http://127\.0\.0\.1:\d+.*reachable"):
        await storage.get("a")
    await storage.close()


def test_bad_arguments() -> None:
    for bucket in ["", "a/b", "with space", 3]:
        with pytest.raises(InvalidArgumentError, match="bucket name"):
            S3Storage(bucket)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match=r"invalid S3 prefix '\.\./up'"):
        S3Storage("bucket", "../up")
    with pytest.raises(InvalidArgumentError, match="endpoint_url"):
        S3Storage("bucket", endpoint_url="127.0.0.1:9000")
    with pytest.raises(InvalidArgumentError, match="anonymous"):
        S3Storage("bucket", anonymous=True, credentials=S3Credentials("k", "s"))
    with pytest.raises(InvalidArgumentError, match="credentials must be"):
        S3Storage("bucket", credentials="key:secret")  # type: ignore[arg-type]


# --- identity, repr, pickling -----------------------------------------------------------


def test_url_repr_and_equality() -> None:
    credentials = S3Credentials("AKIAEXAMPLEKEY1234", SECRET, TOKEN)
    storage = s3_storage(
        "bucket",
        "a/b/",
        endpoint_url="http://user:pw@127.0.0.1:9000/path",
        credentials=credentials,
    )
    assert storage.url == "s3://bucket/a/b (endpoint http://127.0.0.1:9000)"
    assert repr(storage) == "S3Storage('s3://bucket/a/b (endpoint http://127.0.0.1:9000)')"
    assert S3Storage("bucket").url == "s3://bucket"
    assert S3Storage("bucket", "x", region="eu-west-1").url == "s3://bucket/x"
    assert storage.prefix == "a/b"
    for text in (repr(storage), str(storage)):
        assert SECRET not in text
        assert TOKEN not in text
        assert "pw" not in text
    same = S3Storage(
        "bucket",
        "a/b",
        endpoint_url="http://user:pw@127.0.0.1:9000/path",
        credentials=S3Credentials("AKIAEXAMPLEKEY1234", SECRET, TOKEN),
    )
    assert same == storage
    assert hash(same) == hash(storage)
    assert S3Storage("bucket", "a/b") != storage  # other credentials
    assert S3Storage("bucket", "a/c") != S3Storage("bucket", "a/b")
    assert as_storage("s3://bucket/a/b") == S3Storage("bucket", "a/b")


def test_credentials_repr_masks_secrets() -> None:
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    credentials = S3Credentials("AKIAEXAMPLEKEY1234", SECRET, TOKEN, expiry)
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert SECRET not in text
        assert TOKEN not in text
        assert "AKIAEXAMPLE" not in text
        assert "1234" in text
        assert "2030-01-01" in text
    assert "session_token=None" in repr(S3Credentials("AKIAEXAMPLEKEY1234", SECRET))


def test_credentials_validation_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        S3Credentials("k", "s", expires_at=datetime(2030, 1, 1))
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        S3Credentials("", "s")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    assert S3Credentials.from_env() == S3Credentials("AKIAFROMENV0000", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    assert S3Credentials.from_env().session_token == TOKEN
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="AWS_SECRET_ACCESS_KEY"):
        S3Credentials.from_env()


async def test_secrets_never_in_messages_or_logs(
    seaweedfs_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    storage = seaweedfs_server.storage(
        seaweedfs_server.pool.take(), credentials=S3Credentials("NOSUCHKEY", SECRET, TOKEN)
    )
    with pytest.raises(StorageError) as info:
        await storage.put_if_absent("refs/1", b"x")
    await storage.close()
    for text in (str(info.value), repr(info.value), caplog.text, repr(storage)):
        assert SECRET not in text
        assert TOKEN not in text


async def test_pickle_round_trip(s3_server: S3Server, s3: S3Storage) -> None:
    await s3.put("chunks/a", b"data")  # creates a client, which must not be pickled
    blob = pickle.dumps(s3)
    assert b"aiohttp" not in blob
    assert b"botocore" not in blob
    clone = pickle.loads(blob)
    assert clone == s3
    assert hash(clone) == hash(s3)
    assert clone._clients == {}
    assert await clone.get("chunks/a") == b"data"
    await clone.close()


def test_pickle_into_another_process(s3_server: S3Server, s3_bucket: str) -> None:
    storage = s3_server.storage(s3_bucket, "repo")
    vrepo._sync.run_sync(storage.put("chunks/a", b"from the parent"))
    script = (
        "import asyncio, pickle, sys\n"
        "storage = pickle.loads(sys.stdin.buffer.read())\n"
        "async def main():\n"
        "    await storage.put('chunks/b', await storage.get('chunks/a') + b' and child')\n"
        "    await storage.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(storage), check=True, timeout=120
    )
    assert vrepo._sync.run_sync(storage.get("chunks/b")) == b"from the parent and child"


# --- clients per event loop ------------------------------------------------------------


def test_one_client_per_event_loop(s3: S3Storage) -> None:
    """vrepo's loop, and loops in two threads at once, each get (and keep) their own client."""
    vrepo._sync.run_sync(s3.put("chunks/a", b"a"))
    seen: dict[int, set[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def in_new_loop(index: int) -> None:
        async def work() -> None:
            await s3.put(f"chunks/{index}-0", b"x")
            barrier.wait(30)  # both loops are alive, with their clients, at the same time
            for i in range(1, 5):
                await s3.put(f"chunks/{index}-{i}", b"x")
                assert await s3.get("chunks/a") == b"a"
                seen.setdefault(index, set()).add(id(await s3._filesystem()))

        try:
            asyncio.run(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=in_new_loop, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    main_loop_fs = id(vrepo._sync.run_sync(s3._filesystem()))
    assert len(seen[0]) == len(seen[1]) == 1  # one client per loop, reused
    assert len(seen[0] | seen[1] | {main_loop_fs}) == 3  # and never shared between loops
    # The two thread loops have closed: their clients are gone after the next call.
    assert len(vrepo._sync.run_sync(s3.list("chunks/"))) == 11
    assert list(s3._clients) == [vrepo._sync._background_loop()]


# --- credential providers ---------------------------------------------------------------


class _Provider:
    """A picklable provider that counts its calls and hands out credentials of a lifetime."""

    def __init__(self, credentials: S3Credentials, lifetime: timedelta) -> None:
        self.credentials = credentials
        self.lifetime = lifetime
        self.calls = 0

    def __call__(self) -> S3Credentials:
        self.calls += 1
        return S3Credentials(
            self.credentials.access_key_id,
            self.credentials.secret_access_key,
            expires_at=datetime.now(UTC) + self.lifetime,
        )


async def test_provider_called_lazily_and_once(s3_server: S3Server, s3_bucket: str) -> None:
    provider = _Provider(s3_server.credentials, timedelta(hours=1))
    storage = s3_server.storage(s3_bucket, credentials=provider)
    assert provider.calls == 0  # not at construction
    for i in range(5):
        await storage.put(f"k{i}", b"x")
    assert await storage.list("") == [f"k{i}" for i in range(5)]
    assert provider.calls == 1
    await storage.close()


async def test_provider_refreshed_near_expiry(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _Provider(s3_server.credentials, REFRESH_MARGIN - timedelta(seconds=30))
    storage = s3_server.storage(s3_bucket, credentials=provider)
    await storage.put("a", b"x")
    first = await storage._filesystem()
    assert provider.calls == 2  # the first fetch already expires within the margin
    assert await first._ls(s3_bucket, refresh=True)  # a request through it opens a connection pool
    provider.lifetime = timedelta(hours=1)
    await storage.put("b", b"y")
    assert provider.calls == 3
    assert await storage._filesystem() is not first  # a new client with the new credentials
    await storage.get("a")
    assert provider.calls == 3
    # The replaced client stays open for requests still using it, then is closed: its aiohttp
    # sessions are closed and dropped (aiobotocore 3 sets `_sessions` to None, 2.x empties it).
    http = first._s3._endpoint.http_session
    sessions = list(http._sessions.values())
    assert sessions and not any(session.closed for session in sessions)
    monkeypatch.setattr(s3_clients_module, "_CLOSE_DELAY", 0.0)
    await storage.get("a")
    assert all(session.closed for session in sessions)
    assert not http._sessions
    await storage.close()


async def test_provider_failures_are_storage_errors(s3_server: S3Server) -> None:
    def broken() -> S3Credentials:
        raise RuntimeError("token service down")

    storage = s3_server.storage("bucket", credentials=broken)
    with pytest.raises(StorageError, match=r"provider .*broken failed: RuntimeError: token"):
        await storage.get("a")
    storage = s3_server.storage("bucket", credentials=lambda: ("key", "secret"))
    with pytest.raises(StorageError, match="returned tuple, expected S3Credentials"):
        await storage.get("a")


def test_provider_pickles_with_the_storage(s3_server: S3Server) -> None:
    provider = _Provider(s3_server.credentials, timedelta(hours=1))
    storage = s3_server.storage("bucket", credentials=provider)
    clone = pickle.loads(pickle.dumps(storage))
    assert isinstance(clone._config.credentials, _Provider)
    assert clone._config.credentials.calls == 0


# --- end to end -----------------------------------------------------------------------


def test_repository_on_s3(s3_server: S3Server, s3_bucket: str) -> None:
    storage = s3_server.storage(s3_bucket, "ocean.vrepo")
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="t", shape=(6, 4), chunks=(2, 4), dtype="f4")
    data = np.arange(24, dtype="f4").reshape(6, 4)
    array[:] = data
    snapshot = session.commit("first write")

    reopened = vrepo.Repository.open(
        as_storage(
            f"s3://{s3_bucket}/ocean.vrepo",
            {
                "endpoint_url": s3_server.endpoint_url,
                "region": REGION,
                "credentials": s3_server.credentials,
            },
        )
    )
    read = zarr.open_array(reopened.readonly_session("main").store, path="t", mode="r")
    np.testing.assert_array_equal(read[:], data)
    assert reopened.readonly_session(snapshot_id=snapshot) is not None
    keys = vrepo._sync.run_sync(storage.list(""))
    assert "repo.json" in keys
    assert any(key.startswith("refs/branch.main/") for key in keys)
    assert any(key.startswith("chunks/") or key.startswith("manifests/") for key in keys)
