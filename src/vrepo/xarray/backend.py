"""The xarray backend: ``xr.open_dataset(repo_path_or_url, engine="vrepo", tag="v1")``.

Any version of a dataset opens like a file, and so does a whole tree of groups with
``xr.open_datatree`` / ``xr.open_groups``. The backend resolves the repository and the
reference (branch, tag, snapshot id, a revision after ``@`` in the path as in
``"data/ocean.vrepo@v1~1"``, or a time with ``as_of``) to a read-only session and lets
xarray's own zarr backend decode the store, so what comes back is exactly what ``open_zarr``
or ``open_datatree(engine="zarr")`` would give for the same data.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any, TypedDict, Unpack

import xarray as xr
from xarray.backends import BackendEntrypoint
from xarray.backends.zarr import ZarrBackendEntrypoint

from vrepo.engine.opening import split_reference
from vrepo.engine.reference import parse_reference
from vrepo.engine.repository import Repository
from vrepo.engine.session import Session
from vrepo.errors import InvalidArgumentError
from vrepo.format import REPO_INFO_KEY
from vrepo.storage import Storage, as_storage

Source = str | os.PathLike[str] | Storage | Repository | Session


class OpenOptions(TypedDict, total=False):
    """The engine's keyword arguments: which version to open, then xarray's usual ones."""

    branch: str | None
    tag: str | None
    snapshot_id: str | None
    as_of: dt.datetime | None
    storage_options: dict[str, Any] | None
    group: str | None
    drop_variables: str | Iterable[str] | None
    mask_and_scale: Any
    decode_times: Any
    concat_characters: Any
    decode_coords: Any
    use_cftime: Any
    decode_timedelta: Any


_VERSION_OPTIONS = ("branch", "tag", "snapshot_id", "as_of", "storage_options")


class VRepoBackendEntrypoint(BackendEntrypoint):
    """Open a vrepo repository (path, URL, `Repository` or `Session`) with xarray.

    Every method takes `OpenOptions`: ``branch``, ``tag``, ``snapshot_id``, ``as_of`` and
    ``storage_options`` choose the version; ``group``, ``drop_variables`` and the decoding
    flags are passed on to xarray's zarr backend.
    """

    description = "Open any version of a dataset stored in a vrepo repository"
    url = "https://github.com/vrepo/vrepo/blob/main/docs/index.md"
    # Declared, not detected, so that xarray's decode_cf=False reaches the decoding flags.
    open_dataset_parameters = ("filename_or_obj", *OpenOptions.__annotations__)
    supports_groups = True  # newer xarray guesses an engine for open_datatree by this

    def open_dataset(  # type: ignore[override]
        self, filename_or_obj: Source, **options: Unpack[OpenOptions]
    ) -> xr.Dataset:
        """One group (the root unless ``group=``) as a Dataset."""
        session, zarr_options = _open(filename_or_obj, options)
        return ZarrBackendEntrypoint().open_dataset(session.store, **zarr_options)

    def open_datatree(  # type: ignore[override]
        self, filename_or_obj: Source, **options: Unpack[OpenOptions]
    ) -> xr.DataTree:
        """Every group (below ``group=``, if given) as one DataTree."""
        session, zarr_options = _open(filename_or_obj, options)
        return ZarrBackendEntrypoint().open_datatree(session.store, **zarr_options)

    def open_groups_as_dict(  # type: ignore[override]
        self, filename_or_obj: Source, **options: Unpack[OpenOptions]
    ) -> dict[str, xr.Dataset]:
        """Every group as a Dataset, by path, for ``xr.open_groups``; no tree checks."""
        session, zarr_options = _open(filename_or_obj, options)
        return ZarrBackendEntrypoint().open_groups_as_dict(session.store, **zarr_options)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for `Repository` and `Session` objects and local repository folders.

        A folder may carry a revision, as in ``"data/ocean.vrepo@v1~1"``.
        """
        if isinstance(filename_or_obj, Repository | Session):
            return True
        if isinstance(filename_or_obj, str | os.PathLike):
            path = os.fspath(filename_or_obj)
            if "://" in path:
                return False
            if _is_local_repository(path):
                return True
            try:
                location = parse_reference(path).location
            except InvalidArgumentError:
                return False
            return location != path and _is_local_repository(location)
        return False


def _is_local_repository(path: str) -> bool:
    return os.path.isfile(os.path.join(path, REPO_INFO_KEY))


def _open(obj: Source, options: OpenOptions) -> tuple[Session, dict[str, Any]]:
    """The read-only session the options name, and the options for xarray's zarr backend."""
    if unknown := sorted(set(options) - set(OpenOptions.__annotations__)):
        raise InvalidArgumentError(
            f"engine='vrepo' takes no argument {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(OpenOptions.__annotations__)} and xarray's own (chunks, cache, ...)"
        )
    rest: dict[str, Any] = dict(options)
    version = {name: rest.pop(name, None) for name in _VERSION_OPTIONS}
    session = _session(obj, **version)
    return session, {"consolidated": False, "zarr_format": 3, **rest}


def _session(
    obj: Any,
    branch: str | None,
    tag: str | None,
    snapshot_id: str | None,
    as_of: dt.datetime | None,
    storage_options: dict[str, Any] | None,
) -> Session:
    if isinstance(obj, Session):
        if any(x is not None for x in (branch, tag, snapshot_id, as_of)):
            raise InvalidArgumentError(
                "a Session already names its snapshot: pass the Repository instead to choose "
                "a branch, tag, snapshot_id or as_of"
            )
        return obj
    if isinstance(obj, str | os.PathLike):
        obj, revision = split_reference(obj, storage_options or None)
        if revision is not None:
            if any(x is not None for x in (branch, tag, snapshot_id)):
                raise InvalidArgumentError(
                    f"the path already names revision {revision!r} after '@'; drop branch=, "
                    "tag= and snapshot_id=, or drop the '@' part"
                )
            return obj.readonly_session(ref=revision, as_of=as_of)
    elif not isinstance(obj, Repository):
        obj = Repository.open(as_storage(obj, storage_options or None))
    return obj.readonly_session(branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
