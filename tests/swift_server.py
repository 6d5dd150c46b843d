"""A real OpenStack Swift all-in-one for the tests, started on 127.0.0.1 by the tests.

PyPI's ``swift`` package (the test extra installs it) provides the servers: one proxy with
TempAuth, and one account, container and object server, each a child process running in a
single process (``workers = 0``) on a free port, with one-replica rings on one device below
a temporary directory. TempAuth keeps tokens in memcache; a dict stands in for it
(`swift_memcache`), so no memcached is needed. The user is ``test:tester`` / ``testing``
(account ``AUTH_test``). A server that does not come up fails the tests with its log.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3_servers import _die_with_parent, _tail, free_ports

USER, KEY, ACCOUNT = "test:tester", "testing", "AUTH_test"
READER, READER_KEY = "test:reader", "r3ader-k3y"  # no roles: 403 on every container
STARTUP_TIMEOUT = 60.0  # seconds
TOKEN_LIFE = 3600  # seconds TempAuth's tokens live
_SERVERS = ("account", "container", "object", "proxy")


@dataclass
class SwiftServer:
    """A running Swift all-in-one: where its proxy is, and how to get tokens and containers."""

    proxy_url: str
    logs: Path

    @property
    def auth_url(self) -> str:
        """TempAuth's v1 endpoint."""
        return f"{self.proxy_url}/auth/v1.0"

    @property
    def storage_url(self) -> str:
        """The account's storage URL (what ``OS_STORAGE_URL`` holds)."""
        return f"{self.proxy_url}/v1/{ACCOUNT}"

    def token(self) -> str:
        """A new pre-authenticated token (what ``OS_AUTH_TOKEN`` holds)."""
        request = urllib.request.Request(
            self.auth_url, headers={"X-Auth-User": USER, "X-Auth-Key": KEY}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["X-Auth-Token"]

    def request(
        self, method: str, path: str = "", body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        """One authenticated request below the storage URL: status, headers and body."""
        headers = {"X-Auth-Token": self.token(), **headers}
        request = urllib.request.Request(
            f"{self.storage_url}/{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def new_container(self) -> str:
        """A new, empty container for one test."""
        name = f"vrepo-{uuid.uuid4().hex[:12]}"
        status, _, body = self.request("PUT", name)
        assert status in (201, 202), (status, body)
        return name

    def names(self, container: str) -> list[str]:
        """Every object name in the container (one listing; tests keep them few)."""
        status, _, body = self.request("GET", f"{container}?format=json")
        assert status == 200, (status, body)
        return [item["name"] for item in json.loads(body)]


def _write_configs(root: Path, ports: dict[str, int]) -> None:
    """swift.conf, the four servers' configs and one-device, one-replica rings."""
    devices = root / "node"
    (devices / "d0").mkdir(parents=True)
    user = getpass.getuser()
    (root / "swift.conf").write_text(
        textwrap.dedent(
            """\
            [swift-hash]
            swift_hash_path_suffix = vrepo-tests
            swift_hash_path_prefix = vrepo-tests
            [storage-policy:0]
            name = gold
            default = yes
            """
        )
    )
    common = textwrap.dedent(
        f"""\
        [DEFAULT]
        bind_ip = 127.0.0.1
        workers = 0
        user = {user}
        swift_dir = {root}
        devices = {devices}
        mount_check = false
        disable_fallocate = true
        log_level = WARNING
        """
    )
    for server in ("account", "container", "object"):
        (root / f"{server}-server.conf").write_text(
            common
            + f"bind_port = {ports[server]}\n"
            + f"[pipeline:main]\npipeline = {server}-server\n"
            + f"[app:{server}-server]\nuse = egg:swift#{server}\n"
            + (f"[{server}-replicator]\n[{server}-updater]\n[{server}-auditor]\n")
        )
    (root / "proxy-server.conf").write_text(
        common
        + textwrap.dedent(
            f"""\
            bind_port = {ports["proxy"]}
            [pipeline:main]
            pipeline = catch_errors cache tempauth proxy-server
            [app:proxy-server]
            use = egg:swift#proxy
            account_autocreate = true
            allow_account_management = true
            [filter:catch_errors]
            use = egg:swift#catch_errors
            [filter:cache]
            paste.filter_factory = swift_memcache:filter_factory
            [filter:tempauth]
            use = egg:swift#tempauth
            token_life = {TOKEN_LIFE}
            user_test_tester = {KEY} .admin
            user_test_reader = {READER_KEY}
            """
        )
    )
    rings = textwrap.dedent(
        f"""\
        from swift.common.ring import RingBuilder
        for name, port in {ports!r}.items():
            if name == "proxy":
                continue
            builder = RingBuilder(4, 1, 1)
            builder.add_dev({{"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                             "port": port, "device": "d0", "weight": 1.0}})
            builder.rebalance()
            builder.get_ring().save("{root}/" + name + ".ring.gz")
        """
    )
    subprocess.run([sys.executable, "-c", rings], check=True, capture_output=True, timeout=120)


def _launch(root: Path, server: str) -> subprocess.Popen[bytes]:
    log = (root / f"{server}.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    module = {"proxy": "swift.proxy.server", "object": "swift.obj.server"}.get(
        server, f"swift.{server}.server"
    )
    with log:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; from {module} import main; sys.exit(main())",
                str(root / f"{server}-server.conf"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _wait_until_ready(server: SwiftServer, processes: dict[str, Any]) -> None:
    """Poll until a token is issued and an object can be written, or fail with the logs."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"swift {name} server exited with code {process.returncode}:\n"
                    + _tail(server.logs / f"{name}.log")
                )
        try:
            container = server.new_container()
            status, _, body = server.request("PUT", f"{container}/ready", b"ok")
            if status == 201:
                server.request("DELETE", f"{container}/ready")
                server.request("DELETE", container)
                return
            last_error = RuntimeError(f"PUT answered {status}: {body!r}")
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.2)
    logs = "\n".join(f"--- {name}:\n{_tail(server.logs / f'{name}.log')}" for name in processes)
    raise RuntimeError(
        f"Swift at {server.proxy_url} was not ready after {STARTUP_TIMEOUT:.0f} s "
        f"(last error: {last_error!r}):\n{logs}"
    )


@contextlib.contextmanager
def start_swift(root: Path) -> Iterator[SwiftServer]:
    """Run a Swift all-in-one below ``root`` for the duration of the ``with`` block."""
    ports = dict(zip(_SERVERS, free_ports(len(_SERVERS)), strict=True))
    _write_configs(root, ports)
    server = SwiftServer(f"http://127.0.0.1:{ports['proxy']}", root)
    processes: dict[str, Any] = {}
    try:
        for name in _SERVERS:
            processes[name] = _launch(root, name)
        _wait_until_ready(server, processes)
        yield server
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
