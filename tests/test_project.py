"""The project's promises to newcomers: the README's commands and the quickstart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md must start with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("```bash") < 20, "the set-up commands come first"
    install_and_run, install_and_test = readme_commands()
    assert "examples/quickstart.py" in install_and_run
    assert "pytest" in install_and_test


def test_ci_runs_exactly_the_readme_commands_in_a_fresh_venv():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    first, second = readme_commands()
    assert ci.index("rm -rf .venv") < ci.index(first) < ci.index(second)


def test_quickstart_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path / "q.vrepo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "main has 240 time steps; tag v1 has 120" in out
    assert "experiment differs from main by 0.50 K" in out
    assert "branches: ['experiment', 'main']  tags: ['v1']" in out
    assert "chunks of /air_temperature: +0 ~1 -0" in out  # the diff main -> experiment
    assert "air temperature 1860-1979 (tag: v1)" in out  # the log
    assert (tmp_path / "q.vrepo" / "repo.json").exists()


EXAMPLES = {
    "batch_ingest.py": [
        "65 tasks' forks are back; main still points at the empty repository",
        "main holds 780 months (1950-01 .. 2014-12), equal to the source files",
        "history: ['ingest 65 yearly files', 'Repository initialized']",
    ],
    "concurrent_writers.py": [
        "main holds all 240 years, each from its writer",
        "ConflictError on /air_temperature: chunks written by both (1: (0, 0, 0))",
        "from the writer that committed last",
    ],
    "s3_seaweedfs.py": ["main has 240 years, v1 has 120", "(the secret never appears)"],
}


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs(example, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for line in EXAMPLES[example]:
        assert line in result.stdout, (line, result.stdout)
