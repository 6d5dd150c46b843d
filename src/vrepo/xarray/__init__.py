"""xarray integration: `to_repo`, the ``ds.vrepo`` accessor and the ``engine="vrepo"`` backend.

Importing this package is cheap: xarray itself loads when `to_repo` or `VRepoAccessor` is first
used (`import vrepo` installs the accessor through `vrepo.xarray._hook` without importing
xarray). The backend that ``xr.open_dataset(..., engine="vrepo")`` finds is
`vrepo.xarray.backend.VRepoBackendEntrypoint`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vrepo.xarray._writer import to_repo
    from vrepo.xarray.accessor import VRepoAccessor

_LAZY = {"to_repo": "vrepo.xarray._writer", "VRepoAccessor": "vrepo.xarray.accessor"}

__all__ = ["VRepoAccessor", "to_repo"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vrepo.xarray' has no attribute {name!r}")
    importlib.import_module("vrepo.xarray.accessor")  # using vrepo.xarray means ds.vrepo works
    return getattr(importlib.import_module(_LAZY[name]), name)
