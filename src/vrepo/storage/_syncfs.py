"""When one ``syncfs`` per filesystem may replace one fsync per file, and the call itself.

Linux's syncfs writes back and commits everything dirty on a filesystem and waits for it.
For a commit of many chunk files it is far cheaper than fsyncing each: 288 files of 2 MiB
took 45-60 ms of fsyncs in the distributed benchmark, 1-3 ms of syncfs. It is used only when:

- the kernel reports writeback errors through it (Linux 5.8+; older ones returned success
  even after an I/O error, which would make a failed commit look durable);
- the filesystem implements it locally and durably (ext4, xfs, btrfs, ...): network and
  FUSE filesystems may not pass it on to their server, and there only fsync is trusted;
- and it will not wait long on other programs' data: the machine holds little dirty data,
  or the files are so many that fsyncing each would cost more anyway.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
from collections.abc import Callable, Iterable

from vrepo.storage._libc import linux_libc_function

# Filesystems whose syncfs flushes their own disk and reports errors. Deliberately short:
# an unknown type only costs speed (per-file fsync), a wrong entry would cost durability.
_TRUSTED_TYPES = frozenset({"ext4", "ext3", "xfs", "btrfs", "f2fs", "zfs", "bcachefs", "tmpfs"})
_FIRST_RELIABLE_KERNEL = (5, 8)
_DIRTY_LIMIT_BYTES = 64 << 20  # syncfs then waits on at most this much, ~0.1 s of disk


def _load() -> Callable[[int], None] | None:
    func = linux_libc_function("syncfs")
    if func is None or _kernel_version() < _FIRST_RELIABLE_KERNEL:
        return None
    func.argtypes = (ctypes.c_int,)
    func.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if func(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


def _kernel_version() -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", os.uname().release) if hasattr(os, "uname") else None
    return (int(found[1]), int(found[2])) if found else (0, 0)


syncfs = _load()  # None where it is missing or cannot be trusted to report errors


@functools.cache
def filesystem_type(device: int) -> str | None:
    """The type of the mounted filesystem with device number ``device``, None if unknown."""
    wanted = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields, _, rest = line.partition(" - ")
                if fields.split()[2:3] == [wanted] and rest:
                    return rest.split()[0]
    except OSError:
        pass
    return None


def dirty_bytes() -> int | None:
    """Bytes of this machine's memory waiting to be, or being, written to disk."""
    total = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith(("Dirty:", "Writeback:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return total


def worthwhile(n_files: int, devices: Iterable[int], *, many: int) -> bool:
    """Whether syncing the filesystems ``devices`` (st_dev numbers) beats fsyncing ``n_files``.

    ``many`` is the file count from which syncfs wins even on a busy machine.
    """
    if syncfs is None or not all(filesystem_type(d) in _TRUSTED_TYPES for d in devices):
        return False
    if n_files >= many:
        return True
    dirty = dirty_bytes()
    return dirty is not None and dirty <= _DIRTY_LIMIT_BYTES
