"""Authors: every commit records who made it, and every view of the history shows it.

The author comes from the configuration (``user.name`` / ``user.email``), else the operating
system's user; a commit may name someone else. A commit landed for another committer (an
offer on a busy branch) keeps that committer's author, and snapshots written before authors
existed still read, with no author.
"""

from __future__ import annotations

import asyncio
import getpass
import json

import msgspec
import pytest
import zarr
from typer.testing import CliRunner

import vrepo
from vrepo.cli import app
from vrepo.engine import authors, combining
from vrepo.engine.refs import new_operation, now_us, read_head
from vrepo.errors import InvalidArgumentError
from vrepo.format import Author, HistoryEntry, Snapshot, TurnClaim, encode_turn_claim, turn_key

ADA = Author("Ada Lovelace", "ada@example.org")


def _repo(tmp_path, name: str = "r.vrepo") -> vrepo.Repository:
    with vrepo.config.set({"user.name": "Setup Person", "user.email": None}):
        repo = vrepo.Repository.create(str(tmp_path / name))
        session = repo.writable_session()
        zarr.create_array(session.store, name="x", shape=(4,), chunks=(1,), dtype="i4")
        session.commit("setup")
    return repo


def _write(repo: vrepo.Repository, chunk: int, value: int) -> vrepo.Session:
    session = repo.writable_session()
    zarr.open_array(session.store, path="x", mode="r+")[chunk] = value
    return session


def test_the_configured_user_is_recorded_and_shown_everywhere(tmp_path) -> None:
    repo = _repo(tmp_path)
    with vrepo.config.set({"user.name": ADA.name, "user.email": ADA.email}):
        sid = _write(repo, 0, 1).commit("by Ada")
    info = repo.lookup_snapshot(sid)
    assert info.author == ADA and str(info.author) == "Ada Lovelace <ada@example.org>"
    assert next(iter(repo.ancestry())).author == ADA  # from the history index
    assert [i.author for i in repo.ancestry()][1] == Author("Setup Person")
    assert "Ada Lovelace &lt;ada@example.org&gt;" in repo.ancestry()._repr_html_()

    path = str(tmp_path / "r.vrepo")
    runner = CliRunner()
    log = runner.invoke(app, ["log", path, "-n", "1"])
    assert log.exit_code == 0 and "[Ada Lovelace <ada@example.org>]" in log.stdout
    shown = runner.invoke(app, ["show", f"{path}@{sid}"])
    assert shown.exit_code == 0 and "Ada Lovelace <ada@example.org>" in shown.stdout
    record = json.loads(runner.invoke(app, ["log", path, "-n", "1", "--json"]).stdout)[0]
    assert record["author"] == {"name": ADA.name, "email": ADA.email}


def test_the_environment_sets_the_author(tmp_path, monkeypatch) -> None:
    repo = _repo(tmp_path)
    monkeypatch.setenv("VREPO_USER__NAME", "Grace Hopper")
    monkeypatch.setenv("VREPO_USER__EMAIL", "grace@example.org")
    vrepo.config.refresh()
    try:
        sid = _write(repo, 1, 2).commit("from the environment")
    finally:
        monkeypatch.delenv("VREPO_USER__NAME")
        monkeypatch.delenv("VREPO_USER__EMAIL")
        vrepo.config.refresh()
    assert repo.lookup_snapshot(sid).author == Author("Grace Hopper", "grace@example.org")


def test_without_configuration_the_os_user_is_the_author(tmp_path, monkeypatch) -> None:
    repo = _repo(tmp_path)
    sid = _write(repo, 0, 1).commit("default")
    assert repo.lookup_snapshot(sid).author == Author(authors.os_user())
    assert authors.os_user() == getpass.getuser()

    def no_passwd_entry() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(authors.getpass, "getuser", no_passwd_entry)
    sid = _write(repo, 1, 1).commit("in a container without a passwd entry")
    assert repo.lookup_snapshot(sid).author == Author("unknown")


def test_a_commit_can_name_its_author_and_amend_keeps_it(tmp_path) -> None:
    repo = _repo(tmp_path)
    session = _write(repo, 0, 1)
    first = session.commit("on Ada's behalf", author="Ada Lovelace <ada@example.org>")
    assert repo.lookup_snapshot(first).author == ADA
    zarr.open_array(session.store, path="x", mode="r+")[1] = 2
    amended = session.amend("on Ada's behalf, fixed")
    assert repo.lookup_snapshot(amended).author == ADA  # as git: the amended commit's author
    zarr.open_array(session.store, path="x", mode="r+")[2] = 3
    again = session.amend("taken over", author=Author("Bob"))
    assert repo.lookup_snapshot(again).author == Author("Bob")


