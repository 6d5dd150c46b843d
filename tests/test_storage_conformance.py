"""Every vrepo storage backend against the conformance suite `vrepo.testing.StorageTests`.

Each class states its backend's facts; the suite then checks the behaviour they imply. What
is specific to one backend (file layout, fsync strategy, S3 requests and errors) is tested in
test_storage.py and test_s3_storage.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import fsspec
import pytest

from s3_servers import S3Server, s3_server_named
from vrepo.storage import (
    FsspecStorage,
    LocalStorage,
    MemoryStorage,
    S3Storage,
    Storage,
    fsspec_storage,
)
from vrepo.testing import StorageTests


class TestLocalStorage(StorageTests):
    def make_storage(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path / "root")


class TestMemoryStorage(StorageTests):
    shared_across_processes = False  # its pickle refers to the object in this process

    def make_storage(self, tmp_path: Path) -> Storage:
        return MemoryStorage()


class TestFsspecLocal(StorageTests):
    atomic_create = False  # fsspec has no portable atomic create: put_if_absent refuses
    make_durable_reports_missing = False  # no portable fsync: make_durable only checks keys

    def make_storage(self, tmp_path: Path) -> Storage:
        return fsspec_storage(f"file://{tmp_path}/root")


class TestFsspecMemory(StorageTests):
    atomic_create = False
    shared_across_processes = False  # fsspec's memory filesystem is a dict in each process
    make_durable_reports_missing = False

    @pytest.fixture
    def storage(self) -> Iterator[FsspecStorage]:
        """A fresh root on fsspec's memory filesystem, removed afterwards."""
        root = f"memory://vrepo-test-{uuid.uuid4().hex}"
        yield fsspec_storage(root, single_writer=self.single_writer)
        with contextlib.suppress(FileNotFoundError):  # nothing was written
            fsspec.filesystem("memory").rm(root, recursive=True)


class TestFsspecMemorySingleWriter(TestFsspecMemory):
    single_writer = True  # the caller's promise: put_if_absent checks, then writes


class _S3Tests(StorageTests):
    """S3 storage below the prefix 'repo' of a fresh bucket on one of the test servers."""

    server_name: ClassVar[str]
    make_durable_reports_missing = False  # a PUT is durable when it returns

    @pytest.fixture
    def server(self, request: pytest.FixtureRequest) -> S3Server:
        return s3_server_named(request, self.server_name)

    @pytest.fixture
    def storage(self, server: S3Server) -> Storage:
        return server.storage(server.pool.take(), "repo")

    @pytest.fixture
    def secrets(self, server: S3Server) -> Sequence[str]:
        return [server.credentials.secret_access_key]

    async def close_storage(self, storage: Storage) -> None:
        assert isinstance(storage, S3Storage)
        await storage.close()


class TestS3Moto(_S3Tests):
    server_name = "moto"


class TestS3SeaweedFS(_S3Tests):
    server_name = "seaweedfs"
