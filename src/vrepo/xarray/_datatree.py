"""Writing an xarray DataTree into a repository: `datatree_to_repo`, every group in one commit.

Each node's dataset is written by `vrepo.xarray.to_repo` into one session, so modes, encodings,
the checks of appends and regions, and dask writes are exactly the dataset ones, and a reader
never sees half a tree. What only the whole tree shows is worked out here first: a child's
time axis or grid often lives in a parent (inherited coordinates), so which groups append, and
where an "auto" region lands, is decided on each node as the tree shows it. If any group fails,
the session is rolled back to where it was before the first one was written.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple, TypedDict, Unpack

import numpy as np
import xarray as xr
import zarr

from vrepo.engine.repository import Repository
from vrepo.engine.session import Session
from vrepo.errors import InvalidArgumentError
from vrepo.xarray._append_checks import time_dimension
from vrepo.xarray._writer import Mode, Region, to_repo

_APPEND_MODES = ("a", "a-")
_BY_GROUP = "or write group by group with vrepo.xarray.to_repo(ds, target, group=...)"


class _NodeWrite(NamedTuple):
    """One node's share of the tree: what `to_repo` writes, where, and how."""

    path: str  # the node's path in the tree, as encoding keys name it
    group: str | None  # where it lands in the repository
    dataset: xr.Dataset
    mode: Mode | None
    append_dim: Hashable | None = None
    region: Region | None = None


class WriteOptions(TypedDict, total=False):
    """What `datatree_to_repo` passes on to `to_repo` for every group as it is."""

    safe_chunks: bool
    align_chunks: bool
    split_every: int | None


def datatree_to_repo(
    tree: xr.DataTree,
    target: Session | Repository,
    *,
    mode: Mode | None = None,
    append_dim: Hashable | None = None,
    region: Region | None = None,
    encoding: Mapping[str, Mapping[Hashable, Mapping[str, Any]]] | None = None,
    write_inherited_coords: bool = False,
    group: str | None = None,
    branch: str = "main",
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    **options: Unpack[WriteOptions],
) -> str | None:
    """Write every group of a DataTree into a repository, as ``DataTree.to_zarr`` would.

    ``target`` is a writable `Session` (the caller commits) or a `Repository` (a session on
    ``branch`` is opened, written and committed once with ``message`` and ``metadata``; the
    snapshot id is returned). ``group`` places the tree's root below the repository's root.
    ``encoding`` is keyed by node path (``{"/ocean": {"sst": {...}}}``), and
    ``write_inherited_coords`` means what it means for ``DataTree.to_zarr``: by default a
    coordinate is stored only in the node that defines it, and its descendants inherit it.

    ``mode``, ``append_dim``, ``region`` and the `WriteOptions` (``safe_chunks``,
    ``align_chunks``, ``split_every``) apply to every node as for `vrepo.xarray.to_repo`.
    An append (``append_dim``, or ``mode="a"`` along each group's time axis) grows every
    group that has that dimension; the other groups are written with mode "a" (variables
    added or overwritten; with "a-", only new ones added). A group stored along that
    dimension but missing from the tree raises, as it would be left shorter. A region
    applies to each group along the dimensions it has, "auto" looking up inherited
    coordinates too. If any group fails, nothing is committed and the session is as it was.
    """
    _check_arguments(tree, encoding, mode, append_dim, options)
    session, owned = _target_session(target, branch)
    writes = _plan(tree, session, group, mode, append_dim, region, write_inherited_coords)
    savepoint = session._savepoint()
    try:
        for write in writes:
            try:
                to_repo(
                    write.dataset,
                    session,
                    group=write.group,
                    mode=write.mode,
                    append_dim=write.append_dim,
                    region=write.region,
                    encoding=(encoding or {}).get(write.path),
                    **options,
                )
            except InvalidArgumentError as exc:  # say which group it was
                raise InvalidArgumentError(f"group {write.path!r}: {exc}") from exc
    except BaseException:
        session._rollback(savepoint)
        raise
    if not owned:
        return None
    return session.commit(message or _default_message(writes, mode, region), metadata)


