"""Test helpers for code built on vrepo; import them only in tests (they need pytest).

`StorageTests` is the conformance suite of `vrepo.storage.Storage`: subclass it to check a
storage backend (see docs/storage.md, "Checking a backend").
"""

from vrepo.testing.storage import StorageTests

__all__ = ["StorageTests"]
