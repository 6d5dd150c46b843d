"""Byte-range planning for `VRepoStore`: resolve a key once, read near ranges together.

zarr reads the inner chunks of a shard as many byte ranges of one key. Once the key's length
is known every request (range, offset, suffix or whole value) is an absolute span, so all of
them, not only `RangeByteRequest`, can share a storage read with their neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from vrepo.errors import InvalidArgumentError

Span = tuple[int, int]

# zarr's defaults for Store.get_ranges (zarr >= 3.4), used on every zarr version
MAX_CONCURRENCY = 10
MAX_GAP_BYTES = 1 << 20
MAX_COALESCED_BYTES = 16 << 20


def check_request(byte_range: ByteRequest | None) -> None:
    """Refuse negative requests with `InvalidArgumentError`, before the key is looked up.

    zarr's own stores disagree on them (`MemoryStore` slices, `LocalStore` fails to seek,
    `FsspecStore` reads from the end), so vrepo refuses them for every key, as its storage
    does; zarr itself never asks for one.
    """
    if isinstance(byte_range, RangeByteRequest):
        bad = byte_range.start < 0 or byte_range.end < byte_range.start
        allowed = "0 <= start <= end"
    elif isinstance(byte_range, OffsetByteRequest):
        bad, allowed = byte_range.offset < 0, "offset >= 0"
    elif isinstance(byte_range, SuffixByteRequest):
        bad, allowed = byte_range.suffix < 0, "suffix >= 0"
    else:
        return  # None, or a kind byte_span refuses
    if bad:
        raise InvalidArgumentError(
            f"invalid byte request {byte_range!r}: expected {allowed}; ask for the last n "
            "bytes with SuffixByteRequest(n) rather than a negative offset"
        )


def byte_span(byte_range: ByteRequest | None, length: int) -> Span:
    """The ``[start, end)`` of ``length`` bytes that ``byte_range`` asks for, clamped to them.

    Always Python ints: zarr's shard indexes ask with numpy integers, and on numpy < 2 a
    ``np.uint64`` plus an int (an offset in a chunk object) is a float.
    """
    if byte_range is None:
        return 0, length
    if isinstance(byte_range, RangeByteRequest):
        return int(min(byte_range.start, length)), int(min(byte_range.end, length))
    if isinstance(byte_range, OffsetByteRequest):
        return int(min(byte_range.offset, length)), length
    if isinstance(byte_range, SuffixByteRequest):
        return int(max(length - byte_range.suffix, 0)), length
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}")


def coalesce(
    spans: Sequence[Span], max_gap_bytes: int, max_coalesced_bytes: int
) -> list[list[int]]:
    """Indices of ``spans`` grouped so that each group is one read.

    Spans join a group while the gap to it is at most ``max_gap_bytes`` and the group spans at
    most ``max_coalesced_bytes`` (a single longer span still gets a group of its own).
    """
    groups: list[list[int]] = []
    start = end = 0
    for index in sorted(range(len(spans)), key=lambda i: spans[i]):
        lo, hi = spans[index]
        if groups and lo - end <= max_gap_bytes and max(end, hi) - start <= max_coalesced_bytes:
            groups[-1].append(index)
            end = max(end, hi)
        else:
            groups.append([index])
            start, end = lo, hi
    return groups


async def read_spans(
    read: Callable[[int, int], Awaitable[bytes]],
    spans: Sequence[Span],
    *,
    max_concurrency: int = MAX_CONCURRENCY,
    max_gap_bytes: int = MAX_GAP_BYTES,
    max_coalesced_bytes: int = MAX_COALESCED_BYTES,
) -> AsyncIterator[list[tuple[int, memoryview]]]:
    """Read ``spans`` through ``read(start, end)``, one batch of ``(index, bytes)`` per read.

    Batches come in completion order, at most ``max_concurrency`` reads at a time; a failed
    read cancels the others and surfaces as a `BaseExceptionGroup` (as zarr's ``get_ranges``).
    """
    semaphore = asyncio.Semaphore(max(1, max_concurrency))

    async def one(group: list[int]) -> list[tuple[int, memoryview]]:
        lo = min(spans[i][0] for i in group)
        hi = max(spans[i][1] for i in group)
        async with semaphore:
            data = memoryview(await read(lo, hi))
        return [(i, data[spans[i][0] - lo : spans[i][1] - lo]) for i in group]

    try:
        async with asyncio.TaskGroup() as tasks:
            pending = [
                tasks.create_task(one(group))
                for group in coalesce(spans, max_gap_bytes, max_coalesced_bytes)
            ]
            for next_done in asyncio.as_completed(pending):
                yield await next_done
    except BaseExceptionGroup as group:
        _, errors = group.split(GeneratorExit)  # the consumer stopped early: not an error
        if errors is not None:
            raise errors from None
