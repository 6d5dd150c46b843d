"""`import_zarr`: an existing Zarr store becomes one commit of a vrepo repository."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from vrepo._progress import wanted
from vrepo._sync import run_sync
from vrepo.engine.repository import Repository
from vrepo.errors import InvalidArgumentError
from vrepo.importing._copy import copy_here, copy_on_cluster, distributed_client
from vrepo.importing._source import list_source, open_source
from vrepo.importing._target import check_free, group_path, key_prefix, placed
from vrepo.importing._v2 import to_v3
from vrepo.storage import as_storage

if TYPE_CHECKING:
    from zarr.abc.store import Store


def import_zarr(
    source: str | os.PathLike[str] | Store,
    repo: Repository | str | os.PathLike[str],
    *,
    branch: str = "main",
    message: str | None = None,
    group: str | None = None,
    source_options: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> str:
    """Import the Zarr store ``source`` into ``repo`` as one commit on ``branch``; return the
    new snapshot id.

    ``source`` is a local path, an ``s3://`` (or other fsspec) URL configured by
    ``source_options`` (fsspec's, e.g. ``endpoint_url``, ``key``, ``secret``, ``anon``), or
    a zarr store. Zarr format 3 metadata is kept as it is; format 2 metadata is converted to
    format 3 by zarr's own migration code (its chunk key encoding stays ``v2``, so chunk keys
    do not change). Chunk bytes are copied as they are, never decoded: in this process, or
    on the workers when a Dask distributed client is active. The result reads through xarray
    as the source does.

    ``repo`` is a `Repository`, or a path or URL (with ``storage_options``, as for
    `Repository.open`) where a repository is opened, or created if there is none.
    The source's root goes to ``group`` (a path such as ``"a/b"``; default: the root), and
    nothing there is overwritten: nodes at or below it raise `InvalidArgumentError`.
    ``message`` defaults to ``"import SOURCE"``. ``progress`` shows a progress bar (by
    default when a terminal or Jupyter watches).
    """
    from zarr.core.buffer import default_buffer_prototype

    path = group_path(group)
    repository = _repository(repo, storage_options)
    session = repository.writable_session(branch)
    existing = repository.list_nodes(session.snapshot_id)  # what this session starts from
    check_free(path, existing, branch)
    store = open_source(source, source_options)
    described = _described(source)
    listing = run_sync(list_source(store, described))
    documents = to_v3(listing.metadata) if listing.zarr_format == 2 else listing.metadata
    buffer = default_buffer_prototype().buffer
    for key, data in sorted(placed(documents, path, existing).items()):
        session.store.set_sync(key, buffer.from_bytes(data))  # type: ignore[attr-defined]
    prefix, keys = key_prefix(path), listing.data_keys
    client = distributed_client()
    if client is not None:
        copy_on_cluster(client, store, session, keys, prefix, progress=progress)
    else:
        copy_here(store, session, keys, prefix, show=wanted(progress))
    return session.commit(f"import {described}" if message is None else message)


def _repository(repo: Any, storage_options: dict[str, Any] | None) -> Repository:
    """``repo`` itself, or the repository at that path or URL, created if there is none."""
    if isinstance(repo, Repository):
        if storage_options:
            raise InvalidArgumentError("storage_options apply only to a path or URL as repo")
        return repo
    return Repository.open_or_create(as_storage(repo, storage_options))


def _described(source: Any) -> str:
    """How messages and the default commit message name ``source``."""
    return os.fspath(source) if isinstance(source, str | os.PathLike) else str(source)