@pytest.mark.parametrize(
    ("author", "match"),
    [
        ("Ada <ada@example.org", "'Name <email>'"),
        ("Ada\nLovelace", "one line"),
        (Author("  "), "needs a name"),
        (Author("x" * 300), "at most 256"),
        (42, "vrepo.Author or a 'Name <email>' string"),
    ],
)
def test_bad_authors_are_refused_before_anything_is_written(tmp_path, author, match) -> None:
    repo = _repo(tmp_path)
    session = _write(repo, 0, 1)
    head = repo.lookup_branch("main")
    with pytest.raises(InvalidArgumentError, match=match):
        session.commit("bad author", author=author)
    assert repo.lookup_branch("main") == head and session.has_uncommitted_changes


def test_a_bad_configured_author_says_how_to_fix_it(tmp_path, monkeypatch) -> None:
    repo = _repo(tmp_path)
    monkeypatch.setenv("VREPO_USER__NAME", "<nobody>")  # the environment is read as it is
    vrepo.config.refresh()
    try:
        with pytest.raises(InvalidArgumentError, match=r"in \$VREPO_USER__NAME, or with"):
            _write(repo, 0, 1).commit("refused")
    finally:
        monkeypatch.undo()
        vrepo.config.refresh()


def test_a_bad_author_is_refused_when_it_is_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VREPO_CONFIG", str(tmp_path / "config"))
    for bad in ("<nobody>", "two\nlines", "x" * 257):
        with pytest.raises(InvalidArgumentError, match="one line of at most 256 characters"):
            vrepo.config.set({"user.name": bad})
    refused = CliRunner().invoke(app, ["config", "set", "user.email", "a<b>"])
    assert refused.exit_code == 1 and "'vrepo config set user.email VALUE'" in refused.output
    assert not (tmp_path / "config").exists()  # nothing saved
    assert vrepo.config.get("user.email") is None


def test_an_offer_landed_by_another_committer_keeps_its_own_author(tmp_path) -> None:
    repo = _repo(tmp_path)
    head = asyncio.run(read_head(repo.storage, "branch", "main"))
    content = asyncio.run(_write(repo, 3, 9)._ensure_content())
    offer = combining.offer_of(content, "offered by Ada", {}, ADA)
    claim = TurnClaim("main", head.next_seq, new_operation(), now_us(), offer)
    asyncio.run(
        repo.storage.put_if_absent(turn_key("main", head.next_seq), encode_turn_claim(claim))
    )
    with vrepo.config.set({"user.name": "The Lander"}):
        assert asyncio.run(combining.land_offers(repo._objects, head)) == 1
    assert next(iter(repo.ancestry())).author == ADA


def test_snapshots_from_before_authors_read_without_one(tmp_path) -> None:
    """A snapshot and history entries as a vrepo without authors wrote them (no field, five
    elements) decode with author None; and the new, longer entries decode as the old ones."""

    class OldEntry(msgspec.Struct, array_like=True):
        id: str
        parent_id: str | None
        created_at: int
        message: str
        metadata: dict | None

    repo = _repo(tmp_path)
    snapshot = asyncio.run(repo._objects.get_snapshot(repo.lookup_branch("main")))
    assert snapshot.author == Author("Setup Person")
    old = msgspec.to_builtins(snapshot)
    del old["author"]
    old["recent_ancestors"] = [entry[:5] for entry in old["recent_ancestors"]]
    decoded = msgspec.convert(old, Snapshot)
    assert decoded.author is None and all(e.author is None for e in decoded.recent_ancestors)
    new_entry = msgspec.msgpack.encode(snapshot.recent_ancestors[0])
    assert msgspec.msgpack.decode(new_entry, type=OldEntry).id == snapshot.parent_id
    assert msgspec.msgpack.decode(new_entry, type=HistoryEntry).author == Author("Setup Person")
    info = vrepo.SnapshotInfo.from_snapshot(decoded)
    assert info.author is None


def test_author_text_round_trips() -> None:
    assert Author.parse(str(ADA)) == ADA
    assert Author.parse("  Bob  ") == Author("Bob") and str(Author("Bob")) == "Bob"
    with pytest.raises(ValueError, match="'Name <email>'"):
        Author.parse("a <b> <c>")
