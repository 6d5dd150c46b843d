"""The ``ds.vrepo`` / ``da.vrepo`` / ``dt.vrepo`` accessors, registered with xarray on import.

`vrepo.xarray._hook` imports this module as soon as xarray is imported, so ``import vrepo`` is
enough. The writers are imported when first called, not here: the hook runs while whichever
module imported xarray first (the writers themselves, say) is still half-initialized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    from vrepo.engine.repository import Repository
    from vrepo.engine.session import Session


@xr.register_dataset_accessor("vrepo")
@xr.register_dataarray_accessor("vrepo")
class VRepoAccessor:
    """``ds.vrepo`` / ``da.vrepo``: vrepo operations on xarray objects."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def to_repo(self, target: Session | Repository, **kwargs: Any) -> str | None:
        """Write this object into a repository; see `vrepo.xarray.to_repo` for arguments."""
        from vrepo.xarray._writer import to_repo

        return to_repo(self._obj, target, **kwargs)


@xr.register_datatree_accessor("vrepo")
class VRepoDataTreeAccessor:
    """``dt.vrepo``: vrepo operations on a whole DataTree."""

    def __init__(self, obj: xr.DataTree) -> None:
        self._obj = obj

    def to_repo(self, target: Session | Repository, **kwargs: Any) -> str | None:
        """Write every group into a repository, with a `Repository` in one commit; see
        `vrepo.xarray.datatree_to_repo` for arguments."""
        from vrepo.xarray._datatree import datatree_to_repo

        return datatree_to_repo(self._obj, target, **kwargs)
