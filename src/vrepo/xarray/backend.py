"""The xarray backend: ``xr.open_dataset(repo_path_or_url, engine="vrepo", tag="v1")``.

Any version of a dataset opens like a file. The backend resolves the repository and the
reference (branch, tag, snapshot id, a revision after ``@`` in the path as in
``"data/ocean.vrepo@v1~1"``, or a time with ``as_of``) to a read-only session and lets
xarray's own zarr backend decode the store, so what comes back is exactly what ``open_zarr``
would give for the same data.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

from xarray.backends import BackendEntrypoint
from xarray.backends.zarr import ZarrBackendEntrypoint

from vrepo.engine.opening import split_reference
from vrepo.engine.reference import parse_reference
from vrepo.engine.repository import Repository
from vrepo.engine.session import Session
from vrepo.errors import InvalidArgumentError
from vrepo.format import REPO_INFO_KEY
from vrepo.storage import Storage, as_storage


class VRepoBackendEntrypoint(BackendEntrypoint):
    """Open a vrepo repository (path, URL, `Repository` or `Session`) with xarray."""

    description = "Open any version of a dataset stored in a vrepo repository"
    url = "https://github.com/vrepo/vrepo/blob/main/docs/index.md"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "branch",
        "tag",
        "snapshot_id",
        "as_of",
        "group",
        "storage_options",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str] | Storage | Repository | Session,
        *,
        drop_variables: str | Iterable[str] | None = None,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: dt.datetime | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        concat_characters: bool = True,
        decode_coords: bool = True,
        use_cftime: bool | None = None,
        decode_timedelta: bool | None = None,
    ) -> Any:
        session = _session(filename_or_obj, branch, tag, snapshot_id, as_of, storage_options or {})
        return ZarrBackendEntrypoint().open_dataset(
            session.store,
            group=group,
            consolidated=False,
            zarr_format=3,
            drop_variables=drop_variables,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )

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


def _session(
    obj: Any,
    branch: str | None,
    tag: str | None,
    snapshot_id: str | None,
    as_of: dt.datetime | None,
    storage_options: dict[str, Any],
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