def _check_arguments(
    tree: Any,
    encoding: Mapping[str, Any] | None,
    mode: Mode | None,
    append_dim: Hashable | None,
    options: Mapping[str, Any],
) -> None:
    """Refuse what no node could write, before any session is opened."""
    if unknown := sorted(set(options) - set(WriteOptions.__annotations__)):
        raise TypeError(f"datatree_to_repo() got an unexpected keyword argument {unknown[0]!r}")
    if not isinstance(tree, xr.DataTree):
        raise InvalidArgumentError(
            f"datatree_to_repo writes an xarray DataTree, not {type(tree).__name__}; "
            "write a Dataset or DataArray with vrepo.xarray.to_repo"
        )
    if unknown := sorted(set(encoding or {}) - set(tree.groups)):
        raise InvalidArgumentError(
            f"encoding names {unknown}, not groups of this tree: key it by node path, one of "
            f"{list(tree.groups)}"
        )
    if append_dim is not None and mode not in (None, *_APPEND_MODES):
        raise InvalidArgumentError(f"append_dim needs mode='a', 'a-' or None, not mode={mode!r}")


def _target_session(target: Any, branch: str) -> tuple[Session, bool]:
    """The session to write the tree into, and whether this call commits it."""
    if isinstance(target, Repository):
        return target.writable_session(branch), True
    if isinstance(target, Session) and not target.read_only:
        return target, False
    raise InvalidArgumentError(
        f"datatree_to_repo writes into a vrepo Repository or a writable Session, not "
        f"{target!r}; open one with vrepo.Repository.open_or_create(path) (and "
        "repo.writable_session(branch) to commit yourself)"
    )


def _plan(
    tree: xr.DataTree,
    session: Session,
    group: str | None,
    mode: Mode | None,
    append_dim: Hashable | None,
    region: Region | None,
    inherit: bool,
) -> list[_NodeWrite]:
    """Each node's write, root first as ``to_zarr`` does it; appends and "auto" regions
    resolved against what is stored, with inherited coordinates in view, and checked."""
    appending = region is None and (append_dim is not None or mode in _APPEND_MODES)
    auto = region == "auto" or (isinstance(region, Mapping) and "auto" in region.values())
    stored = _stored_tree(session, group) if appending or auto else None
    writes = []
    for rel, node in tree.subtree_with_keys:
        own = node.to_dataset(inherit=inherit or node is tree)
        before, where = _stored_node(stored, rel), _join(group, rel)
        if region is not None:
            if own.variables:  # a region write leaves an empty node's attributes alone
                places = _node_region(node, own, before, region)
                writes.append(_NodeWrite(node.path, where, own, mode, region=places))
        elif appending:
            dim = _node_append_dim(node, own, before, append_dim)
            if dim is None and mode == "a-" and before is not None:
                kept = before.to_dataset(inherit=False).variables  # "a-" overwrites none
                own = own.drop_vars([name for name in own.variables if name in kept])
            writes.append(_NodeWrite(node.path, where, own, mode or "a", dim))
        else:
            writes.append(_NodeWrite(node.path, where, own, mode))
    if appending:
        _check_nothing_left_behind(tree, stored, {w.append_dim for w in writes} - {None})
    return writes


def _join(group: str | None, rel: str) -> str | None:
    """The repository group of a node at ``rel`` (``"."`` for the root) below ``group``."""
    parts = [p for p in f"{group or ''}/{rel}".split("/") if p not in ("", ".")]
    return "/".join(parts) or None


