"""Listing S3 keys: ListObjectsV2 pages, as few and as small as a limit allows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from vrepo.storage._keys import first_keys, is_valid_key

_MAX_PAGE = 1000  # ListObjectsV2 returns at most this many keys per request


async def list_keys(
    list_page: Callable[..., Awaitable[Any]],
    root: str,
    prefix: str,
    limit: int | None,
    start_after: str | None = None,
) -> list[str]:
    """The keys below ``root`` that start with ``prefix`` (and sort after ``start_after``,
    if given), in the server's order.

    ``list_page(**request)`` sends one ListObjectsV2 request. With ``limit`` each asks for
    only the keys still wanted (``MaxKeys``), so the first key of a prefix costs one request.
    Objects whose names are not valid keys (such as folder markers ending in '/') are skipped.
    """
    if limit is not None and limit <= 0:
        return first_keys([], limit)  # raises for a negative limit
    root = f"{root}/" if root else ""
    request: dict[str, Any] = {"Prefix": root + prefix}
    if start_after is not None and start_after >= prefix:
        request["StartAfter"] = root + start_after
    keys: list[str] = []
    while True:
        wanted = _MAX_PAGE if limit is None else limit - len(keys)
        request["MaxKeys"] = min(wanted, _MAX_PAGE)
        page = await list_page(**request)
        keys.extend(
            key
            for key in (item["Key"][len(root) :] for item in page.get("Contents", ()))
            if is_valid_key(key)
        )
        if not page.get("IsTruncated") or (limit is not None and len(keys) >= limit):
            return first_keys(keys, limit)
        request["ContinuationToken"] = page["NextContinuationToken"]
