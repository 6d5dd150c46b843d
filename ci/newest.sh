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

# The lane is only worth its name if nothing it is about was held back. pip's resolver is not
# guaranteed to find the newest combination: backtracking through the botocore / aiobotocore /
# boto3 pins of s3fs and moto, it settles for dask and distributed 2026.7.0 on Python 3.13
# although 2026.8.0 installs cleanly with everything else unchanged. So ask for the newest
# release of each watched package that is behind, by name; if pip then cannot install it, or
# it is still behind, the lane fails.
newest_check() {
    "$VENV/bin/python" - "$@" <<'EOF_PY'
import json, subprocess, sys
from importlib.metadata import version
watched = ("zarr", "xarray", "dask", "distributed", "numpy")
outdated = json.loads(subprocess.run(
    [sys.executable, "-m", "pip", "list", "--outdated", "--format=json"],
    capture_output=True, text=True, check=True,
).stdout)
latest = {p["name"].lower(): p["latest_version"] for p in outdated}
stale = [f"{name}=={latest[name]}" for name in watched if name in latest]
if sys.argv[1:] == ["--final"]:
    if stale:
        raise SystemExit(f"newest.sh: FAILED: not the newest releases: {stale}")
    print(f"newest lane: Python {sys.version.split()[0]},", ", ".join(
        f"{name} {version(name)}" for name in (*watched, "pandas")
    ))
else:
    print(" ".join(stale))
EOF_PY
}
held_back="$(newest_check)"
if [[ -n "$held_back" ]]; then
    echo "newest.sh: pip held back $held_back; installing those releases by name"
    # shellcheck disable=SC2086  # one argument per requirement
    "$VENV/bin/python" -m pip install -q -e ".[test]" $held_back
fi
newest_check --final

if [[ $# -gt 0 ]]; then
    exec "$VENV/bin/python" -m pytest -n 2 -q "$@"
fi
exec "$VENV/bin/python" -m pytest -n 2 -q --durations=15
