#!/usr/bin/env bash
# The newest lane: the whole test suite on the newest Python this machine has (3.13, else
# 3.12) with the newest zarr, xarray, dask and numpy that pip resolves there.
#
# Usage (from the repo root):
#   bash ci/newest.sh                       # the whole suite
#   bash ci/newest.sh tests/test_to_repo.py # arguments go to pytest as they are
#
# Environment:
#   PYTHON   interpreter to use (default: the first of python3.13, python3.12 that runs,
#            directly or through pyenv); the lane fails loudly if none does
#   VENV     venv directory (default: .venv-newest)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv-newest}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

find_python() {
    local minor candidate prefix
    for minor in 3.13 3.12; do
        candidate="python$minor"
        if "$candidate" -c 'pass' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
        # pyenv shims refuse a version that is installed but not selected: ask pyenv for it.
        if command -v pyenv >/dev/null 2>&1; then
            prefix="$(pyenv prefix "$(pyenv versions --bare | grep -E "^${minor//./\\.}(\.[0-9]+)?$" | sort -V | tail -n 1)" 2>/dev/null || true)"
            if [[ -n "$prefix" && -x "$prefix/bin/python$minor" ]]; then
                echo "$prefix/bin/python$minor"
                return 0
            fi
        fi
    done
    return 1
}

PYTHON="${PYTHON:-$(find_python || true)}"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    echo "newest.sh: FAILED: no Python 3.13 or 3.12 found (looked for python3.13, python3.12" \
        "on PATH and in pyenv); set PYTHON=/path/to/python3.13" >&2
    exit 1
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e ".[test]"

# The lane is only worth its name if nothing was held back: say loudly when a newer release
# of a package it is about exists but was not installed (on Python 3.13 pip resolves dask and
# distributed 2026.7 while 2026.8 exists: to be explained before this becomes a failure).
"$VENV/bin/python" - <<'EOF_PY'
import json, subprocess, sys
from importlib.metadata import version
watched = ("zarr", "xarray", "dask", "distributed", "numpy")
outdated = json.loads(subprocess.run(
    [sys.executable, "-m", "pip", "list", "--outdated", "--format=json"],
    capture_output=True, text=True, check=True,
).stdout)
held = {p["name"].lower(): p["latest_version"] for p in outdated}
stale = {name: (version(name), held[name]) for name in watched if name in held}
if stale:
    print(f"newest.sh: WARNING: not the newest releases (installed, latest): {stale}")
print(f"newest lane: Python {sys.version.split()[0]},", ", ".join(
    f"{name} {version(name)}" for name in (*watched, "pandas")
))
EOF_PY

if [[ $# -gt 0 ]]; then
    exec "$VENV/bin/python" -m pytest -n 2 -q "$@"
fi
exec "$VENV/bin/python" -m pytest -n 2 -q --durations=15
