"""Reading the cuts that expiry made in branch histories (`vrepo.format.expiry`).

Every history walk applies the cuts in force: a walk that reaches a cut snapshot goes on from
the ancestor the cut names, so expired snapshots are never shown, counted or read. The newest
record is found with a one-key listing; garbage collection asks for the newest record old
enough to be trusted (`cuts_as_of`), so that a cut younger than its grace period protects
what it skipped.
"""

from __future__ import annotations

from collections.abc import Mapping

from vrepo.engine.objects import ObjectIO
from vrepo.format import EXPIRY_PREFIX, ExpiryRecord, decode_expiry_record

NO_CUTS: Mapping[str, str] = {}


async def newest_expiry(objects: ObjectIO) -> ExpiryRecord | None:
    """The newest expiry record, or None if nothing was ever expired."""
    keys = await objects.storage.list(EXPIRY_PREFIX, limit=1)
    return await _read(objects, keys[0]) if keys else None


async def current_cuts(objects: ObjectIO) -> Mapping[str, str]:
    """The cuts in force now: ``{snapshot id: the ancestor its history goes on from}``."""
    record = await newest_expiry(objects)
    return NO_CUTS if record is None else record.cuts


async def cuts_as_of(objects: ObjectIO, limit_us: int) -> Mapping[str, str]:
    """The cuts of the newest record written at or before ``limit_us`` (µs since the epoch):
    what garbage collection may rely on, every younger cut being ignored."""
    for key in await objects.storage.list(EXPIRY_PREFIX):  # newest first
        record = await _read(objects, key)
        if record.written_at <= limit_us:
            return record.cuts
    return NO_CUTS


async def _read(objects: ObjectIO, key: str) -> ExpiryRecord:
    return decode_expiry_record(await objects.storage.get(key), what=f"expiry record {key}")
