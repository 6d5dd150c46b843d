"""Notebook display: _repr_html_ of Repository, Session, ForkSession and History."""

from __future__ import annotations

import pickle

import pytest
import zarr

import vrepo
from vrepo.errors import StorageError

EVIL = "<script>alert('x')</script> & \"quotes\""
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;"


@pytest.fixture
def repo(tmp_path) -> vrepo.Repository:
    repo = vrepo.Repository.create(tmp_path / "r.vrepo")
    session = repo.writable_session()
    zarr.create_array(session.store, name="temp", shape=(4,), chunks=(2,), dtype="f4")[:] = 1
    first = session.commit("first data", metadata={"source": "<b>model</b>"})
    zarr.open_array(session.store, path="temp")[:2] = 2
    session.commit(EVIL)
    repo.create_tag("v1", first)
    repo.create_branch("dev", first)
    return repo


def _no_raw_markup(text: str) -> None:
    assert "<script>" not in text and "<b>" not in text


def test_repository(repo, tmp_path):
    text = repo._repr_html_()
    assert str(tmp_path / "r.vrepo") in text  # location
    for name in ("main", "dev", "v1"):
        assert f"<code>{name}</code>" in text
    assert repo.lookup_branch("main") in text and repo.lookup_branch("dev") in text
    assert "branches (2)" in text and "tags (1)" in text
    assert "latest commits on main" in text and "first data" in text
    assert ESCAPED in text
    assert "&lt;b&gt;model&lt;/b&gt;" in text  # commit metadata, escaped
    _no_raw_markup(text)


def test_repository_lists_are_capped(tmp_path):
    repo = vrepo.Repository.create(vrepo.memory_storage())
    head = repo.lookup_branch("main")
    for i in range(25):
        repo.create_tag(f"t{i:02d}", head)
    text = repo._repr_html_()
    assert "tags (25)" in text and "… and 5 more" in text
    assert "<code>t19</code>" in text and "<code>t20</code>" not in text


def test_history_is_an_iterator_that_displays_without_consuming(repo):
    history = repo.ancestry()
    assert isinstance(history, vrepo.History)
    text = history._repr_html_()
    assert ESCAPED in text and "first data" in text and "Repository initialized" in text
    assert "3 snapshot(s)" in text
    assert "<code></code>" not in text and f"from {repo.lookup_branch('main')}" in text
    _no_raw_markup(text)
    assert next(history).message == EVIL  # nothing was used up by the display
    assert [i.message for i in history] == ["first data", "Repository initialized"]
    assert list(history) == []


def test_history_display_is_limited(tmp_path):
    repo = vrepo.Repository.create(vrepo.memory_storage())
    session = repo.writable_session()
    for i in range(25):
        session.commit(f"c{i}", allow_empty=True)
    history = repo.ancestry()
    text = history._repr_html_()
    # the header counts the whole history, not only the rows shown
    assert "26 snapshot(s), newest first" in text and "the newest 20 shown" in text
    assert text.count("<tr>") == 1 + 20  # the header row and 20 snapshots
    assert len(list(history)) == 26
    assert "5 snapshot(s)" in repo.ancestry(snapshot_id=repo.resolve("main~21"))._repr_html_()


def test_ancestry_checks_its_ref_at_once(repo):
    with pytest.raises(vrepo.RefNotFoundError):
        repo.ancestry(branch="nope")
    assert [i.message for i in repo.ancestry(tag="v1")] == ["first data", "Repository initialized"]


def test_writable_session_shows_changes(repo):
    session = repo.writable_session("dev")
    zarr.create_array(session.store, name=EVIL, shape=(6,), chunks=(2,), dtype="i2")[:] = 3
    text = session._repr_html_()
    assert "vrepo.Session" in text and "writable" in text
    assert "<code>dev</code>" in text
    assert repo.lookup_branch("dev") in text and "first data" in text  # base snapshot
    assert "new array" in text and "chunks written" in text
    assert "<code></code>" not in text
    assert f"<code>/{ESCAPED}</code>" in text and "<td>3</td>" in text
    _no_raw_markup(text)


def test_clean_and_read_only_sessions(repo):
    text = repo.writable_session()._repr_html_()
    assert "uncommitted changes" in text and "<em>none</em>" in text
    assert ESCAPED in text  # the base snapshot's message
    tagged = repo.readonly_session(tag="v1")._repr_html_()
    assert "read-only" in tagged and "<td>tag</td>" in tagged and "<code>v1</code>" in tagged
    assert "uncommitted" not in tagged
    assert "<code></code>" not in tagged
    old = repo.readonly_session(snapshot_id=repo.lookup_tag("v1"))._repr_html_()
    assert repo.lookup_tag("v1") in old


def test_fork_session(repo):
    session = repo.writable_session()
    fork = pickle.loads(pickle.dumps(session.fork()))
    zarr.open_array(fork.store, path="temp")[2:] = 5
    text = fork._repr_html_()
    assert "vrepo.ForkSession" in text and "fork" in text and "<code>main</code>" in text
    assert "chunks written" in text and "<code>/temp</code>" in text


def test_s3_repository_shows_no_credentials_and_survives_errors(monkeypatch):
    storage = vrepo.s3_storage(
        "bucket",
        "repo",
        endpoint_url="http://user:pw@127.0.0.1:9",
        credentials=vrepo.S3Credentials("AKIAHTMLTEST0000", "html-secret-93a1"),
    )

    async def unreachable(self, prefix, *, limit=None):
        raise StorageError(f"listing {prefix!r} in {self.url} failed: <connection refused>")

    monkeypatch.setattr(vrepo.S3Storage, "list", unreachable)
    repo = vrepo.Repository(storage, _info())
    text = repo._repr_html_()  # a notebook display must not raise
    assert "s3://bucket/repo" in text and "could not be read" in text
    assert "&lt;connection refused&gt;" in text
    for secret in ("html-secret-93a1", "AKIAHTMLTEST0000", "user:pw"):
        assert secret not in text


def _info():
    from vrepo.format import FORMAT_VERSION, RepoConfig, RepoInfo

    return RepoInfo(FORMAT_VERSION, 0, RepoConfig())
