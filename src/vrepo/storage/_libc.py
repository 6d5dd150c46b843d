"""Linux C library functions Python does not wrap (sync_file_range, syncfs)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any


def linux_libc_function(name: str) -> Any | None:
    """A function of Linux's C library, or None elsewhere (or if it is missing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
