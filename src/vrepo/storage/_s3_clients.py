"""The s3fs clients of S3 storage: one per event loop, shared by a storage's unpickled copies.

s3fs's async filesystem is bound to the event loop it was created in, and vrepo runs storage
calls on several loops (its background loop, zarr's loop, callers' loops), so each storage
object keeps one client per running loop. The copies of one storage unpickled in a process
share their clients by origin token (`clients_of`): a worker unpickles a copy per task, and a
new client costs tens of milliseconds. Clients are closed when garbage collected or at exit,
on their own loops where those still run. s3fs is imported only when a client is first made.

At exit the closes must finish before the loops stop, or aiohttp and asyncio complain
("Task was destroyed but it is pending", "Unclosed client session", "coroutine ... was
never awaited"; dask workers printed them on exit). So one exit hook closes every client and
waits for the closes, including those garbage collection scheduled just before; the
finalizers of `Clients` do not run at exit. The hook is registered again whenever a loop
gets its first client, so it runs before the exit hooks of libraries imported earlier, such
as zarr's, which stops the loop that zarr-driven requests ran on.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vrepo.errors import StorageError
from vrepo.storage._shared import SharedRegistry
from vrepo.storage.credentials import S3Credentials

if TYPE_CHECKING:
    from s3fs import S3FileSystem

_CLOSE_DELAY = 300.0  # seconds an outdated client stays open for requests still using it
_SHARED_CLIENTS = 8  # client sets of unpickled copies nobody holds, kept per process
_EXIT_CLOSE_TIMEOUT = 2.0  # seconds the exit hook waits for clients to close


class LoopClient:
    """The s3fs filesystem of one event loop, and those it replaced, still to be closed."""

    __slots__ = ("credentials", "fs", "retired")

    def __init__(self, fs: S3FileSystem, credentials: S3Credentials | None) -> None:
        self.fs = fs
        self.credentials = credentials
        self.retired: list[tuple[float, S3FileSystem]] = []

    def replace(self, fs: S3FileSystem, credentials: S3Credentials | None) -> None:
        """Use ``fs`` from now on; the old one is kept for requests still running on it."""
        self.retired.append((time.monotonic(), self.fs))
        self.fs, self.credentials = fs, credentials

    def take_retired(self, older_than: float = 0.0) -> list[S3FileSystem]:
        """Remove and return the replaced filesystems retired at least ``older_than`` ago."""
        cutoff = time.monotonic() - older_than
        due = [fs for since, fs in self.retired if since <= cutoff]
        self.retired = [(since, fs) for since, fs in self.retired if since > cutoff]
        return due

    def everything(self) -> list[S3FileSystem]:
        """The current filesystem and the retired ones, all still open."""
        return [self.fs, *(fs for _, fs in self.retired)]


class Clients:
    """One `LoopClient` per event loop, for one storage object or its unpickled copies.

    Closed when garbage collected (or at exit), on their loops where those still run.
    """

    __slots__ = ("__weakref__", "by_loop", "lock", "pid")

    def __init__(self) -> None:
        self.by_loop: dict[asyncio.AbstractEventLoop, LoopClient] = {}
        self.lock = threading.Lock()
        self.pid = os.getpid()
        # Not at exit: `_close_all_at_exit` closes all clients then, and waits for that.
        weakref.finalize(self, _close_all, self.by_loop).atexit = False
        _all_clients.add(self)

    async def filesystem(
        self,
        credentials: S3Credentials | None,
        new_filesystem: Callable[[S3Credentials | None], S3FileSystem],
    ) -> S3FileSystem:
        """The running loop's filesystem with a live client, made by ``new_filesystem``.

        A new one replaces the old when ``credentials`` were refreshed; the old one is closed
        `_CLOSE_DELAY` later, when requests still using it are done. Clients of loops that
        have closed are dropped.
        """
        loop = asyncio.get_running_loop()
        with self.lock:
            if self.pid != os.getpid():  # forked: the parent's connections are not ours
                self.by_loop.clear()
                self.pid = os.getpid()
            for closed in [other for other in self.by_loop if other.is_closed()]:
                for fs in self.by_loop.pop(closed).everything():
                    _abandon(fs)
            entry = self.by_loop.get(loop)
            if entry is None:
                entry = LoopClient(new_filesystem(credentials), credentials)
                self.by_loop[loop] = entry
                _run_exit_hook_first()
            elif entry.credentials != credentials:  # refreshed (copies carry equal ones)
                entry.replace(new_filesystem(credentials), credentials)
            retired = entry.take_retired(_CLOSE_DELAY) if entry.retired else []
        for fs in retired:
            await _close_filesystem(fs)
        await entry.fs.set_session()  # cheap once the client exists
        return entry.fs

    async def close_loop(self) -> None:
        """Close the clients of the running event loop (a later request opens new ones)."""
        loop = asyncio.get_running_loop()
        with self.lock:
            entry = self.by_loop.pop(loop, None)
        for fs in entry.everything() if entry is not None else ():
            await _close_filesystem(fs)


_all_clients: weakref.WeakSet[Clients] = weakref.WeakSet()
_shared_clients: SharedRegistry[Clients] = SharedRegistry(_SHARED_CLIENTS)


def clients_of(origin: str) -> Clients:
    """The clients shared in this process by the unpickled copies of storage ``origin``."""
    return _shared_clients.get(origin, Clients)


def new_filesystem(
    credentials: S3Credentials | None,
    *,
    anonymous: bool,
    endpoint_url: str | None,
    region: str | None,
) -> S3FileSystem:
    """A new asynchronous s3fs filesystem (its client is created on first use)."""
    try:
        import s3fs
    except ImportError as exc:
        raise StorageError(
            "S3 storage needs s3fs: install it with `pip install 'vrepo[s3]'`"
        ) from exc
    options: dict[str, Any] = {
        "session": _new_session(),
        "asynchronous": True,
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "anon": anonymous,
        "endpoint_url": endpoint_url,
    }
    if region:
        options["client_kwargs"] = {"region_name": region}
    if credentials is not None:
        options["key"] = credentials.access_key_id
        options["secret"] = credentials.secret_access_key
        options["token"] = credentials.session_token
    return s3fs.S3FileSystem(**options)


def _new_session() -> Any:
    """An aiobotocore session sharing the process's service-model loader.

    Sessions are not shared (their credential caches may be bound to an event loop), but
    loading S3's service model costs more than everything else in creating a client.
    """
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component("data_loader", data_loader())
    return session


@functools.cache
def data_loader() -> Any:
    """botocore's loader of service models, one per process."""
    from botocore.loaders import create_loader

    return create_loader()


