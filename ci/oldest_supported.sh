#!/usr/bin/env bash
# Run the tests that lean on xarray and zarr internals against the OLDEST xarray and zarr
# releases vrepo supports: the floors in pyproject.toml ("xarray>=...", "zarr>=...").
#
# Usage (from the repo root):
#   bash ci/oldest_supported.sh                          # default test files
#   bash ci/oldest_supported.sh tests/test_xarray_backend.py -k append
#
# Arguments, if any, are passed to pytest as they are (paths relative to the repo root).
# Without arguments it runs the xarray tests (tests/test_xarray_*.py, tests/test_to_repo*.py,
# tests/test_distributed_writes.py) and the zarr-facing ones (tests/test_zarr_store*.py,
# tests/test_dask_store.py, tests/test_chunk_writer.py).
#
# Why xarray 2025.6: it is the first release with `align_chunks` in Dataset.to_zarr and
# ZarrStore.open_group (2025.4.0, the release before it, has none), and already has every
# internal that vrepo.xarray.to_repo uses: ZarrStore.open_group,
# ZarrStore._validate_and_autodetect_region, ZarrStore._validate_encoding,
# xarray.backends.zarr._choose_default_mode, xarray.backends.common.ArrayWriter, and
# dump_to_store (in xarray.backends.api; xarray.backends.writers from 2025.10.0 on).
# Why zarr 3.1.3: vrepo.dask's whole-chunk writer uses zarr internals that moved within the
# 3.1 line (AsyncArray._config became .config in 3.1.6; SupportsSyncCodec arrived in 3.1.6).
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3, >= 3.11)
#   VENV     venv directory (default: .venv-oldest-supported)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-oldest-supported}"

export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "oldest_supported.sh: $PYTHON is older than Python 3.11" >&2
        exit 1
    }
    "$PYTHON" -m venv "$VENV"
fi

# The floors, read from pyproject.toml so they cannot drift from what vrepo declares.
mapfile -t pins < <("$VENV/bin/python" - <<'EOF_PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
requirements = project["dependencies"] + [
    r for extra in project["optional-dependencies"].values() for r in extra
]
for name in ("xarray", "zarr"):
    floors = {m.group(1) for r in requirements if (m := re.match(rf"{name}>=([\w.]+)", r))}
    if len(floors) != 1:
        raise SystemExit(f"oldest_supported.sh: expected one {name} floor, found {floors}")
    print(f"{name}=={floors.pop()}")
EOF_PY
)

# The pins go on the same command line as the project, so the resolver picks every other
# dependency (numpy, pandas, dask, cf_xarray, ...) to suit them.
"$VENV/bin/python" -m pip install -q -e ".[test]" "${pins[@]}"

"$VENV/bin/python" - "${pins[@]}" <<'EOF_PY'
import sys
from importlib.metadata import version
from packaging.version import Version
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    if Version(version(name)) != Version(wanted):
        raise SystemExit(f"oldest_supported.sh: expected {name} {wanted}, got {version(name)}")
print("oldest-supported lane:", ", ".join(
    f"{name} {version(name)}" for name in ("xarray", "zarr", "numpy", "pandas", "dask")
))
EOF_PY

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    shopt -s nullglob
    targets=(tests/test_xarray_*.py tests/test_to_repo*.py tests/test_distributed_writes.py
             tests/test_zarr_store*.py tests/test_dask_store.py tests/test_chunk_writer.py)
    shopt -u nullglob
    if [[ ${#targets[@]} -eq 0 ]]; then
        echo "oldest_supported.sh: no test files found" >&2
        exit 1
    fi
fi

exec "$VENV/bin/python" -m pytest -n 2 -q --durations=15 "${targets[@]}"
