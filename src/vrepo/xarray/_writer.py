"""Writing xarray data into a repository: `to_repo`.

xarray's own zarr writer encodes the dataset, writes metadata and in-memory variables, and
validates modes, regions and chunk alignment; vrepo then writes dask-backed variables with
`vrepo.dask.store` (one fork per task, change sets merged up a tree), so any dask scheduler,
including a distributed cluster, writes in parallel and the result commits atomically.
Appends and in-place writes are checked first (`vrepo.xarray._append_checks`), regions are
resolved against the stored arrays (`vrepo.xarray._region`): a bad write fails before any write.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Literal

import xarray as xr
import zarr
from xarray.backends.common import ArrayWriter
from xarray.backends.zarr import ZarrStore

from vrepo.engine.repository import Repository
from vrepo.engine.session import ForkSession, Session
from vrepo.errors import InvalidArgumentError, VRepoError
from vrepo.xarray._append_checks import (
    check_append,
    check_in_place,
    default_append_dim,
    undecodable,
)
from vrepo.xarray._append_stored import StoredGroup, comparing, existing_group, open_stored
from vrepo.xarray._region import resolve_region

try:  # xarray >= 2025.09 moved the writers out of backends.api
    from xarray.backends.writers import dump_to_store
except ImportError:  # pragma: no cover - depends on the installed xarray
    from xarray.backends.api import dump_to_store

Mode = Literal["w", "w-", "a", "a-", "r+"]
Region = Mapping[str, slice | Literal["auto"]] | Literal["auto"]

_DATAARRAY_VARIABLE = "__xarray_dataarray_variable__"  # xarray's names, so open_dataarray works
_DATAARRAY_NAME = "__xarray_dataarray_name__"


def to_repo(
    obj: xr.Dataset | xr.DataArray,
    target: Session | Repository,
    *,
    branch: str = "main",
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    group: str | None = None,
    mode: Mode | None = None,
    append_dim: Hashable | None = None,
    region: Region | None = None,
    encoding: Mapping[Hashable, Mapping[str, Any]] | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    split_every: int | None = None,
    progress: bool | None = None,
) -> str | None:
    """Write a Dataset or DataArray into a repository, as ``to_zarr`` would into a store.

    ``target`` is a writable `Session` (the data lands as uncommitted changes; the caller
    commits, and may write more first) or a `Repository` (a session on ``branch`` is opened,
    written and committed once with ``message`` and ``metadata``; the snapshot id is
    returned). A `ForkSession` works too, for workers writing regions of a shared job.

    ``mode``, ``group``, ``append_dim``, ``region`` (a dict or "auto"), ``encoding``,
    ``safe_chunks`` and ``align_chunks`` mean what they mean for ``Dataset.to_zarr``, with
    these additions: ``mode="a"`` without ``append_dim`` appends along the dataset's time
    axis when that is unambiguous and its values differ from the stored ones; equal steps
    along every stored dimension keep xarray's meaning (add or overwrite variables in place);
    any other difference (new depths, a time cf_xarray cannot identify) raises
    `InvalidArgumentError` instead of overwriting stored coordinates. ``append_dim`` on a
    group that does not exist yet creates it, so ingest loops need no special first step.
    Appends and in-place writes are checked before anything is written
    (`InvalidArgumentError` when times overlap or go back, other coordinates or dimension
    sizes differ, a dtype or units would change, or a variable or its bounds is missing),
    comparing values in the stored encoding, so stored times xarray cannot decode are no
    obstacle. Regions must lie inside the stored arrays, and ``"auto"`` ones must be found
    among the stored coordinate values. Dask-backed variables are written by the current
    dask scheduler through forks merged up a tree of ``split_every`` fan-in, with a progress
    bar when ``progress`` (by default, when standard error is a terminal or in Jupyter; dask's
    own bar on a distributed client). If anything fails, the session is left as it was before
    the call.
    """
    ds = _as_dataset(obj)
    session, owned = _writable_session(target, branch)
    into_stored = region is not None or append_dim is not None or mode in ("a", "a-", "r+")
    stored = open_stored(session.store, group) if into_stored else None
    with comparing(group, "compare the dataset with what is stored"):
        raw_names = undecodable(ds, stored) if stored is not None else frozenset()
        mode, append_dim = _resolve_mode(ds, stored, mode, append_dim, region)
        if region is not None:
            region = resolve_region(ds, stored, region, group)
        elif stored is not None and stored.variables:
            if append_dim is not None:
                check_append(ds, stored, append_dim)
            elif mode in ("a", "a-"):
                check_in_place(ds, stored)
    savepoint = session._savepoint()
    try:
        _write(
            ds,
            session,
            group,
            mode,
            append_dim,
            region,
            encoding,
            safe_chunks,
            align_chunks,
            split_every,
            raw_names,
            progress,
        )
    except BaseException:
        session._rollback(savepoint)
        raise
    if not owned:
        return None
    return session.commit(message or _default_message(ds, mode, append_dim, group), metadata)


# --- steps -----------------------------------------------------------------------------------


def _as_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """A DataArray becomes a one-variable Dataset exactly as ``DataArray.to_zarr`` does it."""
    if isinstance(obj, xr.Dataset):
        return obj
    if not isinstance(obj, xr.DataArray):
        raise InvalidArgumentError(
            f"to_repo writes an xarray Dataset or DataArray, not {type(obj).__name__}"
        )
    if obj.name is None:
        return obj.to_dataset(name=_DATAARRAY_VARIABLE)
    if obj.name in obj.coords or obj.name in obj.dims:
        ds = obj.to_dataset(name=_DATAARRAY_VARIABLE)
        ds.attrs[_DATAARRAY_NAME] = obj.name
        return ds
    return obj.to_dataset()


def _writable_session(target: Any, branch: str) -> tuple[Session, bool]:
    """The session to write into, and whether this call owns (and so commits) it."""
    if isinstance(target, Repository):
        return target.writable_session(branch), True
    if isinstance(target, Session):
        if target.read_only:
            raise InvalidArgumentError(
                "to_repo needs a writable session: repo.writable_session(branch), or pass the "
                "Repository to have to_repo commit for you"
            )
        return target, False
    raise InvalidArgumentError(
        f"to_repo writes into a vrepo Repository or a writable Session, not "
        f"{type(target).__name__}; open one with vrepo.Repository.open_or_create(path)"
    )


def _resolve_mode(
    ds: xr.Dataset,
    stored: StoredGroup | None,
    mode: Mode | None,
    append_dim: Hashable | None,
    region: Region | None,
) -> tuple[Mode, Hashable | None]:
    """xarray's default mode, plus vrepo's rules: mode "a" appends along a time axis whose
    values differ (`default_append_dim`), and ``append_dim`` on nothing stored creates it."""
    from xarray.backends.zarr import _choose_default_mode

    exists = stored is not None and bool(stored.variables)
    if append_dim is not None and not exists and mode in (None, "a", "a-"):
        return "w-" if stored is None else "a", None  # the first step of an append loop
    if (
        append_dim is None
        and region is None
        and mode in ("a", "a-")
        and exists
        and (dim := default_append_dim(ds, stored)) is not None  # type: ignore[arg-type]
    ):
        append_dim = dim
    try:
        chosen = _choose_default_mode(mode=mode, append_dim=append_dim, region=region)
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return chosen, append_dim


def _write(
    ds: xr.Dataset,
    session: Session,
    group: str | None,
    mode: Mode,
    append_dim: Hashable | None,
    region: Region | None,
    encoding: Mapping[Hashable, Mapping[str, Any]] | None,
    safe_chunks: bool,
    align_chunks: bool,
    split_every: int | None,
    raw_names: frozenset[Hashable],
    progress: bool | None = None,
) -> None:
    """Metadata and in-memory variables by xarray; dask-backed variables through forks."""
    consolidated = _is_consolidated(session, group)
    writer = _LazyWriter()
    try:
        for variable in ds.variables.values():
            if variable.size == 0:
                variable.load()  # xarray does this too: dask cannot store empty arrays
        zstore = _ZarrStore.open_group(
            session.store,
            mode=mode,
            group=group,
            zarr_format=3,
            consolidated=False,
            consolidate_on_close=False,
            append_dim=append_dim,
            write_region=region,
            safe_chunks=safe_chunks,
            align_chunks=align_chunks,
        )
        zstore.raw_names = raw_names
        ds = zstore._validate_and_autodetect_region(ds)
        zstore._validate_encoding(dict(encoding or {}))
        dump_to_store(ds, zstore, writer, encoding=dict(encoding or {}))
    except VRepoError:
        raise
    except (ValueError, KeyError, TypeError, FileExistsError, FileNotFoundError) as exc:
        raise InvalidArgumentError(f"{type(exc).__name__}: {exc}") from exc
    if writer.sources:
        import dask.array

        from vrepo import dask as vrepo_dask

        if isinstance(session, ForkSession):  # a worker: write here, with no nested cluster
            dask.array.store(
                writer.sources, writer.targets, regions=writer.regions, scheduler="sync"
            )
        else:
            vrepo_dask.store(
                writer.sources,
                writer.targets,
                writer.regions,
                split_every=split_every,
                progress=progress,
            )
    if consolidated:  # xarray's metadata writes dropped it; a stale copy would mislead readers
        zarr.consolidate_metadata(session.store, path=group or "", zarr_format=3)


class _ZarrStore(ZarrStore):
    """xarray's zarr store, seeing the stored variables in ``raw_names`` as plain numbers.

    Its writer decodes every stored variable it writes into, to copy that encoding onto the
    new data; for a variable that xarray cannot decode, and that is written as the numbers
    it holds (`undecodable`), there is nothing to decode, so its time units are hidden.
    """

    raw_names: frozenset[Hashable] = frozenset()

    def open_store_variable(self, name: str) -> xr.Variable:
        var = super().open_store_variable(name)
        if name in self.raw_names:
            var.attrs = {k: v for k, v in var.attrs.items() if k not in ("units", "calendar")}
        return var


class _LazyWriter(ArrayWriter):
    """Collects dask-backed writes for `vrepo.dask.store`; writes in-memory ones at once."""

    def sync(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("vrepo writes the collected sources itself")


def _is_consolidated(session: Session, group: str | None) -> bool:
    """Whether the group exists and carries consolidated metadata."""
    node = existing_group(session.store, group)
    return node is not None and node.metadata.consolidated_metadata is not None


def _default_message(
    ds: xr.Dataset, mode: Mode, append_dim: Hashable | None, group: str | None
) -> str:
    names = ", ".join(map(str, list(ds.data_vars)[:5])) + (" ..." if len(ds.data_vars) > 5 else "")
    where = f" in {group}" if group else ""
    if append_dim is not None:
        return f"Append {ds.sizes[append_dim]} {append_dim} step(s) of {names}{where}"
    return f"Write {names}{where} (mode {mode!r})"
