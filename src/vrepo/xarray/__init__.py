"""xarray integration: `to_repo`, `datatree_to_repo`, the ``.vrepo`` accessors and the backend.

Importing this package is cheap: xarray itself loads when one of its names is first used
(`import vrepo` installs the accessors through `vrepo.xarray._hook` without importing xarray).
The backend that ``xr.open_dataset(..., engine="vrepo")`` and ``xr.open_datatree(...)`` find is
`vrepo.xarray.backend.VRepoBackendEntrypoint`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vrepo.xarray._datatree import datatree_to_repo
    from vrepo.xarray._writer import to_repo
    from vrepo.xarray.accessor import VRepoAccessor, VRepoDataTreeAccessor

_LAZY = {
    "to_repo": "vrepo.xarray._writer",
    "datatree_to_repo": "vrepo.xarray._datatree",
    "VRepoAccessor": "vrepo.xarray.accessor",
    "VRepoDataTreeAccessor": "vrepo.xarray.accessor",
}

__all__ = ["VRepoAccessor", "VRepoDataTreeAccessor", "datatree_to_repo", "to_repo"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vrepo.xarray' has no attribute {name!r}")
    importlib.import_module("vrepo.xarray.accessor")  # using vrepo.xarray means ds.vrepo works
    return getattr(importlib.import_module(_LAZY[name]), name)
