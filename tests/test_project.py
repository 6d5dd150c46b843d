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


def _quickstart(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_quickstart_runs_end_to_end_leaves_its_repository_and_runs_again(tmp_path):
    """As the README runs it (no argument): the repository stays in data/air.vrepo, where the
    README's ``vrepo`` lines look; run again, it starts over (the only slow part: two runs)."""
    first = _quickstart(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "starting over" not in first.stdout
    again = _quickstart(tmp_path, "data/air.vrepo")  # the same place, named
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    out = again.stdout
    assert out.startswith("-> data/air.vrepo holds the repository of an earlier run: starting over")
    assert "main has 240 time steps; tag v1 has 120" in out
    assert "experiment differs from main by 0.50 K" in out
    assert "branches: ['experiment', 'main']  tags: ['v1']" in out
    assert "chunks of /air_temperature: +0 ~1 -0" in out  # the diff main -> experiment
    assert "air temperature 1860-1979 (tag: v1)" in out  # the log
    assert "the repository stays in data/air.vrepo" in out
    # the README's sample is this output (ids, times and durations aside)
    assert _shape_of(first.stdout) == _shape_of(_readme_sample()), "README.md's sample is stale"
    # the README's next line, by the console script
    vrepo_command = Path(sys.executable).with_name("vrepo")
    log = subprocess.run(
        [str(vrepo_command), "log", "--graph", "data/air.vrepo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert log.returncode == 0, log.stderr
    assert len(log.stdout.splitlines()) == 4  # one start over: 4 snapshots, not 8
    assert "(tag: v1) air temperature 1860-1979" in log.stdout


def _readme_sample() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## What the quickstart prints") :]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block, "README.md shows what the quickstart prints in a text block"
    return block.group(1)


def _shape_of(output: str) -> list[str]:
    """Output lines with snapshot ids, times and durations replaced by placeholders."""
    lines = []
    for line in output.strip().splitlines():
        line = re.sub(r"\b[0-9A-Z]{20}\b", "ID", line)
        line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", line)
        lines.append(re.sub(r"\d+\.\d s\b", "N s", line))
    return lines


def test_quickstart_refuses_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = _quickstart(tmp_path, "mine")
    assert result.returncode == 1
    assert "mine exists and is not a repository an earlier quickstart made" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


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
