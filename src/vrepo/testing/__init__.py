"""Test helpers for code built on vrepo; import them only in tests (they need pytest).

`StorageTests` is the conformance suite of `vrepo.storage.Storage`: subclass it to check a
storage backend (see docs/storage.md, "Checking a backend"). `FaultyStorage` wraps a storage
and fails chosen calls, before or after they take effect, to test what code does on faults.
"""

from vrepo.testing.faults import FaultyStorage, InjectedFault
from vrepo.testing.storage import StorageTests

__all__ = ["FaultyStorage", "InjectedFault", "StorageTests"]
