"""The small rules every commit follows: metadata that stores as JSON, and retry backoff."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from vrepo.errors import InvalidArgumentError
from vrepo.format import RepoConfig


def backoff_seconds(attempt: int, config: RepoConfig) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))] milliseconds."""
    cap = min(config.commit_backoff_max_ms, config.commit_backoff_ms * 2 ** (attempt - 1))
    return random.uniform(0, cap) / 1000


def validated_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Commit metadata as it will be stored (a JSON round trip), or `InvalidArgumentError`."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"commit metadata must be a dict, not {type(metadata).__name__}")
    try:
        return msgspec.json.decode(msgspec.json.encode(metadata))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidArgumentError(
            f"commit metadata must be JSON-compatible (str keys; str, number, bool, None, "
            f"list, dict values): {exc}"
        ) from exc
