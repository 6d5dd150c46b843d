"""`Repository.tree` and ``vrepo tree``: a version's hierarchy, as text, HTML and JSON."""

from __future__ import annotations

import json

import pytest
import zarr

import vrepo
from test_cli import error_of, run

EVIL = "<b>x&y"


@pytest.fixture
def repo(tmp_path) -> vrepo.Repository:
    repo = vrepo.Repository.create(tmp_path / "r.vrepo", vrepo.RepoConfig(inline_threshold_bytes=0))
    session = repo.writable_session()
    root = zarr.open_group(session.store)
    root.create_array("t", shape=(120,), chunks=(24,), dtype="f8")[:] = 1.5
    repo.create_tag("v1", session.commit("t"))
    deep = root.create_group("model").create_group(EVIL)
    deep.create_array("flag", shape=(10, 4), chunks=(5, 4), dtype="i1")[:5] = 1  # 1 chunk of 2
    session.commit("model")
    return repo


def test_tree_shows_groups_and_arrays_with_their_bytes(repo):
    tree = repo.tree()
    assert isinstance(tree, vrepo.SnapshotTree)
    assert tree.ref == "main" and tree.snapshot_id == repo.lookup_branch("main")
    by_path = {node.path: node for node in tree.nodes()}
    assert list(by_path) == ["/", "/model", f"/model/{EVIL}", f"/model/{EVIL}/flag", "/t"]
    t, flag = by_path["/t"], by_path[f"/model/{EVIL}/flag"]
    assert (t.kind, t.shape, t.dtype, t.chunk_shape, t.chunk_count) == (
        "array", (120,), "float64", (24,), 5
    )  # fmt: skip
    assert flag.chunk_count == 1 and flag.shape == (10, 4)
    listed = {n.path: n.stored_bytes for n in repo.list_nodes() if n.kind == "array"}
    assert t.stored_bytes == listed["/t"] > 0
    # groups total what is below them; virtual bytes are 0 until virtual refs exist
    assert by_path["/model"].stored_bytes == flag.stored_bytes
    assert tree.stored_bytes == t.stored_bytes + flag.stored_bytes
    assert tree.virtual_bytes == 0 and all(n.virtual_bytes == 0 for n in tree.nodes())
    assert json.loads(json.dumps(tree.to_dict()))["root"]["children"][1]["shape"] == [120]


def test_tree_as_text(repo):
    text = str(repo.tree("v1"))
    assert repr(repo.tree("v1")) == text
    lines = text.splitlines()
    assert lines[0].startswith(f"v1 = snapshot {repo.lookup_tag('v1')}: ")
    assert lines[0].endswith("stored, 0 B virtual")
    assert lines[1] == "/"
    assert lines[2].startswith("└── t  float64 (120,)  chunks (24,)  5 stored, ")
    deeper = str(repo.tree()).splitlines()
    assert deeper[2] == "├── model/" and deeper[3] == f"│   └── {EVIL}/"
    assert deeper[4].startswith("│       └── flag") and "int8 (10, 4)" in deeper[4]


def test_tree_as_html_escapes_names_and_shows_virtual_bytes(repo):
    html = repo.tree("main~1")._repr_html_()
    assert "vrepo.SnapshotTree" in html and "<code>main~1</code>" in html
    html = repo.tree()._repr_html_()
    assert "<th>virtual</th>" in html and "<th>stored</th>" in html
    assert "&lt;b&gt;x&amp;y/" in html and EVIL not in html
    assert "<td>(120,)</td>" in html and "<td>(10, 4)</td>" in html
    assert "<code></code>" not in html


def test_tree_of_an_unknown_revision_is_a_ref_error(repo):
    with pytest.raises(vrepo.RefNotFoundError):
        repo.tree("nope")


def test_vrepo_tree_command(repo):
    path = repo.storage.url.removeprefix("file://")
    out = run("tree", f"{path}@v1").stdout
    assert out == str(repo.tree("v1")) + "\n"
    data = json.loads(run("tree", path, "--json").stdout)
    assert data["ref"] == "main" and data["virtual_bytes"] == 0
    assert data["stored_bytes"] == repo.tree().stored_bytes
    assert [c["path"] for c in data["root"]["children"]] == ["/model", "/t"]
    assert "no branch, tag or snapshot id 'nope'" in error_of("tree", f"{path}@nope")
