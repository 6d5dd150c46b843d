"""What a new user meets first on the command line (issue 19): the command after any
install, ``vrepo init``'s refusals, advice in the CLI's words, ``--version``, help without
``<bool>``, 1-D shapes, ``branch list REPO@REV`` and Ctrl-C while starting.

Driven through typer's CliRunner on the real app, and through the console script (or
`vrepo.cli.main`, which it calls) in subprocesses.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import zarr

import vrepo
import vrepo.cli
from test_cli import error_of, run

ROOT = Path(__file__).resolve().parents[1]
VREPO = Path(sys.executable).with_name("vrepo")  # the console script of this environment


@pytest.fixture
def repo_1d(tmp_path):
    path = tmp_path / "r.vrepo"
    repo = vrepo.Repository.create(path)
    session = repo.writable_session()
    zarr.create_array(session.store, name="t", shape=(120,), chunks=(24,), dtype="f8")[:] = 1
    repo.create_tag("v1", session.commit("t"))
    return path, repo


# --- part 1: the command works after any install --------------------------------------------


def test_typer_and_rich_are_core_dependencies_and_cli_stays_an_alias():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    assert "typer>=0.15" in core and "rich>=13" in core
    assert set(project["optional-dependencies"]["cli"]) <= set(core)  # vrepo[cli] installs
    # the installed metadata says so too (an editable install reads pyproject.toml)
    from importlib.metadata import requires

    unconditional = {r.split(";")[0].replace(" ", "") for r in requires("vrepo") if ";" not in r}
    assert {"typer>=0.15", "rich>=13"} <= unconditional


def test_the_console_script_runs_and_prints_its_version():
    result = subprocess.run([str(VREPO), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"vrepo {vrepo.__version__}\n"
    assert run("--version").stdout == f"vrepo {vrepo.__version__}\n"


# --- part 3: init refuses places that are no place for a repository -------------------------


def test_init_refuses_a_directory_of_other_files(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.py").write_text("")
    message = error_of("init", tmp_path / "src")
    assert "is not empty: it holds other files (x.py)" in message
    assert not (tmp_path / "src" / "repo.json").exists()
    assert sorted(os.listdir(tmp_path / "src")) == ["x.py"]  # nothing written
    run("init", tmp_path / "empty")  # a new directory
    (tmp_path / "made").mkdir()
    run("init", tmp_path / "made")  # an empty one


def test_init_creates_missing_parents_only_when_asked(tmp_path):
    target = tmp_path / "a" / "b" / "r.vrepo"
    message = error_of("init", target)
    assert "the parent directory" in message and "pass --parents" in message
    assert not (tmp_path / "a").exists()
    assert "Initialized empty vrepo repository" in run("init", "--parents", target).stdout
    assert vrepo.Repository.exists(target)


def test_init_on_a_repository_gives_cli_advice(tmp_path):
    path = tmp_path / "r.vrepo"
    run("init", path)
    message = error_of("init", path)
    assert "a repository already exists" in message
    assert f"look at it with 'vrepo log {path}'" in message
    assert "Repository.open" not in message


def test_no_repository_here_names_the_repositories_below(tmp_path):
    for name in ("air.vrepo", "deep/ocean.vrepo"):
        run("init", "--parents", tmp_path / name)
    message = error_of("log", tmp_path)
    assert "repositories below it: air.vrepo, deep/ocean.vrepo" in message
    assert "vrepo init" not in message
    assert f"'vrepo log {tmp_path / 'air.vrepo'}'" in message
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("")
    assert "vrepo init" not in error_of("log", tmp_path / "other")
    assert "vrepo init --parents" in error_of("log", tmp_path / "x" / "y")


# --- part 4: advice in the CLI's words ------------------------------------------------------


def test_ref_errors_advise_cli_commands(repo_1d):
    path, repo = repo_1d
    run("branch", "create", path, "dev", "--from", "v1~1")
    message = error_of("branch", "create", path, "dev")  # exists, elsewhere
    assert f"move it with 'vrepo branch reset {path} dev REVISION'" in message
    assert "reset_branch" not in message
    message = error_of("branch", "delete", path, "main")
    assert message == (
        f"error: the main branch cannot be deleted; reset it with "
        f"'vrepo branch reset {path} main REVISION' instead"
    )
    # Python keeps its own words, and the hint survives pickling (Dask sends errors back)
    with pytest.raises(vrepo.InvalidArgumentError, match="reset it with reset_branch") as caught:
        repo.delete_branch("main")
    again = pickle.loads(pickle.dumps(caught.value))
    assert again.hint == caught.value.hint and again.hint.kind == "reset-branch"


def test_configuration_errors_advise_vrepo_config_set(tmp_path):
    message = error_of("-c", "repository.commit-retries=-1", "init", tmp_path / "r")
    assert "'vrepo config set repository.commit-retries VALUE'" in message
    assert "vrepo.config.set" not in message
    with pytest.raises(vrepo.InvalidArgumentError, match=r"vrepo\.config\.set"):
        vrepo.config.set({"repository.commit-retries": -1})


def test_missing_s3_credentials_advise_environment_and_options(moto_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [str(VREPO), "-s", f"endpoint_url={moto_server.endpoint_url}", "-s", "region=us-east-1",
         "log", f"s3://{moto_server.pool.take()}/r"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "no S3 credentials found" in result.stderr
    assert "AWS_ACCESS_KEY_ID" in result.stderr and "-s anonymous=true" in result.stderr
    assert "S3Credentials(" not in result.stderr and "Traceback" not in result.stderr


# --- part 7: smaller things -----------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["log"], ["branch"], ["branch", "list"], ["init"]])
def test_help_shows_no_bool_type_for_flags(command):
    out = run(*command, "--help").stdout
    assert "--help" in out and "<bool>" not in out


def test_ls_prints_one_dimensional_shapes_as_tuples(repo_1d):
    path, _ = repo_1d
    row = next(line for line in run("ls", path).stdout.splitlines() if line.startswith("/t"))
    assert "(120,)" in row and "(24,)" in row


def test_branch_and_tag_lists_refuse_a_revision(repo_1d):
    path, _ = repo_1d
    for kind in ("branch", "tag"):
        message = error_of(kind, "list", f"{path}@v1")
        assert f"{kind} list takes a repository, not a revision: drop '@v1'" in message
        assert "@v1" in error_of(kind, f"{path}@v1")  # the short form too


# Ctrl-C while `vrepo.cli.main` imports the app: a finder that interrupts the import of typer
_INTERRUPT_IMPORT = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["vrepo", "--version"]
from vrepo.cli import main
main()
"""


def test_ctrl_c_while_the_app_imports_prints_one_line():
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_IMPORT], capture_output=True, text=True
    )
    assert result.returncode == 130
    assert result.stderr == "interrupted\n"


def test_ctrl_c_while_the_console_script_starts_prints_no_traceback(repo_1d):
    """A real SIGINT at several moments of a start, from the first import of vrepo on (the
    child reports its imports as they happen: PYTHONPROFILEIMPORTTIME)."""
    path, _ = repo_1d
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        process = subprocess.Popen(
            [str(VREPO), "log", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stderr is not None
        for line in process.stderr:
            if line.rstrip().endswith("vrepo._startup"):
                break
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
        err = [line for line in rest.splitlines() if not line.startswith("import time:")]
        assert not any("Traceback" in line for line in err), (delay, rest)
        if process.returncode != 0:  # interrupted (else it had finished already)
            assert process.returncode in (130, -signal.SIGINT), (delay, process.returncode)
            assert err == ["interrupted"], (delay, err)
