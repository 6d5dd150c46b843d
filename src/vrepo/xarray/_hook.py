"""Register the ``ds.vrepo`` accessor when xarray is imported, without importing it first.

`import vrepo` must make ``ds.vrepo`` work, but importing xarray costs ~0.3 s that the CLI and
pure-zarr users should not pay. If xarray is already imported the accessor is registered at
once; otherwise a one-shot import hook registers it right after xarray finishes importing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType


class _AfterXarray(importlib.abc.MetaPathFinder):
    """Finds xarray like the normal machinery, then runs our registration after its code."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "xarray":
            return None
        sys.meta_path.remove(self)  # one shot; and lets find_spec below skip this finder
        spec = importlib.util.find_spec("xarray")
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_xarray = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_xarray(module)
            import vrepo.xarray.accessor  # noqa: F401  (registers the accessors)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Make ``ds.vrepo`` available now (xarray imported) or whenever xarray gets imported."""
    if "xarray" in sys.modules:
        import vrepo.xarray.accessor  # noqa: F401
    elif importlib.util.find_spec("xarray") is not None and not any(
        isinstance(finder, _AfterXarray) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _AfterXarray())
