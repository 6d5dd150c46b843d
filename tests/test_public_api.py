"""What users import stays where they import it: the package's names, the integrations, the
xarray accessor and backend, and the ``vrepo`` command. A move inside the tree must not break
any of these."""

from __future__ import annotations

import importlib.metadata
import inspect
from pathlib import Path

import vrepo

# The names `import vrepo` promises, one a line; a change there is a change of the public API.
PUBLIC = (Path(__file__).parent / "public_api.txt").read_text().split()


def test_the_package_exports_exactly_the_documented_names():
    assert sorted(vrepo.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(vrepo, name) is not None, name


def test_every_error_is_a_vrepo_error():
    errors = [getattr(vrepo, n) for n in PUBLIC if n.endswith("Error")]
    assert all(issubclass(e, vrepo.VRepoError) for e in errors)


def test_integrations_stay_where_users_import_them():
    from vrepo.dask import store
    from vrepo.xarray import VRepoAccessor, to_repo
    from vrepo.zarr import VRepoStore

    assert inspect.isfunction(store) and store is vrepo.dask.store
    assert inspect.isfunction(to_repo) and to_repo is vrepo.xarray.to_repo
    assert VRepoStore is vrepo.VRepoStore
    import xarray as xr

    assert isinstance(xr.Dataset().vrepo, VRepoAccessor)
    assert isinstance(xr.DataArray([1.0]).vrepo, VRepoAccessor)


def test_a_session_store_is_a_vrepo_store():
    repo = vrepo.Repository.create(vrepo.memory_storage())
    assert isinstance(repo.writable_session("main").store, vrepo.VRepoStore)
    assert repo.readonly_session(branch="main").store.read_only


def test_the_xarray_backend_and_the_command_are_registered():
    points = importlib.metadata.entry_points()
    (backend,) = [p for p in points.select(group="xarray.backends") if p.name == "vrepo"]
    from vrepo.xarray.backend import VRepoBackendEntrypoint

    assert backend.load() is VRepoBackendEntrypoint
    (script,) = [p for p in points.select(group="console_scripts") if p.name == "vrepo"]
    from vrepo.cli import app, main

    assert script.load() is main
    assert app.registered_commands or app.registered_groups
