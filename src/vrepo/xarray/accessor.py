"""The ``ds.vrepo`` / ``da.vrepo`` accessor, registered with xarray when this module is imported.

`vrepo.xarray._hook` imports it as soon as xarray is imported, so ``import vrepo`` is enough.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from vrepo.engine.repository import Repository
from vrepo.engine.session import Session
from vrepo.xarray._writer import to_repo


@xr.register_dataset_accessor("vrepo")
@xr.register_dataarray_accessor("vrepo")
class VRepoAccessor:
    """``ds.vrepo`` / ``da.vrepo``: vrepo operations on xarray objects."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def to_repo(self, target: Session | Repository, **kwargs: Any) -> str | None:
        """Write this object into a repository; see `vrepo.xarray.to_repo` for arguments."""
        return to_repo(self._obj, target, **kwargs)
