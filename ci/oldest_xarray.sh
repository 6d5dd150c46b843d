#!/usr/bin/env bash
# Run the xarray-related tests against the OLDEST xarray release vrepo supports.
#
# Usage (from the repo root):
#   bash ci/oldest_xarray.sh                          # default test files
#   bash ci/oldest_xarray.sh tests/test_xarray_backend.py -k append
#
# Arguments, if any, are passed to pytest as they are (paths relative to the
# repo root). Without arguments it runs whichever of tests/test_xarray_*.py and
# tests/test_to_repo*.py and tests/test_distributed_writes.py exist.
#
# Why 2025.6.0: it is the first release with `align_chunks` in Dataset.to_zarr
# and ZarrStore.open_group (2025.4.0, the release before it, has none). It
# works with zarr-python 3.1 (zarr_format=3), numpy 2.4, pandas 3 and dask
# 2026.8 without any other pin, and already has every internal that
# vrepo.xarray.to_repo uses: ZarrStore.open_group,
# ZarrStore._validate_and_autodetect_region, ZarrStore._validate_encoding,
# xarray.backends.zarr._choose_default_mode, xarray.backends.common.ArrayWriter,
# and dump_to_store (in xarray.backends.api; xarray.backends.writers from
# 2025.10.0 on).
#
# Environment:
#   PYTHON          interpreter used to create the venv (default: python3, >= 3.11)
#   OLDEST_XARRAY   xarray version to pin (default: 2025.6.0)
#   VENV            venv directory (default: .venv-oldest-xarray)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
OLDEST_XARRAY="${OLDEST_XARRAY:-2025.6.0}"
VENV="${VENV:-.venv-oldest-xarray}"

export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "oldest_xarray.sh: $PYTHON is older than Python 3.11" >&2
        exit 1
    }
    "$PYTHON" -m venv "$VENV"
fi

# The pin goes on the same command line as the project, so the resolver picks
# every other dependency (zarr, numpy, pandas, dask, cf_xarray, ...) to suit it.
"$VENV/bin/python" -m pip install -q -e ".[test]" "xarray==$OLDEST_XARRAY"

installed="$("$VENV/bin/python" -c 'import xarray; print(xarray.__version__)')"
if [[ "$installed" != "$OLDEST_XARRAY" ]]; then
    echo "oldest_xarray.sh: expected xarray $OLDEST_XARRAY, got $installed" >&2
    exit 1
fi
"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
print("oldest-xarray lane:", ", ".join(
    f"{name} {version(name)}" for name in ("xarray", "zarr", "numpy", "pandas", "dask")
))
EOF

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    shopt -s nullglob
    targets=(tests/test_xarray_*.py tests/test_to_repo*.py tests/test_distributed_writes.py)
    shopt -u nullglob
    if [[ ${#targets[@]} -eq 0 ]]; then
        echo "oldest_xarray.sh: no xarray test files found" >&2
        exit 1
    fi
fi

exec "$VENV/bin/python" -m pytest -n 2 -q "${targets[@]}"
