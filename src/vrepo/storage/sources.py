"""Reading the objects outside a repository that virtual chunk refs point into.

A `SourceReader` reads a byte range of one object named by a location URL and reports the
object's validator at that moment, so the caller can tell a changed source from the one its
ref was made against. Local files (``file://``) are read today, with ``pread`` on one open
file descriptor whose ``fstat`` gives the validator, so bytes and validator belong to the same
file; ``s3://`` and ``https://`` readers are meant to join them behind the same interface.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, Protocol

from vrepo.errors import InvalidArgumentError, ObjectNotFoundError, StorageError


def file_validator(mtime_ns: int, size: int) -> str:
    """The validator of a local file: its modification time (ns) and size."""
    return f"mtime_ns={int(mtime_ns)};size={int(size)}"


def etag_validator(etag: str) -> str:
    """The validator of an object in an object store: its ETag."""
    return f"etag={etag}"


class SourceReader(Protocol):
    """Byte ranges and validators of the objects of one virtual chunk container."""

    async def validator(self, location: str) -> str:
        """The object's validator now; `ObjectNotFoundError` if it does not exist."""
        ...

    async def read(self, location: str, start: int, end: int) -> tuple[bytes, str]:
        """Bytes ``[start, end)`` of the object (fewer at its end) and its validator."""
        ...


class LocalSourceReader:
    """Local files named by ``file:///absolute/path`` locations."""

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        if storage_options:
            raise InvalidArgumentError(
                f"a file:// virtual chunk container takes no storage options, got "
                f"{dict(storage_options)!r}; remove them from its configuration"
            )

    async def validator(self, location: str) -> str:
        return await asyncio.to_thread(_stat, location)

    async def read(self, location: str, start: int, end: int) -> tuple[bytes, str]:
        return await asyncio.to_thread(_pread, location, start, end)


def source_reader(scheme: str, storage_options: Mapping[str, Any]) -> SourceReader:
    """The reader for a container of ``scheme`` (``file``)."""
    if scheme == "file":
        return LocalSourceReader(storage_options)
    raise InvalidArgumentError(f"vrepo cannot read virtual chunks from {scheme}:// yet")


def _path(location: str) -> str:
    return location[len("file://") :]


def _missing(location: str) -> ObjectNotFoundError:
    return ObjectNotFoundError(
        location,
        f"the source {location!r} of a virtual chunk ref does not exist; restore the file, "
        "or write the chunks that point into it again",
    )


def _stat(location: str) -> str:
    try:
        st = os.stat(_path(location))
    except FileNotFoundError:
        raise _missing(location) from None
    except OSError as e:
        raise StorageError(f"cannot read the virtual chunk source {location!r}: {e}") from e
    return file_validator(st.st_mtime_ns, st.st_size)


def _pread(location: str, start: int, end: int) -> tuple[bytes, str]:
    try:
        fd = os.open(_path(location), os.O_RDONLY)
    except FileNotFoundError:
        raise _missing(location) from None
    except OSError as e:
        raise StorageError(f"cannot open the virtual chunk source {location!r}: {e}") from e
    try:
        st = os.fstat(fd)
        return os.pread(fd, max(end - start, 0), start), file_validator(st.st_mtime_ns, st.st_size)
    except OSError as e:
        raise StorageError(f"cannot read the virtual chunk source {location!r}: {e}") from e
    finally:
        os.close(fd)