def _stored_tree(session: Session, group: str | None) -> xr.DataTree | None:
    """What the session holds at ``group`` as a lazy DataTree; None if there is nothing."""
    try:
        return xr.open_datatree(
            session.store, engine="zarr", group=group, consolidated=False, zarr_format=3
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    except ValueError as exc:  # groups that do not line up as a tree, or do not decode
        raise InvalidArgumentError(
            f"vrepo could not read the groups stored at {group or '/'!r} as a DataTree "
            f"({exc}): write the tree with mode='w' to replace them, {_BY_GROUP}"
        ) from None


def _stored_node(stored: xr.DataTree | None, rel: str) -> xr.DataTree | None:
    """The stored node at ``rel`` (``"."`` for the root), or None."""
    if stored is None or rel == ".":
        return stored
    try:
        node = stored[rel]
    except KeyError:
        return None
    return node if isinstance(node, xr.DataTree) else None


def _node_append_dim(
    node: xr.DataTree, own: xr.Dataset, before: xr.DataTree | None, append_dim: Hashable | None
) -> Hashable | None:
    """The dimension this node appends along; None: it is written in place (mode "a").

    With ``append_dim``, every node whose own variables run along it. Otherwise the node's
    time axis as the tree shows it, inherited from a parent or not (`to_repo` alone would not
    see an inherited one), when its values differ from the stored ones. `to_repo` checks it.
    """
    if append_dim is not None:
        return append_dim if append_dim in own.dims else None
    if before is None:
        return None
    new, old = node.to_dataset(inherit=True), before.to_dataset(inherit=True)
    dim = time_dimension(new)
    if dim is None or dim not in own.dims or dim not in old.indexes:
        return None
    return None if new.indexes[dim].equals(old.indexes[dim]) else dim


def _node_region(
    node: xr.DataTree, own: xr.Dataset, before: xr.DataTree | None, region: Region
) -> dict[Hashable, Any]:
    """``region`` as this node takes it: only its own dimensions, and "auto" resolved here
    for a coordinate it inherits (xarray would look in the node's own group, find nothing,
    and write at the start)."""
    if isinstance(region, Mapping):
        places: dict[Hashable, Any] = {d: w for d, w in region.items() if d in own.dims}
        lacking = f"none of the region's dimensions {sorted(map(str, region))}"
    elif region == "auto":
        places, lacking = dict.fromkeys(own.dims, "auto"), "no dimension to place it by"
    else:
        raise InvalidArgumentError(
            f"region must be 'auto' or a dict of dimension: slice or 'auto', not {region!r}"
        )
    if not places:
        raise InvalidArgumentError(
            f"group {node.path!r} has variables but {lacking}: leave it out of the tree "
            f"(del tree[{node.path!r}]), {_BY_GROUP}"
        )
    new = node.to_dataset(inherit=True)
    for dim, where in places.items():
        if where == "auto" and dim in new.indexes and dim not in own.variables:
            places[dim] = _inherited_region(node.path, new, before, dim)
    return places


def _inherited_region(
    path: str, new: xr.Dataset, before: xr.DataTree | None, dim: Hashable
) -> slice:
    """Where ``new``'s inherited ``dim`` values stand in the stored tree, as a slice."""
    stored = before.to_dataset(inherit=True).indexes.get(dim) if before is not None else None
    if stored is None:
        raise InvalidArgumentError(
            f"group {path!r}: region='auto' needs {dim!r} stored for it; write the group "
            "first (mode='a'), or give the region as slices"
        )
    found = stored.get_indexer(new.indexes[dim])
    if (found < 0).any() or (np.diff(found) != 1).any():
        raise InvalidArgumentError(
            f"group {path!r}: its {dim!r} values are not one contiguous run of the stored "
            f"ones, as region='auto' needs; select such a run (e.g. .isel({dim}=slice(i, j)))"
        )
    return slice(int(found[0]), int(found[-1]) + 1)


def _check_nothing_left_behind(
    tree: xr.DataTree, stored: xr.DataTree | None, dims: set[Hashable]
) -> None:
    """A stored group along an append dimension must be in the tree, or it falls behind."""
    if stored is None or not dims:
        return
    present = {rel for rel, _ in tree.subtree_with_keys}
    for rel, node in stored.subtree_with_keys:
        along = dims & set(node.to_dataset(inherit=False).dims)
        if rel not in present and along:
            raise InvalidArgumentError(
                f"group {node.path!r} is stored along {sorted(map(str, along))} but is not in "
                f"the tree being appended, so it would be left shorter: add it to the tree, "
                f"{_BY_GROUP}"
            )


def _default_message(writes: list[_NodeWrite], mode: Mode | None, region: Region | None) -> str:
    appended = [w for w in writes if w.append_dim is not None]
    paths = [w.path for w in appended or writes]
    names = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
    if appended:
        dims = ", ".join(sorted({str(w.append_dim) for w in appended}))
        return f"Append along {dims} to {names}"
    return f"Write tree {names} (mode {mode or ('r+' if region is not None else 'w-')!r})"
