"""Run vrepo's coroutines from synchronous code on one background event loop.

The public Repository and Session APIs are synchronous (like git and Icechunk); storage is
async. One daemon thread per process runs the loop, re-created after `os.fork`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="vrepo-io", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def _forget_loop_after_fork() -> None:
    global _loop, _lock
    _loop = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_loop_after_fork)


def on_background_loop() -> bool:
    """Whether the caller runs on vrepo's own loop, where a blocking call would hang it."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return running is _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the background loop and return its result."""
    loop = _background_loop()
    if on_background_loop():
        coro.close()
        raise RuntimeError(
            "a synchronous vrepo call was made from vrepo's own event loop; "
            "await the async variant instead"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
