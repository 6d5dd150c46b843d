"""fsspec's ``start``/``end`` (Python slice bounds, negatives from the end) as zarr requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from vrepo.errors import InvalidArgumentError


def _bound(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InvalidArgumentError(f"{name} must be an int or None, got {value!r}")
    return int(value)  # type: ignore[call-overload]


async def byte_request(
    start: object, end: object, size: Callable[[], Awaitable[int]]
) -> ByteRequest | None:
    """The request for bytes ``[start:end]`` of a value; ``size`` is awaited only when a
    negative ``end`` (or a negative ``start`` with an ``end``) needs the length."""
    first, last = _bound(start, "start"), _bound(end, "end")
    if first is None and last is None:
        return None
    if first is not None and first < 0 and last is None:
        return SuffixByteRequest(-first)
    if (first or 0) >= 0 and (last is None or last >= 0):
        first = first or 0
        if last is None:
            return OffsetByteRequest(first)
        return RangeByteRequest(first, max(first, last))
    first, last, _ = slice(first, last).indices(await size())
    return RangeByteRequest(first, max(first, last))


__all__ = ["byte_request"]
