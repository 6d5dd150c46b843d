"""``repo.json``: the repository's format version, creation time and configuration."""

from __future__ import annotations

import operator

import msgspec
import msgspec.structs

from vrepo.errors import FormatError, InvalidArgumentError
from vrepo.format.envelope import (
    FORMAT_VERSION,
    FileType,
    decode_json_record,
    encode_json_record,
)
from vrepo.format.virtual_location import VirtualChunkContainer

REPO_INFO_KEY = "repo.json"
MAX_INLINE_THRESHOLD = 65536


class RepoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Per-repository settings stored in ``repo.json``; unknown fields are ignored on read.

    ``inline_threshold_bytes``: chunks of up to this many bytes are stored inside the
    manifest instead of as chunk objects (0 disables inlining).
    ``commit_retries``: how often a commit that lost a race to another writer rebases and
    tries again before giving up with `ConflictError`.
    ``commit_backoff_ms``: the first retry waits up to this long (jittered), doubling on each
    further retry up to ``commit_backoff_max_ms``.
    ``manifest_split_refs``: an array's chunk refs are kept in pieces of at most this many
    (by block of the chunk grid), so a commit rewrites only the pieces it wrote in.
    ``virtual_chunk_containers``: the location prefixes virtual refs may read
    (`VirtualChunkContainer`); none by default, so nothing virtual is read.
    """

    inline_threshold_bytes: int = 512
    commit_retries: int = 100
    commit_backoff_ms: float = 1.0
    commit_backoff_max_ms: float = 64.0
    manifest_split_refs: int = 32768
    virtual_chunk_containers: tuple[VirtualChunkContainer, ...] = ()

    def __post_init__(self) -> None:
        limits = {
            "inline_threshold_bytes": (int, 0, MAX_INLINE_THRESHOLD),
            "commit_retries": (int, 0, 100_000),
            "commit_backoff_ms": (float, 0, 60_000),
            "commit_backoff_max_ms": (float, 0, 600_000),
            "manifest_split_refs": (int, 1, 2**24),
        }
        for name, (kind, low, high) in limits.items():
            value = _number(name, getattr(self, name), kind)
            if not low <= value <= high:
                raise InvalidArgumentError(f"RepoConfig.{name} must be {low}..{high}, got {value}")
            msgspec.structs.force_setattr(self, name, value)  # numpy numbers as plain ones
        containers = self.virtual_chunk_containers
        if isinstance(containers, VirtualChunkContainer) or not all(
            isinstance(c, VirtualChunkContainer) for c in containers
        ):
            raise InvalidArgumentError(
                "RepoConfig.virtual_chunk_containers must be a sequence of "
                f"vrepo.VirtualChunkContainer, got {containers!r}; for example "
                "[vrepo.VirtualChunkContainer('file:///data/archive/')]"
            )
        msgspec.structs.force_setattr(self, "virtual_chunk_containers", tuple(containers))


def _number(name: str, value: object, kind: type[int] | type[float]) -> int | float:
    """``value`` as a plain int (or float), or `InvalidArgumentError` naming the field, so
    that a configuration is refused before it is written, never stored unreadable."""
    try:
        if isinstance(value, bool | str | bytes):
            raise TypeError(type(value).__name__)
        return operator.index(value) if kind is int else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        wanted = "an int" if kind is int else "a number"
        raise InvalidArgumentError(
            f"RepoConfig.{name} must be {wanted}, got {type(value).__name__} {value!r}"
        ) from None


class RepoInfo(msgspec.Struct, frozen=True):
    """The content of ``repo.json``; ``created_at`` is µs since the Unix epoch (UTC)."""

    format_version: int
    created_at: int
    config: RepoConfig = msgspec.field(default_factory=RepoConfig)


def encode_repo_info(info: RepoInfo) -> bytes:
    """Encode repository info as a JSON record file."""
    return encode_json_record(FileType.REPO_INFO, msgspec.to_builtins(info))


def decode_repo_info(data: bytes | bytearray | memoryview, *, what: str) -> RepoInfo:
    """Decode and verify ``repo.json``; `FormatError` if corrupt or from a newer vrepo."""
    body = decode_json_record(data, FileType.REPO_INFO, what=what)
    version = body.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise FormatError(
            f"{what}: the repository has format version {version}, this vrepo reads up to "
            f"{FORMAT_VERSION}; upgrade vrepo to use it"
        )
    try:
        return msgspec.convert(body, RepoInfo)
    except (msgspec.ValidationError, ValueError) as e:
        raise FormatError(f"{what} has invalid repository info ({e}); the file is corrupt") from e
