"""Virtual chunk refs in the engine: containers checked on write and on read, validators
taken when refs are made and checked when their bytes are read."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vrepo.errors import InvalidArgumentError, VirtualContainerError, VirtualSourceChangedError
from vrepo.format import VirtualChunkContainer, VirtualRef, container_for, normalize_location
from vrepo.storage.sources import source_reader

_HOW = (
    "repo.add_virtual_chunk_container('file:///path/to/dir/') adds a container, if you trust "
    "what it holds"
)


def _configured(containers: Sequence[VirtualChunkContainer]) -> str:
    if not containers:
        return "it has none configured"
    return "it allows " + ", ".join(repr(c.url_prefix) for c in containers)


def container_of(
    location: str, containers: Sequence[VirtualChunkContainer], *, chunk: object = None
) -> VirtualChunkContainer:
    """The container holding ``location`` (already normalized), or `VirtualContainerError`;
    ``chunk`` names the chunk being read (None: a ref being written)."""
    container = container_for(location, tuple(containers))
    if container is None:
        subject = (
            f"location {location!r} is"
            if chunk is None
            else (f"{chunk} is a virtual ref into {location!r}, which is")
        )
        raise VirtualContainerError(
            location,
            f"{subject} outside every virtual chunk container of this repository "
            f"({_configured(containers)}); vrepo reads no location it was not configured to "
            f"read: {_HOW}",
        )
    return container


def location_table(locations: Any, location_index: Any | None) -> tuple[list[str], np.ndarray]:
    """The distinct locations and each ref's index among them: ``locations`` per ref, or,
    with ``location_index``, the table itself (dictionary-encoded already)."""
    if location_index is not None:
        table = [str(x) for x in np.asarray(locations, dtype=object).tolist()]
        return table, np.asarray(location_index)
    per_ref = np.asarray(locations)
    if per_ref.ndim != 1:
        raise InvalidArgumentError(f"locations must be one-dimensional, got shape {per_ref.shape}")
    table, index = np.unique(per_ref, return_inverse=True)
    return [str(x) for x in table.tolist()], index.reshape(-1)


async def take_sources(
    table: Sequence[str],
    containers: Sequence[VirtualChunkContainer],
    validators: Mapping[str, str] | None,
) -> tuple[tuple[str, str], ...]:
    """Each location of ``table`` normalized, checked against the containers, with its
    validator: from ``validators`` (keyed by the location as given) or read from the source
    now, concurrently (`ObjectNotFoundError` names a missing one)."""
    normalized = []
    for location in table:
        try:
            one = normalize_location(location)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"set_virtual_refs: {e}") from None
        normalized.append((location, one, container_of(one, containers)))
    if validators is not None:
        missing = [given for given, _, _ in normalized if given not in validators]
        if missing:
            raise InvalidArgumentError(
                f"validators has no entry for {missing[0]!r}; give one per location, or "
                "validators=None to take them from the sources now"
            )
        return tuple((one, str(validators[given])) for given, one, _ in normalized)
    found = await asyncio.gather(
        *(source_reader(c.scheme, c.storage_options).validator(one) for _, one, c in normalized)
    )
    return tuple((one, v) for (_, one, _), v in zip(normalized, found, strict=True))


async def read_virtual(
    ref: VirtualRef,
    start: int,
    end: int,
    containers: Sequence[VirtualChunkContainer],
    *,
    what: object,
) -> bytes:
    """Bytes ``[start, end)`` (within the ref) of a virtual chunk, once its location is
    known to lie in a container and its source's validator matches the ref's."""
    container = container_of(ref.location, containers, chunk=what)
    reader = source_reader(container.scheme, container.storage_options)
    data, validator = await reader.read(ref.location, ref.offset + start, ref.offset + end)
    if validator != ref.validator:
        raise VirtualSourceChangedError(
            ref.location,
            f"{what} is a virtual ref into {ref.location!r}, which changed after the ref was "
            f"made (then {ref.validator}, now {validator}), so its bytes may no longer be the "
            "chunk's; make the refs again from the file as it is (session.set_virtual_refs) and "
            "commit, or put the original file back",
        )
    if len(data) != end - start:
        raise VirtualSourceChangedError(
            ref.location,
            f"{what} is a virtual ref to bytes [{ref.offset + start}, {ref.offset + end}) of "
            f"{ref.location!r}, which has only {len(data)} of them; the ref does not match the "
            "file: make the refs again from it (session.set_virtual_refs) and commit",
        )
    return data
