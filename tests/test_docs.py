"""The documentation site builds cleanly and covers the public API and every setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import vrepo
import vrepo.config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.rglob("*.md")))


def test_mkdocs_build_is_strictly_clean(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "WARNING" not in result.stderr
    for page in ("getting-started", "distributed", "xarray", "cli", "storage", "configuration",
                 "troubleshooting", "format", "design"):  # fmt: skip
        assert (tmp_path / page / "index.html").exists(), page
    assert (tmp_path / "index.html").exists()  # concepts and API


def test_nav_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", nav, re.M))
    assert listed == {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}


@pytest.mark.parametrize("name", vrepo.__all__)
def test_public_name_is_documented(name):
    assert re.search(rf"\b{re.escape(name)}\b", _docs_text()), f"{name} is not in docs/"


@pytest.mark.parametrize("key", list(vrepo.config.KEYS.values()), ids=lambda k: k.name)
def test_every_setting_is_in_the_configuration_reference(key):
    text = (DOCS / "configuration.md").read_text()
    row = next((line for line in text.splitlines() if line.startswith(f"| `{key.name}` |")), None)
    assert row is not None, f"{key.name} has no row in docs/configuration.md"
    default = str(key.default).lower() if key.kind is bool else str(key.default)
    assert f"`{default}`" in row and f"`{key.env_var}`" in row
