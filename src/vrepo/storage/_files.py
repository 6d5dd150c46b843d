"""Blocking file primitives of `LocalStorage`: whole writes, whole reads, fsync by path.

Each works on one file descriptor or path and keeps no state, so `LocalStorage` can run them
in any thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from vrepo.storage._writeback import hand_off

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
READ_FLAGS = os.O_RDONLY | _O_CLOEXEC | _O_BINARY
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY


def fill_new_file(fd: int, path: str, data: bytes | memoryview) -> None:
    """Write ``data`` into the new file ``path`` open as ``fd``, then hand ``fd`` off to start
    its writeback early, off this thread (so make_durable's fsync is cheap); on failure the
    file is closed and removed."""
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        unlink_quietly(path)
        raise
    hand_off(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` (os.write may write less than asked)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def write_and_close(fd: int, data: bytes | memoryview, finish: Callable[[int], object]) -> None:
    """Write ``data``, run ``finish`` (fsync, or start writeback) and close, whatever happens."""
    try:
        write_all(fd, data)
        finish(fd)
    finally:
        os.close(fd)


if hasattr(os, "pread"):
    _pread = os.pread
else:  # Windows; safe because every call uses its own file descriptor

    def _pread(fd: int, size: int, offset: int) -> bytes:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)


def read_upto(fd: int, size: int, offset: int) -> bytes:
    """Read ``size`` bytes at ``offset``, fewer only at end of file."""
    data = _pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        part = _pread(fd, size - got, offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def fsync_path(path: str) -> None:
    """fsync a file or directory by path."""
    fd = os.open(path, READ_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """fsync a directory so new entries in it survive a crash (not possible on Windows)."""
    if os.name == "posix":
        fsync_path(path)


def unlink_quietly(path: str) -> None:
    """Remove ``path`` if possible; a cleanup that must not mask the error being handled."""
    with contextlib.suppress(OSError):
        os.unlink(path)
