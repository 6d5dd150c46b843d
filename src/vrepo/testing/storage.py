"""`StorageTests`: the conformance suite every `vrepo.storage.Storage` backend must pass.

Subclass it in a test module, say how to make a fresh, empty storage, and state your backend's
facts in class attributes; pytest then runs every test below against it::

    class TestMyStorage(StorageTests):
        def make_storage(self, tmp_path):
            return MyStorage(tmp_path / "root")

The tests are plain synchronous functions that run their coroutines with `asyncio.run` (one
new event loop per test), so no pytest plugin or configuration is needed.

The suite is composed here from one mixin per concern: `_base` (what a subclass provides, and
the helpers), `_reads_writes`, `_atomic_create`, `_listing`, `_keys` and `_pickling`.
"""

from __future__ import annotations

from vrepo.testing._atomic_create import AtomicCreateTests
from vrepo.testing._keys import KeyValidationTests
from vrepo.testing._listing import ListingTests
from vrepo.testing._pickling import PicklingTests
from vrepo.testing._reads_writes import DeleteTests, ReadWriteTests

__all__ = ["StorageTests"]


# pytest runs inherited tests base class first (reverse MRO), so the last mixin listed runs
# first: the tests run in the order get/put, put_if_absent, delete, list, keys, pickling.
class StorageTests(
    PicklingTests,
    KeyValidationTests,
    ListingTests,
    DeleteTests,
    AtomicCreateTests,
    ReadWriteTests,
):
    """Conformance tests for a `vrepo.storage.Storage` backend; subclass as ``Test...``.

    Provide a new, empty storage per test with `make_storage` (create it below ``tmp_path``,
    so the key tests can see that nothing is written outside it) or by overriding the
    `storage` fixture (for storages that need other fixtures, such as a server). Release
    clients in `close_storage`; list configured secrets in the `secrets` fixture. The class
    attributes state facts about the backend; a test whose capability a backend lacks checks
    the documented refusal instead, so a wrong attribute fails a test rather than hiding one.
    Storages are pickled to child processes started with ``start_method``: a backend's module
    must be importable there (the children get this process's ``sys.path``).
    """
