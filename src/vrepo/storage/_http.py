"""aiohttp sessions for HTTP storage backends (Swift): one per event loop and process.

An aiohttp session is bound to the loop it was made in, and vrepo calls storage from several
loops, so each running loop gets its own, shared by every storage object in the process (a
session pools connections per host). Sessions of loops that have closed are abandoned on the
next call; after ``os.fork`` the child starts afresh; at exit the remaining sessions are closed
on their loops, before the loops stop (the hook is moved ahead of zarr's whenever a loop gets
its first session), so nothing prints "Unclosed client session". aiohttp is imported only when
a session is first needed.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any

from vrepo.errors import StorageError

if TYPE_CHECKING:
    import aiohttp

_EXIT_CLOSE_TIMEOUT = 2.0
_CONNECT_TIMEOUT = 10.0
_READ_TIMEOUT = 120.0

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_lock = threading.Lock()
_pid = os.getpid()


def session() -> aiohttp.ClientSession:
    """The running loop's session, created on first use (call from inside the loop)."""
    global _pid
    loop = asyncio.get_running_loop()
    with _lock:
        if _pid != os.getpid():  # forked: the parent's connections are not ours
            for inherited in _sessions.values():
                _abandon(inherited)
            _sessions.clear()
            _pid = os.getpid()
        for closed in [other for other in _sessions if other.is_closed()]:
            _abandon(_sessions.pop(closed))
        found = _sessions.get(loop)
        if found is None or found.closed:
            found = _sessions[loop] = _new_session()
            _run_exit_hook_first()
        return found


async def close_loop() -> None:
    """Close the running loop's session (a later request opens a new one)."""
    with _lock:
        found = _sessions.pop(asyncio.get_running_loop(), None)
    if found is not None:
        with contextlib.suppress(Exception):
            await found.close()


def transient_errors() -> tuple[type[BaseException], ...]:
    """What a request may raise that is worth repeating: connections, timeouts, broken
    answers (aiohttp's client errors)."""
    import aiohttp

    return (OSError, TimeoutError, aiohttp.ClientError)


def _new_session() -> aiohttp.ClientSession:
    try:
        import aiohttp
    except ImportError as exc:  # pragma: no cover - aiohttp comes with the swift extra
        raise StorageError(
            "Swift storage needs aiohttp: install it with `pip install 'vrepo[swift]'`"
        ) from exc
    timeout = aiohttp.ClientTimeout(total=None, connect=_CONNECT_TIMEOUT, sock_read=_READ_TIMEOUT)
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=64),
        auto_decompress=False,  # object bytes exactly as stored
        skip_auto_headers=("Content-Type",),
    )


def _abandon(found: Any) -> None:
    """Release a session whose loop no longer runs: mark its pool closed (no warning)."""
    connector = getattr(found, "connector", None)
    if connector is not None:
        with contextlib.suppress(Exception):
            connector._close()


def _run_exit_hook_first() -> None:
    atexit.unregister(_close_all_at_exit)
    atexit.register(_close_all_at_exit)


def _close_all_at_exit() -> None:
    """Close every session on its loop while the loops still run, and wait for that."""
    with _lock:
        items = list(_sessions.items()) if _pid == os.getpid() else []
        _sessions.clear()
    pending: list[concurrent.futures.Future[None]] = []
    for loop, found in items:
        if loop.is_running() and not loop.is_closed():
            closing = found.close()
            try:
                pending.append(asyncio.run_coroutine_threadsafe(closing, loop))
                continue
            except RuntimeError:
                closing.close()
        _abandon(found)
    concurrent.futures.wait(pending, timeout=_EXIT_CLOSE_TIMEOUT)


atexit.register(_close_all_at_exit)
