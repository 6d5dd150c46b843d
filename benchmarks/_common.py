"""Shared helpers for the vrepo benchmarks (timing, tables, results, disk usage).

Not a library: imported by the bench_*.py scripts, which are run by hand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@contextmanager
def temp_dir(prefix: str) -> Iterator[str]:
    """A fresh temporary directory, removed afterwards (even on error)."""
    path = tempfile.mkdtemp(prefix=f"vrepo-bench-{prefix}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def settle() -> None:
    """Flush dirty pages left by earlier runs so they do not slow down the next timed run."""
    if hasattr(os, "sync"):
        os.sync()


def fsync_tree(root: str) -> None:
    """fsync every file and directory below ``root`` in parallel: LocalStore, made durable."""

    def fsync(path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    paths = []
    for directory, _, names in os.walk(root):
        paths.append(directory)
        paths.extend(os.path.join(directory, name) for name in names)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fsync, paths))


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, measured with time.perf_counter."""
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
        "samples": list(samples),
    }


def fmt_s(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def disk_usage(root: str) -> tuple[int, int, int]:
    """(sum of file sizes, allocated bytes as `du` counts them (st_blocks * 512), file count)."""
    size = blocks = files = 0
    for directory, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            size += st.st_size
            blocks += st.st_blocks * 512
            files += 1
    return size, blocks, files


def machine() -> dict[str, Any]:
    import numpy
    import zarr

    import vrepo

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "zarr": zarr.__version__,
        "numpy": numpy.__version__,
        "vrepo": getattr(vrepo, "__version__", "?"),
        "tmpdir": tempfile.gettempdir(),
    }


def save_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
    return path


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


@contextlib.contextmanager
def storage_factory(kind: str) -> Iterator[Callable[[str], contextlib.AbstractContextManager]]:
    """Yields ``fresh(name)``: a context manager giving a new, empty storage of ``kind``
    (local disk, or a real S3 server on 127.0.0.1 started with the test suite's helpers)."""
    import vrepo

    if kind == "local":

        @contextlib.contextmanager
        def fresh(name: str) -> Iterator[vrepo.Storage]:
            with temp_dir(name) as d:
                yield vrepo.local_storage(f"{d}/repo")

        yield fresh
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from s3_servers import start_moto, start_seaweedfs

    with contextlib.ExitStack() as stack:
        if kind == "moto":
            server = stack.enter_context(start_moto())
        else:
            server = stack.enter_context(
                start_seaweedfs(Path(stack.enter_context(temp_dir("weed"))))
            )

        @contextlib.contextmanager
        def fresh(name: str) -> Iterator[vrepo.Storage]:
            yield server.storage(server.pool.take(), name)

        yield fresh
