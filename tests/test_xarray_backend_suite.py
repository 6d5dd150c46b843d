"""xarray's own zarr backend tests (its `ZarrBase`), run against vrepo session stores.

As Icechunk does: subclasses of xarray's test base whose zarr target is a writable session's
store, over local storage and over in-memory storage, beside a baseline over zarr's own
`LocalStore`. A vrepo test that fails is a vrepo bug unless the same test fails alike on the
baseline (an old xarray with a new pandas, say): then it is xfailed, with the reason shown
(`xarray_suite.compared_with`). Where vrepo refuses on purpose, the inherited test is
overridden by one asserting the refusal (and the way that works instead). Zarr format 3
only: vrepo refuses format 2 (`test_zarr_format_2_is_refused`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.core.sync import sync

import vrepo
from xarray_suite import FIXTURES, ZarrBase, compared_with, xarray_marks

globals().update(FIXTURES)  # xarray's own fixtures (use_dask, time_unit), found by name


@pytest.fixture(params=[3])
def default_zarr_format(request: pytest.FixtureRequest) -> Iterator[None]:
    """In place of xarray's fixture of this name, whose params are formats 2 and 3."""
    with zarr.config.set(default_zarr_format=request.param):
        yield


@pytest.fixture(autouse=True)
def _xarray_marks(request: pytest.FixtureRequest) -> None:
    xarray_marks(request)


class _Suite(ZarrBase):
    """xarray's ZarrBase, and tests of xarray's that need a directory, redone on any store."""

    @pytest.mark.parametrize("dask", [False, True])
    @pytest.mark.parametrize("write_empty", [True, False, None])
    def test_write_empty_chunks(self, write_empty: bool | None, dask: bool) -> None:
        """xarray's TestZarrWriteEmpty.test_write_empty (which walks a directory), with the
        chunks listed through the store: all-fill chunks are stored only if asked."""
        data = np.array([np.nan, np.nan, 1.0, np.nan]).reshape((1, 2, 2))
        ds = xr.Dataset({"test": (("Z", "Y", "X"), data)})
        encoding = None if dask else {"test": {"chunks": (1, 1, 1)}}
        if dask:
            ds["test"] = ds["test"].chunk(1)
        every = ["0/0/0", "0/0/1", "0/1/0", "0/1/1"]
        expected = every if write_empty else ["0/1/0"]
        with self.create_zarr_target() as store:
            ds.to_zarr(store, mode="w", encoding=encoding, write_empty_chunks=write_empty)
            assert _chunk_keys(store, "test") == expected
            ds.to_zarr(store, mode="a", append_dim="Z", write_empty_chunks=write_empty)
            expected += [f"1{key[1:]}" for key in expected]
            assert _chunk_keys(store, "test") == sorted(expected)
            with xr.open_dataset(store, engine="zarr") as actual:
                xr.testing.assert_identical(actual, xr.concat([ds, ds], dim="Z").compute())


def _chunk_keys(store: zarr.abc.store.Store, array: str) -> list[str]:
    """The chunk keys (as 'z/y/x') the store holds for ``array``."""

    async def collect() -> list[str]:
        return sorted([k async for k in store.list_prefix(f"{array}/c/")])

    return [key.removeprefix(f"{array}/c/") for key in sync(collect())]


@compared_with(None)
class TestLocalStoreBaseline(_Suite):
    """The same tests over zarr's own `LocalStore`: the behaviour vrepo must match."""

    @contextlib.contextmanager
    def create_zarr_target(self) -> Iterator[zarr.storage.LocalStore]:
        with tempfile.TemporaryDirectory() as tmp:
            yield zarr.storage.LocalStore(f"{tmp}/data.zarr")


@compared_with(TestLocalStoreBaseline)
class _VRepoSessionStore(_Suite):
    """Targets are the store of a new repository's writable session (or, if asked, a fork)."""

    _forked = False

    def repository(self) -> contextlib.AbstractContextManager[vrepo.Repository]:
        raise NotImplementedError

    @contextlib.contextmanager
    def create_zarr_target(self) -> Iterator[vrepo.VRepoStore]:
        with self.repository() as repo:
            session = repo.writable_session()
            yield (session.fork() if self._forked else session).store

    @contextlib.contextmanager
    def _fork_targets(self) -> Iterator[None]:
        self._forked = True
        try:
            yield
        finally:
            self._forked = False

    def test_pickle(self) -> None:
        """Refused: a writable session does not pickle (a copy would split its uncommitted
        changes; the error says to fork). A fork's store pickles, with its changes."""
        with pytest.raises(vrepo.VRepoError, match=r"fork\(\)"):
            super().test_pickle()
        with self._fork_targets():
            super().test_pickle()

    def test_pickle_dataarray(self) -> None:
        """As `test_pickle`, for a DataArray."""
        with pytest.raises(vrepo.VRepoError, match=r"fork\(\)"):
            super().test_pickle_dataarray()
        with self._fork_targets():
            super().test_pickle_dataarray()

    def test_zarr_format_2_is_refused(self) -> None:
        """Refused: vrepo stores Zarr format 3 only (xarray's format-2 runs are not made)."""
        ds = xr.Dataset({"foo": ("x", np.arange(3))})
        with self.create_zarr_target() as store:
            with pytest.raises(vrepo.UnsupportedZarrFormatError, match="format 3"):
                ds.to_zarr(store, zarr_format=2, consolidated=False)
            assert not store.session.has_uncommitted_changes


class TestVRepoLocal(_VRepoSessionStore):
    """Repositories on local disk (`LocalStorage`), one per target."""

    @contextlib.contextmanager
    def repository(self) -> Iterator[vrepo.Repository]:
        with tempfile.TemporaryDirectory() as tmp:
            yield vrepo.Repository.create(f"{tmp}/repo.vrepo")


class TestVRepoMemory(_VRepoSessionStore):
    """Repositories in memory (`vrepo.memory_storage()`), one per target."""

    @contextlib.contextmanager
    def repository(self) -> Iterator[vrepo.Repository]:
        yield vrepo.Repository.create(vrepo.memory_storage())
