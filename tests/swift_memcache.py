"""A memcache stand-in for the Swift all-in-one of the tests (tests/swift_server.py).

TempAuth keeps its tokens in memcache and the proxy caches account and container info
there. The test proxy runs in one process (``workers = 0``), so a dict serves: this paste
filter puts one into every request's environment as ``swift.cache``. No memcached needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any


class DictCache:
    """The part of swift's ``MemcacheRing`` the proxy and TempAuth use, in a dict."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, raise_on_error: bool = False) -> Any:
        with self._lock:
            expires, value = self._items.get(key, (0.0, None))
            if expires and expires < time.time():
                self._items.pop(key, None)
                return None
            return value

    def set(self, key: str, value: Any, serialize: bool = True, time: float = 0, **_: Any) -> None:
        expires = (_now() + time) if time and time < 30 * 24 * 3600 else float(time or 0)
        with self._lock:
            self._items[key] = (expires, value)

    def delete(self, key: str, server_key: str | None = None) -> None:
        with self._lock:
            self._items.pop(key, None)

    def incr(self, key: str, delta: int = 1, time: float = 0) -> int:
        value = int(self.get(key) or 0) + delta
        self.set(key, value, time=time)
        return value

    def decr(self, key: str, delta: int = 1, time: float = 0) -> int:
        return self.incr(key, -delta, time)

    def get_multi(self, keys: Iterable[str], server_key: str) -> list[Any]:
        return [self.get(key) for key in keys]

    def set_multi(self, mapping: dict[str, Any], server_key: str, **kwargs: Any) -> None:
        for key, value in mapping.items():
            self.set(key, value, **kwargs)


def _now() -> float:
    return time.time()


def filter_factory(global_conf: dict[str, Any], **local_conf: Any) -> Callable[..., Any]:
    """Paste filter factory: ``paste.filter_factory = swift_memcache:filter_factory``."""
    cache = DictCache()

    def make_filter(app: Callable[..., Any]) -> Callable[..., Any]:
        def middleware(env: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            env["swift.cache"] = cache
            return app(env, start_response)

        return middleware

    return make_filter
