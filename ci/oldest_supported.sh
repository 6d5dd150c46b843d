#!/usr/bin/env bash
# The oldest-supported lane: the WHOLE test suite against the OLDEST release of every runtime
# dependency that pyproject.toml admits, on the oldest Python it admits.
#
# What it pins: every "name>=floor" of [project].dependencies and of the extras a user installs
# to run vrepo (s3, swift, xarray, dask, cli) is pinned to "name==floor" (zarr, numpy, msgspec,
# zstandard, donfig, google-crc32c, s3fs, fsspec, xarray, cf_xarray, pandas, dask,
# distributed, cloudpickle, typer, rich, aiohttp). Names and floors are read from pyproject.toml, so the lane cannot drift from
# what vrepo declares; the interpreter must be the requires-python floor (3.11). Test-only
# tools (pytest, moto, hypothesis, the sample-data packages, ...) take whatever pip resolves
# next to those pins.
# Why: every Python, zarr, xarray, dask and numpy version that pyproject.toml admits is to be
# covered by a CI lane at each end (ci/newest.sh is the other end); a floor nobody runs is a
# guess. If a floor cannot pass the suite, raise it in pyproject.toml, do not skip tests here.
#
# Usage (from the repo root):
#   bash ci/oldest_supported.sh                          # the whole suite
#   bash ci/oldest_supported.sh tests/test_xarray_backend.py -k append
#
# Arguments, if any, are passed to pytest as they are (paths relative to the repo root).
#
# Why some floors are where they are:
# aiohttp 3.9.2: aiobotocore 2.x (s3fs's client) needs it; with 3.9.0-3.9.1 pip falls back to
# an aiobotocore whose botocore predates IfNoneMatch, and conditional creates on S3 fail.
# google-crc32c 1.7: the oldest release with wheels for both CPython 3.11 and 3.13.
# xarray 2025.6: the first release with `align_chunks` in Dataset.to_zarr and
# ZarrStore.open_group (2025.4.0, the release before it, has none), and already has every
# internal that vrepo.xarray.to_repo uses: ZarrStore.open_group,
# ZarrStore._validate_and_autodetect_region, ZarrStore._validate_encoding,
# xarray.backends.zarr._choose_default_mode, xarray.backends.common.ArrayWriter, and
# dump_to_store (in xarray.backends.api; xarray.backends.writers from 2025.10.0 on).
# zarr 3.1.3: 3.1.0-3.1.2 lack store methods vrepo implements; vrepo.dask's whole-chunk writer
# detects what each zarr offers (tests/test_chunk_writer.py says which path it takes).
# cf_xarray 0.10.4: older releases import xarray.core.arithmetic (0.10.3: .rolling), which
# xarray 2025.6 no longer has. typer 0.15: 0.12.0-0.12.3 reject `int | None` options and
# 0.12.4-0.14 drop the commands of the unnamed sub-apps that vrepo.cli adds to its root.
# pandas 2.1: vrepo.xarray uses pandas itself, and xarray 2025.6 needs pandas >= 2.1.
# msgspec 0.18.6-0.19 hand out memoryviews of the wrong shape; vrepo.format.manifest_codec
# mends them (tests/test_format_manifest.py fails without that).
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3; must be the
#            requires-python floor of pyproject.toml, 3.11)
#   VENV     venv directory (default: .venv-oldest-supported)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-oldest-supported}"

export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi

# The floors, read from pyproject.toml so they cannot drift from what vrepo declares; the
# interpreter is checked against requires-python's floor the same way.
floors="$("$VENV/bin/python" - <<'EOF_PY'
import re, sys
try:
    import tomllib
except ImportError:  # Python < 3.11, older than any vrepo supports
    raise SystemExit(f"oldest_supported.sh: Python {sys.version.split()[0]} is too old: set PYTHON")
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
python_floor = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"].strip())
if python_floor is None:
    raise SystemExit(f"oldest_supported.sh: cannot read requires-python {project['requires-python']!r}")
if sys.version_info[:2] != tuple(map(int, python_floor.groups())):
    raise SystemExit(
        f"oldest_supported.sh: the venv's Python is {sys.version.split()[0]}, not the"
        f" requires-python floor {'.'.join(python_floor.groups())}: set PYTHON (and delete the venv)"
    )
extras = project["optional-dependencies"]
requirements = project["dependencies"] + [r for e in ("s3", "swift", "xarray", "dask", "cli") for r in extras[e]]
floors: dict[str, set[str]] = {}
for requirement in requirements:
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", requirement.strip())
    floor = re.search(r">=\s*([\w.]+)", m.group(2))
    if floor is None:
        raise SystemExit(f"oldest_supported.sh: {requirement!r} has no floor to pin")
    floors.setdefault(m.group(1).lower(), set()).add(floor.group(1))
for name, found in sorted(floors.items()):
    if len(found) != 1:
        raise SystemExit(f"oldest_supported.sh: {name} has several floors: {found}")
    print(f"{name}=={found.pop()}")
EOF_PY
)"
mapfile -t pins <<<"$floors"

# Packages vrepo does not depend on itself are held to releases contemporaneous with the
# floors only where what the resolver would pick today breaks a floor:
constraints=(
    # typer 0.15.0-0.15.3 do not cap click yet fail on click 8.2 (click calls
    # make_metavar(ctx), TyperArgument.make_metavar takes no ctx: usage errors become a
    # TypeError); typer 0.15.4 capped click below 8.2 and 0.16.0 supports it.
    "click<8.2"
)
# Not constrained: numcodecs >= 0.16.4 deprecates the crc32c package that zarr 3.1.3 uses, a
# DeprecationWarning on importing zarr and nothing more (the suite passes with it).
constraints_file="$(mktemp)"
trap 'rm -f "$constraints_file"' EXIT
printf '%s\n' "${constraints[@]}" >"$constraints_file"

# The pins go on the same command line as the project, so the resolver picks every other
# package (numcodecs, botocore, the test tools, ...) to suit them and the constraints.
"$VENV/bin/python" -m pip install -q -e ".[test]" "${pins[@]}" -c "$constraints_file"
rm -f "$constraints_file"  # the trap does not outlive the exec below

"$VENV/bin/python" - "${pins[@]}" <<'EOF_PY'
import sys
from importlib.metadata import version
from packaging.version import Version
pinned = [pin.split("==") for pin in sys.argv[1:]]
for name, wanted in pinned:
    if Version(version(name)) != Version(wanted):
        raise SystemExit(f"oldest_supported.sh: expected {name} {wanted}, got {version(name)}")
print(f"oldest-supported lane: Python {sys.version.split()[0]},", ", ".join(
    f"{name} {version(name)}" for name in (*(name for name, _ in pinned), "click", "numcodecs")
))
EOF_PY

if [[ $# -gt 0 ]]; then
    exec "$VENV/bin/python" -m pytest -n 2 -q --durations=15 "$@"
fi
exec "$VENV/bin/python" -m pytest -n 2 -q --durations=15
