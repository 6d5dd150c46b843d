"""Per-process registries of objects shared by the copies of one storage object.

A storage object sent to workers is unpickled once per task; its copies in one process share
what is costly to repeat (a credentials provider's call, an S3 client) through a registry
keyed by a random origin token that the original creates and its pickles carry.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedRegistry(Generic[T]):
    """Objects by origin: shared while any holder lives, and the ``keep`` most recent kept.

    The weak part finds an object as long as some storage object holds it; the strong,
    bounded part keeps recent ones across the gaps between tasks, when a worker has dropped
    one task's copy and not yet unpickled the next. Nothing else is kept, so a long-lived
    process holds at most ``keep`` objects nobody uses.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._live: weakref.WeakValueDictionary[str, T] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, origin: str, create: Callable[[], T]) -> T:
        """The object of ``origin``, made by ``create()`` (cheap, no I/O) if there is none."""
        with self._lock:
            found = self._live.get(origin)
            if found is None:
                found = self._live[origin] = create()
            self._recent[origin] = found
            self._recent.move_to_end(origin)
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
            return found

    def __len__(self) -> int:
        """How many objects are registered (live or recent)."""
        return len(self._live)
