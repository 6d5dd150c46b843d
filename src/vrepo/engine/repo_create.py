"""Creating and opening a repository's files: repo.json, the first snapshot, branch main.

Creation order makes a half-made repository safe: the first snapshot and ``main`` are written
before ``repo.json``, so a repository exists once ``repo.json`` does, and then it has a main
branch. A ``main`` without ``repo.json`` is a creation that died (or is under way); the next
creator adopts that ``main``, and the write-once ``repo.json`` decides who created it.
"""

from __future__ import annotations

from vrepo import config as _settings
from vrepo.engine.create_once import create_once
from vrepo.engine.objects import ObjectIO
from vrepo.engine.refs import new_operation, now_us, read_head, write_record
from vrepo.errors import (
    InvalidArgumentError,
    ObjectNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from vrepo.format import (
    FORMAT_VERSION,
    REPO_INFO_KEY,
    Author,
    RepoConfig,
    RepoInfo,
    Snapshot,
    TransactionLog,
    decode_repo_info,
    encode_repo_info,
    new_id,
)
from vrepo.storage import Storage

INITIAL_MESSAGE = "Repository initialized"


def checked_config(config: object) -> RepoConfig:
    """``config``, or the user's ``repository.*`` settings when it is None (see `vrepo.config`).

    Anything but a `RepoConfig` or None is refused with `InvalidArgumentError` before any
    storage is touched (a config of the wrong type used to write an unreadable repo.json).
    """
    if isinstance(config, RepoConfig):
        return config
    if config is None:
        return RepoConfig(
            inline_threshold_bytes=_settings.get("repository.inline-threshold-bytes"),
            commit_retries=_settings.get("repository.commit-retries"),
            commit_backoff_ms=_settings.get("repository.commit-backoff-ms"),
            commit_backoff_max_ms=_settings.get("repository.commit-backoff-max-ms"),
            manifest_split_refs=_settings.get("repository.manifest-split-refs"),
        )
    raise InvalidArgumentError(
        f"config must be a vrepo.RepoConfig or None, got {type(config).__name__} {config!r}; "
        "for example config=vrepo.RepoConfig(inline_threshold_bytes=1024)"
    )


async def create_repository(
    storage: Storage, config: RepoConfig, author: Author | None = None
) -> RepoInfo:
    """Write a new repository's files (the first snapshot by ``author``);
    `RepositoryExistsError` if one is (or gets) there."""
    info = RepoInfo(format_version=FORMAT_VERSION, created_at=now_us(), config=config)
    encoded_info = encode_repo_info(info)  # fails, if at all, before anything is written
    if await storage.exists(REPO_INFO_KEY):
        raise RepositoryExistsError.advised(
            f"a repository already exists at {storage.url}",
            "open it with Repository.open",
            "open-repository",
            url=storage.url,
        )
    first = Snapshot(
        id=new_id(),
        parent_id=None,
        created_at=info.created_at,
        message=INITIAL_MESSAGE,
        metadata={},
        nodes=(),
        author=author,
    )
    log = TransactionLog(first.id, (), (), (), (), (), ())
    objects = ObjectIO(storage, config)
    await storage.make_durable(await objects.put_snapshot(first, log))
    main = await read_head(storage, "branch", "main")
    if main.record is None:
        await write_record(storage, main, "create", first.id, new_operation())
    created = await create_once(
        storage, REPO_INFO_KEY, encoded_info, ours=lambda stored: stored == encoded_info
    )
    if not created:
        raise RepositoryExistsError.advised(
            f"another process created a repository at {storage.url} at the same time",
            "open it with Repository.open",
            "open-repository",
            url=storage.url,
        )
    return info


async def read_repository_info(storage: Storage) -> RepoInfo:
    """The repository's ``repo.json``; `RepositoryNotFoundError` if there is none."""
    try:
        data = await storage.get(REPO_INFO_KEY)
    except ObjectNotFoundError:
        raise RepositoryNotFoundError.advised(
            f"no vrepo repository at {storage.url}",
            "create one with Repository.create",
            "create-repository",
            url=storage.url,
        ) from None
    return decode_repo_info(data, what=f"{storage.url}/{REPO_INFO_KEY}")


async def save_repository_config(storage: Storage, info: RepoInfo, config: object) -> RepoInfo:
    """Replace the stored configuration; returns the new `RepoInfo`."""
    if not isinstance(config, RepoConfig):
        raise InvalidArgumentError(
            f"save_config takes a vrepo.RepoConfig, got {type(config).__name__}"
        )
    new_info = RepoInfo(info.format_version, info.created_at, config)
    await storage.put(REPO_INFO_KEY, encode_repo_info(new_info))  # encoded before writing
    return new_info
