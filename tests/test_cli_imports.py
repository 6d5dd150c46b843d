"""What ``vrepo log`` loads: none of the heavy modules it has no use for.

A ``vrepo log`` is a new process each time, so its imports are most of its cost
(benchmarks/bench_history.py: at most 0.3 s on 10,000 commits). typer 0.29 converts argument
values through pydantic; `vrepo.cli._convert` converts the plain ones itself, and these tests
also check that it converts them, and rejects bad ones, exactly as typer does.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import vrepo
import vrepo.cli
import vrepo.cli._convert

# Loaded by none of the log commands below. (numpy is not here: the format and engine modules
# that every read goes through import it.)
HEAVY = [
    "aiobotocore",
    "botocore",
    "dask",
    "distributed",
    "fsspec",
    "pydantic",
    "pydantic_core",
    "rich",
    "s3fs",
    "typer._adapters",  # typer's pydantic conversions
    "vrepo.storage.memory",
    "vrepo.storage.s3",
    "vrepo.xarray.accessor",
    "vrepo.zarr",
    "xarray",
    "zarr",
]

# Runs the CLI as the console script does, then prints the loaded modules (stdout is a pipe,
# so output is plain text: rich would load only for a terminal).
RUN_CLI = """
import json, sys
sys.argv = ["vrepo", *sys.argv[1:]]
from vrepo.cli import main
try:
    main()
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def repo_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A repository with its first snapshot, a second branch and a tag."""
    path = tmp_path_factory.mktemp("cli-imports") / "r.vrepo"
    repo = vrepo.Repository.create(path)
    head = repo.lookup_branch("main")
    repo.create_branch("dev", head)
    repo.create_tag("v1", head)
    return str(path)


@pytest.fixture(scope="module")
def typer_loads() -> set[str]:
    """What importing typer loads by itself: older typers import rich up front (a fact of the
    installed typer, which vrepo cannot change), newer ones only when they print."""
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys, typer; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout))


def loaded_by(*args: str) -> tuple[str, set[str]]:
    """The output of ``vrepo ARGS`` in a new process, and the modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    *_, modules = done.stderr.strip().splitlines()
    return done.stdout, set(json.loads(modules))


@pytest.mark.parametrize(
    "args",
    [
        ["log", "-n", "20"],
        ["log", "--max-count=5", "--json"],
        ["log", "--graph"],
        ["-c", "dask.split-every=8", "log"],  # the root's list options, converted too
    ],
    ids=["plain", "json", "graph", "config-option"],
)
def test_log_loads_no_heavy_module(repo_path: str, args: list[str], typer_loads: set[str]):
    out, modules = loaded_by(*args, repo_path)
    assert "main" in out and "v1" in out  # it did run
    assert sorted(modules.intersection(HEAVY) - typer_loads) == []


def test_branch_list_loads_no_heavy_module(repo_path: str, typer_loads: set[str]):
    out, modules = loaded_by("branch", "list", repo_path)
    assert "dev" in out and "main" in out
    assert sorted(modules.intersection(HEAVY) - typer_loads) == []


def test_typer_alone_loads_none_of_pydantic_and_vrepo_s3(typer_loads: set[str]):
    """What the exclusion above may excuse: never pydantic or vrepo's own modules."""
    assert not typer_loads & {"pydantic", "pydantic_core", "typer._adapters", "vrepo.storage.s3"}


# --- the plain conversions convert as typer does ------------------------------------------------

_KEEP_STDERR_APART = (
    {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}
)

# Values the plain conversions take and values they leave to typer (who rejects some of them).
CASES = [
    ["log", "-n", "2", "{repo}"],
    ["log", "-n", "0", "{repo}"],
    ["log", "--max-count=1", "{repo}"],
    ["log", "-n", "007", "{repo}"],
    ["log", "-n", "+1", "{repo}"],
    ["log", "-n", " 1", "{repo}"],
    ["log", "-n", "1_0", "{repo}"],
    ["log", "-n", "-1", "{repo}"],
    ["log", "-n", "two", "{repo}"],
    ["log", "-n", "1.5", "{repo}"],
    ["log", "-n"],
    ["log"],
    ["log", "{repo}@v1", "--json"],
    ["log", "{repo}@nope"],
    ["--config", "nonsense", "log", "{repo}"],
    ["-c", "no.such-key=1", "log", "{repo}"],
    ["-s", "region=x", "log", "{repo}"],
    ["-s", "anonymous=maybe", "log", "{repo}"],
    ["--help"],
    ["log", "--help"],
    ["branch", "--help"],
    ["branch", "{repo}"],
    ["tag", "list", "{repo}", "--json"],
    ["config", "get", "dask.split-every"],
]


def outcome(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner(**_KEEP_STDERR_APART).invoke(vrepo.cli.app, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c) for c in CASES])
def test_plain_conversions_convert_as_typer_does(
    repo_path: str, case: list[str], monkeypatch: pytest.MonkeyPatch
):
    args = [a.format(repo=repo_path) for a in case]
    plain = outcome(args)
    monkeypatch.setattr(vrepo.cli._convert, "_PlainConversion", None)  # typer's own only
    assert outcome(args) == plain


def test_plain_values_skip_typers_conversions(repo_path: str, monkeypatch: pytest.MonkeyPatch):
    """typer builds no conversion (no pydantic adapter) for plain values; the plain
    conversions hand it the others."""
    import typer.core as core

    if not hasattr(core, "build_runtime_param"):
        pytest.skip(
            f"the installed typer {typer.__version__} (< 0.29) builds no conversions of its own "
            "(it converts through click types): there is nothing for vrepo to bypass"
        )
    built = []
    real = core.build_runtime_param
    record = lambda descriptor: built.append(descriptor.annotation) or real(descriptor)  # noqa: E731
    monkeypatch.setattr(core, "build_runtime_param", record)
    monkeypatch.setattr(vrepo.cli._convert, "build_runtime_param", record)
    code, out, _ = outcome(["-c", "dask.split-every=8", "log", "-n", "1", "--json", repo_path])
    assert code == 0 and len(json.loads(out)) == 1
    assert built == []
    assert outcome(["log", "-n", "-1", repo_path])[0] == 2  # typer's error, from typer
    assert built == [int]
