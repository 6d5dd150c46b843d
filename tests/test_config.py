"""vrepo.config: defaults, YAML files, VREPO_* variables and set(), and that each key acts."""

from __future__ import annotations

import os
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dask
import dask.array as da
import donfig
import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

import vrepo
import vrepo.config
import vrepo.dask
import vrepo.engine.commit_rules
from vrepo._sync import run_sync
from vrepo.errors import ConflictError, InvalidArgumentError

SECRET = "config-test-secret-0f9e"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each test reads its own, empty config directory and no VREPO_* variables."""
    for name in [n for n in os.environ if n.startswith("VREPO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VREPO_CONFIG", str(tmp_path / "config"))
    vrepo.config.refresh()
    yield tmp_path / "config"
    monkeypatch.undo()
    vrepo.config.refresh()


def _reload(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    vrepo.config.refresh()


def _write_yaml(directory: Path, data: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "settings.yaml").write_text(yaml.safe_dump(data))


# --- the module and its names ------------------------------------------------------------


def test_public_names_for_the_cli():
    assert isinstance(vrepo.config.config, donfig.Config)
    for name in ("get", "set", "user_config_path", "save_user_setting", "refresh"):
        assert callable(getattr(vrepo.config, name))
    assert vrepo.config.config.name == "vrepo"


def test_defaults():
    expected = {
        "repository.inline-threshold-bytes": 512,
        "repository.commit-retries": 100,
        "repository.commit-backoff-ms": 1.0,
        "repository.commit-backoff-max-ms": 64.0,
        "repository.manifest-split-refs": 32768,
        "storage.local.fsync-threads": 8,
        "storage.s3.scatter-credentials": True,
        "read.verify-checksums": True,
        "dask.split-every": 32,
        "user.name": None,
        "user.email": None,
    }
    assert {name: vrepo.config.get(name) for name in vrepo.config.KEYS} == expected
    # the defaults match RepoConfig's, which the repository section feeds
    assert vrepo.Repository.create(vrepo.memory_storage()).config == vrepo.RepoConfig()


def test_underscores_and_dashes_are_one_key():
    with vrepo.config.set({"dask.split_every": 5}):
        assert vrepo.config.get("dask.split-every") == 5
        assert vrepo.config.get("dask.split_every") == 5
    with vrepo.config.set(dask__split_every=6):
        assert vrepo.config.get("dask.split-every") == 6
    assert vrepo.config.get("dask.split-every") == 32


def test_set_globally_and_as_context_manager():
    vrepo.config.set({"repository.commit-retries": 9})  # global
    assert vrepo.config.get("repository.commit-retries") == 9
    with vrepo.config.set({"repository.commit-retries": 3}):
        assert vrepo.config.get("repository.commit-retries") == 3
    assert vrepo.config.get("repository.commit-retries") == 9
    vrepo.config.refresh()  # forgets global sets
    assert vrepo.config.get("repository.commit-retries") == 100


def test_nested_mapping_in_set():
    with vrepo.config.set({"repository": {"commit-retries": 4}}):
        assert vrepo.config.get("repository.commit-retries") == 4
        assert vrepo.config.get("repository.inline-threshold-bytes") == 512  # kept


def test_get_other_keys_and_default():
    assert vrepo.config.get("no.such.key", default="fallback") == "fallback"
    with pytest.raises(InvalidArgumentError, match="unknown vrepo configuration key"):
        vrepo.config.get("no.such.key")


# --- sources: files and environment variables -----------------------------------------------


def test_yaml_file_in_the_config_directory(isolated, monkeypatch):
    _write_yaml(isolated, {"repository": {"commit-retries": 11}, "dask": {"split_every": 7}})
    vrepo.config.refresh()
    assert vrepo.config.get("repository.commit-retries") == 11
    assert vrepo.config.get("dask.split-every") == 7


def test_environment_variables_beat_files(isolated, monkeypatch):
    _write_yaml(isolated, {"repository": {"commit-retries": 11}})
    _reload(
        monkeypatch,
        VREPO_REPOSITORY__COMMIT_RETRIES="12",
        VREPO_STORAGE__S3__SCATTER_CREDENTIALS="false",
        VREPO_REPOSITORY__COMMIT_BACKOFF_MS="2.5",
    )
    assert vrepo.config.get("repository.commit-retries") == 12
    assert vrepo.config.get("storage.s3.scatter-credentials") is False
    assert vrepo.config.get("repository.commit-backoff-ms") == 2.5


def test_location_variables_are_not_settings(isolated, monkeypatch):
    _reload(monkeypatch, VREPO_ROOT_CONFIG=str(isolated))  # VREPO_CONFIG is set too
    assert set(vrepo.config.config.to_dict()) == {"repository", "storage", "read", "dask", "user"}


def test_env_var_spelling_is_documented_by_each_key():
    assert vrepo.config.KEYS["dask.split-every"].env_var == "VREPO_DASK__SPLIT_EVERY"
    key = vrepo.config.KEYS["storage.s3.scatter-credentials"]
    assert key.env_var == "VREPO_STORAGE__S3__SCATTER_CREDENTIALS"


# --- validation -----------------------------------------------------------------------------


def test_set_rejects_unknown_keys_with_a_suggestion():
    with pytest.raises(InvalidArgumentError, match=r"did you mean 'dask.split-every'"):
        vrepo.config.set({"dask.split-evry": 4})


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("dask.split-every", 1, "an integer from 2 to 100000"),
        ("dask.split-every", "many", "an integer"),
        ("dask.split-every", True, "an integer"),
        ("repository.inline-threshold-bytes", 70000, "from 0 to 65536"),
        ("repository.commit-backoff-ms", -1, "a number from 0 to 60000"),
        ("storage.local.fsync-threads", 0, "from 1 to 1024"),
        ("storage.s3.scatter-credentials", "maybe", "true or false"),
    ],
)
def test_invalid_values_are_refused(key, value, allowed):
    with pytest.raises(InvalidArgumentError, match=allowed) as info:
        vrepo.config.set({key: value})
    assert vrepo.config.KEYS[key].env_var in str(info.value)  # says where to fix it


def test_invalid_value_from_the_environment_fails_where_it_is_used(monkeypatch):
    _reload(monkeypatch, VREPO_REPOSITORY__COMMIT_RETRIES="lots")
    with pytest.raises(InvalidArgumentError, match="VREPO_REPOSITORY__COMMIT_RETRIES"):
        vrepo.Repository.create(vrepo.memory_storage())


def test_booleans_from_the_environment(monkeypatch):
    for text, expected in [("0", False), ("1", True), ("False", False), ("YES", True)]:
        _reload(monkeypatch, VREPO_STORAGE__S3__SCATTER_CREDENTIALS=text)
        assert vrepo.config.get("storage.s3.scatter-credentials") is expected


def test_strings_are_converted():
    with vrepo.config.set({"dask.split-every": "16", "storage.s3.scatter-credentials": "no"}):
        assert vrepo.config.get("dask.split-every") == 16
        assert vrepo.config.get("storage.s3.scatter-credentials") is False


# --- the user's file ----------------------------------------------------------------------


def test_user_config_path(tmp_path, monkeypatch):
    monkeypatch.setenv("VREPO_CONFIG", str(tmp_path / "d"))
    assert vrepo.config.user_config_path() == tmp_path / "d" / "vrepo.yaml"
    monkeypatch.setenv("VREPO_CONFIG", str(tmp_path / "mine.yaml"))
    assert vrepo.config.user_config_path() == tmp_path / "mine.yaml"
    monkeypatch.delenv("VREPO_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert vrepo.config.user_config_path() == tmp_path / "home/.config/vrepo/vrepo.yaml"


def test_save_user_setting_writes_yaml_and_applies(isolated):
    assert not isolated.exists()
    path = vrepo.config.save_user_setting("dask.split_every", "12")
    assert path == isolated / "vrepo.yaml"
    assert yaml.safe_load(path.read_text()) == {"dask": {"split-every": 12}}
    assert vrepo.config.get("dask.split-every") == 12  # at once
    vrepo.config.save_user_setting("repository.commit-retries", 5)
    vrepo.config.refresh()  # and in later processes
    assert vrepo.config.get("dask.split-every") == 12
    assert vrepo.config.get("repository.commit-retries") == 5
    vrepo.config.save_user_setting("dask.split-every", None)  # removes it
    assert yaml.safe_load(path.read_text()) == {"repository": {"commit-retries": 5}}
    assert vrepo.config.get("dask.split-every") == 32


def test_save_user_setting_validates_and_keeps_the_file(isolated):
    vrepo.config.save_user_setting("dask.split-every", 3)
    before = (isolated / "vrepo.yaml").read_text()
    with pytest.raises(InvalidArgumentError, match="from 2 to"):
        vrepo.config.save_user_setting("dask.split-every", 1)
    with pytest.raises(InvalidArgumentError, match="unknown vrepo configuration key"):
        vrepo.config.save_user_setting("dask.splitevery", 4)
    assert (isolated / "vrepo.yaml").read_text() == before


def test_save_user_setting_refuses_a_broken_file(isolated):
    isolated.mkdir()
    (isolated / "vrepo.yaml").write_text("- a list, not settings\n")
    with pytest.raises(InvalidArgumentError, match="must hold a mapping"):
        vrepo.config.save_user_setting("dask.split-every", 4)


def test_environment_still_wins_after_save(isolated, monkeypatch):
    _reload(monkeypatch, VREPO_DASK__SPLIT_EVERY="9")
    vrepo.config.save_user_setting("dask.split-every", 4)
    assert vrepo.config.get("dask.split-every") == 9


# --- each key takes effect ------------------------------------------------------------------


def _tiny_chunk_commit(repo: vrepo.Repository) -> None:
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(4,), dtype="i1")[:] = 1
    session.commit("tiny")


def test_inline_threshold_sets_new_repositories(tmp_path):
    default = vrepo.Repository.create(tmp_path / "default.vrepo")
    _tiny_chunk_commit(default)
    assert not (tmp_path / "default.vrepo" / "chunks").exists()  # 4 bytes: inlined
    with vrepo.config.set({"repository.inline-threshold-bytes": 0}):
        repo = vrepo.Repository.create(tmp_path / "no-inline.vrepo")
    assert repo.config.inline_threshold_bytes == 0
    assert vrepo.Repository.open(tmp_path / "no-inline.vrepo").config == repo.config  # persisted
    _tiny_chunk_commit(repo)
    assert len(list((tmp_path / "no-inline.vrepo" / "chunks").iterdir())) == 1


def test_explicit_repo_config_wins():
    with vrepo.config.set({"repository.commit-retries": 3}):
        repo = vrepo.Repository.create(vrepo.memory_storage(), vrepo.RepoConfig(commit_retries=7))
        assert repo.config.commit_retries == 7
        other = vrepo.Repository.open_or_create(vrepo.memory_storage())
        assert other.config.commit_retries == 3


def _lose_one_race(repo: vrepo.Repository) -> vrepo.Session:
    """Two sessions write different arrays; the first commits, the second must retry."""
    first, second = repo.writable_session(), repo.writable_session()
    zarr.create_array(first.store, name="a", shape=(2,), chunks=(2,), dtype="i1")[:] = 1
    zarr.create_array(second.store, name="b", shape=(2,), chunks=(2,), dtype="i1")[:] = 2
    first.commit("first")
    return second


def test_commit_retries_setting():
    with vrepo.config.set({"repository.commit-retries": 0}):
        repo = vrepo.Repository.create(vrepo.memory_storage())
    with pytest.raises(ConflictError, match="after 0 retries"):
        _lose_one_race(repo).commit("second")
    repo = vrepo.Repository.create(vrepo.memory_storage())
    session = _lose_one_race(repo)
    session.commit("second")
    assert session.commit_attempts == 2


class _RecordingRandom:
    def __init__(self) -> None:
        self.caps: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        self.caps.append(high)
        return 0.0


@pytest.mark.parametrize(("base", "cap", "expected"), [(5.0, 64.0, 5.0), (50.0, 20.0, 20.0)])
def test_commit_backoff_settings(monkeypatch, base, cap, expected):
    settings = {"repository.commit-backoff-ms": base, "repository.commit-backoff-max-ms": cap}
    with vrepo.config.set(settings):
        repo = vrepo.Repository.create(vrepo.memory_storage())
    recorder = _RecordingRandom()
    monkeypatch.setattr(vrepo.engine.commit_rules, "random", recorder)
    _lose_one_race(repo).commit("second")
    assert recorder.caps == [expected]  # the first retry waits up to this many ms


def test_local_fsync_threads(tmp_path):
    with vrepo.config.set({"storage.local.fsync-threads": 3}):
        repo = vrepo.Repository.create(tmp_path / "r.vrepo")  # a path: local storage
        explicit = vrepo.LocalStorage(tmp_path / "x", fsync_threads=2)
    _tiny_chunk_commit(repo)
    assert repo.storage._pool._max_workers == 3  # the pool the commit's fsyncs ran in
    assert explicit._durable_pool()._max_workers == 2
    assert pickle.loads(pickle.dumps(repo.storage))._durable_pool()._max_workers == 3
    assert vrepo.local_storage(tmp_path / "y")._durable_pool()._max_workers == 8
    with pytest.raises(InvalidArgumentError, match="fsync_threads must be at least 1"):
        vrepo.LocalStorage(tmp_path, fsync_threads=0)


class _Provider:
    """A picklable credentials provider that holds no secret itself."""

    def __call__(self) -> vrepo.S3Credentials:
        return vrepo.S3Credentials(
            "AKIACONFIGTEST00", SECRET, None, datetime.now(UTC) + timedelta(hours=1)
        )


def _fork_pickle(storage: vrepo.S3Storage) -> bytes:
    """What a fork sent to workers carries: the storage, after preparing it for workers."""
    run_sync(storage._prepare_for_workers())
    return pickle.dumps(storage)


def test_s3_scatter_credentials_setting():
    assert SECRET.encode() in _fork_pickle(vrepo.s3_storage("bucket", credentials=_Provider()))
    with vrepo.config.set({"storage.s3.scatter-credentials": False}):
        plain = vrepo.s3_storage("bucket", credentials=_Provider())
        from_url = vrepo.storage.as_storage("s3://bucket/p", {"credentials": _Provider()})
        explicit = vrepo.s3_storage("bucket", credentials=_Provider(), scatter_credentials=True)
    assert SECRET.encode() not in _fork_pickle(plain)
    assert SECRET.encode() not in _fork_pickle(from_url)
    assert SECRET.encode() in _fork_pickle(explicit)


def _spy_tree(monkeypatch) -> list[int]:
    seen: list[int] = []
    real = vrepo.dask._merge_tree.merge_tree

    def tree(nodes, split_every):
        seen.append(split_every)
        return real(nodes, split_every)

    monkeypatch.setattr(vrepo.dask._merge_tree, "merge_tree", tree)
    return seen


def test_dask_split_every_setting(monkeypatch):
    seen = _spy_tree(monkeypatch)
    repo = vrepo.Repository.create(vrepo.memory_storage())
    session = repo.writable_session()
    target = zarr.create_array(session.store, name="t", shape=(16,), chunks=(2,), dtype="f8")
    source = da.arange(16, chunks=2, dtype="f8")
    with dask.config.set(scheduler="threads"):
        vrepo.dask.store(source, target)
        with vrepo.config.set({"dask.split-every": 2}):
            vrepo.dask.store(source, target, split_every=None)
            vrepo.dask.store(source, target, split_every=4)  # an argument wins
    assert seen == [32, 2, 4]
    session.commit("written")
    stored = zarr.open_array(repo.readonly_session().store, path="t")[:]
    np.testing.assert_array_equal(stored, np.arange(16))


def test_to_repo_uses_the_split_every_setting(monkeypatch):
    seen = _spy_tree(monkeypatch)
    repo = vrepo.Repository.create(vrepo.memory_storage())
    ds = xr.Dataset({"v": ("x", np.arange(8.0))}).chunk({"x": 2})
    with dask.config.set(scheduler="threads"), vrepo.config.set({"dask.split-every": 3}):
        ds.vrepo.to_repo(repo, message="v")
    assert seen == [3]


def test_invalid_split_every_from_the_environment(monkeypatch):
    _reload(monkeypatch, VREPO_DASK__SPLIT_EVERY="1")
    session = vrepo.Repository.create(vrepo.memory_storage()).writable_session()
    target = zarr.create_array(session.store, name="t", shape=(4,), chunks=(2,), dtype="f8")
    with pytest.raises(InvalidArgumentError, match="VREPO_DASK__SPLIT_EVERY"):
        vrepo.dask.store(da.zeros(4, chunks=2), target)