# --- closing -----------------------------------------------------------------------------


async def _close_filesystem(fs: S3FileSystem) -> None:
    client = getattr(fs, "_s3", None)
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()


def _abandon(fs: S3FileSystem) -> None:
    """Release a client whose event loop has closed (it can no longer be awaited).

    Marks its connection pools closed so aiohttp does not warn about an unclosed session;
    the sockets themselves are freed with their loop's transports.
    """
    http = getattr(getattr(getattr(fs, "_s3", None), "_endpoint", None), "http_session", None)
    for session in list((getattr(http, "_sessions", None) or {}).values()):
        connector = getattr(session, "connector", None)
        if connector is not None:
            with contextlib.suppress(Exception):
                connector._close()


def _close_all(clients: dict[asyncio.AbstractEventLoop, LoopClient]) -> None:
    """Finalizer of `Clients`: close each client on its loop (see `_pending_closes`), or
    abandon it where its loop no longer runs."""
    for loop, entry in list(clients.items()):
        for fs in entry.everything():
            if not _schedule_close(fs, loop):
                _abandon(fs)
    clients.clear()


_pending_closes: set[concurrent.futures.Future[None]] = set()  # scheduled, not yet done
_pending_lock = threading.Lock()


def _schedule_close(fs: S3FileSystem, loop: asyncio.AbstractEventLoop) -> bool:
    """Start closing ``fs`` on ``loop``, remembered until done; False if the loop is not
    running (then nothing was scheduled)."""
    if not loop.is_running() or loop.is_closed():
        return False
    closing = _close_filesystem(fs)
    try:
        future = asyncio.run_coroutine_threadsafe(closing, loop)
    except RuntimeError:  # the loop closed meanwhile
        closing.close()  # never started: no "coroutine was never awaited" warning
        return False
    with _pending_lock:
        _pending_closes.add(future)
    future.add_done_callback(_forget_close)
    return True


def _forget_close(future: concurrent.futures.Future[None]) -> None:
    with _pending_lock:
        _pending_closes.discard(future)


def _forget_closes_after_fork() -> None:
    """A forked child does not wait at exit for closes scheduled on its parent's loops."""
    global _pending_lock
    _pending_lock = threading.Lock()
    _pending_closes.clear()


os.register_at_fork(after_in_child=_forget_closes_after_fork)


def _run_exit_hook_first() -> None:
    """Move `_close_all_at_exit` to the front of the exit hooks (they run last-in first-out),
    ahead of those that stop the loops our clients live on (zarr's stops its loop)."""
    atexit.unregister(_close_all_at_exit)
    atexit.register(_close_all_at_exit)


def _close_all_at_exit() -> None:
    """Close the clients still open at exit, while the loops (in daemon threads) still run,
    and wait for those closes and any that garbage collection scheduled before.

    Shared clients are kept past their storage objects (see `_shared_clients`); closes merely
    scheduled at exit would never run, leaving aiohttp to warn about unclosed sessions.
    """
    for clients in list(_all_clients):
        if clients.pid != os.getpid():  # inherited through os.fork: their loops do not run here
            for entry in clients.by_loop.values():
                for fs in entry.everything():
                    _abandon(fs)
            clients.by_loop.clear()
        with clients.lock:
            _close_all(clients.by_loop)
    with _pending_lock:
        pending = list(_pending_closes)
    concurrent.futures.wait(pending, timeout=_EXIT_CLOSE_TIMEOUT)


atexit.register(_close_all_at_exit)
