"""``repo.json``: the repository's format version, creation time and configuration."""

from __future__ import annotations

import msgspec

from vrepo.errors import FormatError
from vrepo.format.envelope import (
    FORMAT_VERSION,
    FileType,
    decode_json_record,
    encode_json_record,
)

REPO_INFO_KEY = "repo.json"
MAX_INLINE_THRESHOLD = 65536


class RepoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Per-repository settings stored in ``repo.json``; unknown fields are ignored on read.

    ``inline_threshold_bytes``: chunks of up to this many bytes are stored inside the
    manifest instead of as chunk objects (0 disables inlining).
    ``manifest_preload_max_refs``: reserved.
    """

    inline_threshold_bytes: int = 512
    manifest_preload_max_refs: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.inline_threshold_bytes <= MAX_INLINE_THRESHOLD:
            raise ValueError(
                f"inline_threshold_bytes is 0..{MAX_INLINE_THRESHOLD}, got "
                f"{self.inline_threshold_bytes}"
            )
        if self.manifest_preload_max_refs < 0:
            raise ValueError(
                f"manifest_preload_max_refs is >= 0, got {self.manifest_preload_max_refs}"
            )


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
