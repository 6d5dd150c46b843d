"""Many small chunks: 200,000 chunks of 256 bytes in one array, one commit.

A 1-D float32 array of 200,000 * 64 elements with chunks of 64 elements (256 bytes
uncompressed), compressed by zarr's default codec (zstd). The data is a smooth daily cycle
plus small noise, quantised to a sensor resolution of 0.01 (``--data noisy`` keeps full
float32 noise, which barely compresses). Written through zarr into one writable session and
committed once. Measured:

- commit time: only ``session.commit(...)``; target <= 1.0 s (median over rounds);
- cold read: in a fresh process (imports done before the clock starts), from
  ``Repository.open`` to reading one element; target <= 100 ms (median of 5 child runs);
  the same for zarr's LocalStore is shown for reference;
- bytes on disk: the sum of file sizes under the repository (target <= 50 MB) and the blocks
  allocated (as ``du`` counts them); LocalStore's for reference;
- manifest memory: ``Manifest.decode(...).nbytes_in_memory / len`` (target <= 32 bytes per
  ref), and the inline payload bytes per ref, reported separately;
- the zarr write itself (not a target): vrepo session vs LocalStore, as a ratio.

Each round writes the array afresh into a new temporary repository; the first
``--local-rounds`` rounds (default 1: it writes 200,000 files and takes minutes) also write a
LocalStore, interleaved with vrepo's write and alternating which goes first.

    /work/venv/bin/python benchmarks/bench_many_chunks.py [--rounds 3] [--local-rounds 1]
        [--data sensor|noisy] [--profile commit|open]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import zarr
from _common import (
    disk_usage,
    fmt_bytes,
    fmt_s,
    print_table,
    save_results,
    settle,
    summary,
    temp_dir,
    timed,
    verdict,
)
from zarr.storage import LocalStore

import vrepo
from vrepo.format import Manifest

N_CHUNKS = 200_000
CHUNK = 64  # float32 elements: 256 bytes uncompressed
SHAPE = (N_CHUNKS * CHUNK,)
ARRAY = "signal"
PROBE = 123456  # the element the cold reader reads
CHILD_RUNS = 5

TARGET_COMMIT_S = 1.0
TARGET_COLD_S = 0.100
TARGET_FILE_BYTES = 50_000_000
TARGET_REF_BYTES = 32


def make_data(kind: str) -> np.ndarray:
    """A smooth daily cycle (one sample per second) plus small noise, like a sensor log."""
    t = np.arange(SHAPE[0], dtype=np.float64)
    noise = np.random.default_rng(7).normal(0.0, 0.05, SHAPE[0])
    signal = 15.0 + 10.0 * np.sin(2 * np.pi * t / 86_400) + noise
    if kind == "sensor":
        signal = np.round(signal, 2)  # the sensor's resolution
    return signal.astype(np.float32)


def create(store) -> zarr.Array:
    # compressors left at zarr's default (zstd); fill value never occurs in whole chunks
    return zarr.create_array(
        store, name=ARRAY, shape=SHAPE, chunks=(CHUNK,), dtype="float32", fill_value=-9999.0
    )


# --- writing -------------------------------------------------------------------------------------


def write_vrepo(path: str, data: np.ndarray) -> dict[str, float]:
    repo = vrepo.Repository.create(path)  # setup, untimed
    session = repo.writable_session("main")

    def write() -> None:
        create(session.store)[:] = data

    write_s, _ = timed(write)
    commit_s, _ = timed(lambda: session.commit(f"{N_CHUNKS} chunks"))
    return {"vrepo_write_s": write_s, "commit_s": commit_s}


def write_local(path: str, data: np.ndarray) -> dict[str, float]:
    def write() -> None:
        create(LocalStore(path))[:] = data

    write_s, _ = timed(write)
    return {"local_write_s": write_s}


# --- cold reads in a fresh process ---------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import zarr, vrepo                      # imports happen before the clock starts
    from zarr.storage import LocalStore
    kind, path, array, probe = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t0 = time.perf_counter()
    if kind == "vrepo":
        repo = vrepo.Repository.open(path)
        t1 = time.perf_counter()
        store = repo.readonly_session("main").store
    else:
        t1 = time.perf_counter()
        store = LocalStore(path, read_only=True)
    t2 = time.perf_counter()
    arr = zarr.open_array(store, path=array, mode="r")
    t3 = time.perf_counter()
    value = arr[probe]
    t4 = time.perf_counter()
    print(json.dumps({"total_s": t4 - t0, "open_repo_s": t1 - t0, "session_s": t2 - t1,
                      "open_array_s": t3 - t2, "read_element_s": t4 - t3,
                      "value": float(value)}))
    """
)


def _child_env() -> dict[str, str]:
    """The child imports the very vrepo this process imported (installed or on PYTHONPATH)."""
    env = dict(os.environ)
    src = str(Path(vrepo.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def cold_read(kind: str, path: str, expected: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, path, ARRAY, str(PROBE)],
        check=True,
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    result = json.loads(out.stdout)
    if result["value"] != expected:
        raise SystemExit(f"cold read through {kind} returned {result['value']}, not {expected}")
    return result


# --- manifest ------------------------------------------------------------------------------------


def manifest_stats(repo_path: str) -> dict[str, float]:
    files = sorted(Path(repo_path, "manifests").iterdir())
    if len(files) != 1:
        raise SystemExit(f"expected one manifest, found {len(files)}")
    data = files[0].read_bytes()
    manifest, seconds = None, []
    for _ in range(5):
        s, manifest = timed(lambda: Manifest.decode(data, what=f"manifest {files[0].name}"))
        seconds.append(s)
    n = len(manifest)
    if n != N_CHUNKS:
        raise SystemExit(f"the manifest holds {n} refs, expected {N_CHUNKS}")
    return {
        "refs": n,
        "file_bytes": len(data),
        "decode_s": statistics.median(seconds),
        "columns_bytes_per_ref": manifest.nbytes_in_memory / n,
        "inline_bytes_per_ref": len(manifest.inline_blob) / n,
        "inline_refs": n if manifest.ids is None else int((~manifest.ids.any(axis=1)).sum()),
    }


# --- profiling -----------------------------------------------------------------------------------


def profile(which: str, data: np.ndarray) -> None:
    """cProfile the commit, or a cold open + one-element read, run on this thread's loop.

    vrepo's sync API runs coroutines on a background thread, invisible to cProfile; here the
    same coroutines run under asyncio.run in the profiled thread (blocking file I/O still
    happens in executor threads and shows up as waiting).
    """
    import asyncio
    import cProfile
    import pstats

    from zarr.core.buffer import default_buffer_prototype

    with temp_dir("many-profile") as d:
        path = f"{d}/repo"
        repo = vrepo.Repository.create(path)
        session = repo.writable_session("main")
        create(session.store)[:] = data
        prof = cProfile.Profile()
        if which == "commit":
            prof.enable()
            asyncio.run(session.commit_async("profiled"))
            prof.disable()
        else:
            session.commit("profiled")
            settle()
            key = f"{ARRAY}/c/{PROBE // CHUNK}"

            async def cold() -> None:
                store = vrepo.Repository.open(path).readonly_session("main").store
                await store.get(f"{ARRAY}/zarr.json", default_buffer_prototype())
                await store.get(key, default_buffer_prototype())

            prof.enable()
            asyncio.run(cold())
            prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)


# --- driver --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--local-rounds",
        type=int,
        default=1,
        help="rounds that also write the LocalStore baseline (>= 1)",
    )
    parser.add_argument("--data", choices=["sensor", "noisy"], default="sensor")
    parser.add_argument("--profile", choices=["commit", "open"])
    args = parser.parse_args()
    if args.local_rounds < 1:
        parser.error("--local-rounds must be >= 1")

    data = make_data(args.data)  # generated once, before any timing
    expected = float(data[PROBE])
    if args.profile:
        profile(args.profile, data)
        return 0

    print(
        f"bench_many_chunks: {N_CHUNKS} chunks of {CHUNK * 4} B ({args.data} data), "
        f"{args.rounds} rounds"
    )
    rounds, disk, cold, manifest = [], {}, {}, {}
    for i in range(args.rounds):
        times: dict[str, float] = {}
        with temp_dir("many-vrepo") as vdir, temp_dir("many-local") as ldir:
            vpath = f"{vdir}/repo"
            steps = [(write_vrepo, vpath)]
            if i < args.local_rounds:  # LocalStore writes 200,000 files: slow, so fewer rounds
                steps.append((write_local, ldir))
            for write, path in steps[:: 1 if i % 2 == 0 else -1]:
                settle()
                times.update(write(path, data))
            if i == 0:  # the same every round: measure once
                settle()
                disk["vrepo"] = dict(
                    zip(("file_bytes", "allocated_bytes", "files"), disk_usage(vpath), strict=True)
                )
                disk["local"] = dict(
                    zip(("file_bytes", "allocated_bytes", "files"), disk_usage(ldir), strict=True)
                )
                manifest = manifest_stats(vpath)
                for kind, path in (("vrepo", vpath), ("local", ldir)):
                    cold_read(kind, path, expected)  # warm-up: page cache, .pyc files
                cold = {"vrepo": [], "local": []}
                for _ in range(CHILD_RUNS):
                    for kind, path in (("vrepo", vpath), ("local", ldir)):
                        cold[kind].append(cold_read(kind, path, expected))
        rounds.append(times)
        print(f"  round {i + 1}: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in times.items()))

    commit = summary([r["commit_s"] for r in rounds])
    paired = [r for r in rounds if "local_write_s" in r]
    write_ratio = statistics.median(r["vrepo_write_s"] / r["local_write_s"] for r in paired)
    write_commit_ratio = statistics.median(
        (r["vrepo_write_s"] + r["commit_s"]) / r["local_write_s"] for r in paired
    )
    cold_total = {k: summary([c["total_s"] for c in v]) for k, v in cold.items()}
    cold_parts = {
        part: statistics.median(c[part] for c in cold["vrepo"])
        for part in ("open_repo_s", "session_s", "open_array_s", "read_element_s")
    }

    checks = {
        "commit": commit["median"] <= TARGET_COMMIT_S,
        "cold": cold_total["vrepo"]["median"] <= TARGET_COLD_S,
        "disk": disk["vrepo"]["file_bytes"] <= TARGET_FILE_BYTES,
        "ref": manifest["columns_bytes_per_ref"] <= TARGET_REF_BYTES,
    }
    rows = [
        [
            "commit time (median)",
            fmt_s(commit["median"]),
            f"<= {fmt_s(TARGET_COMMIT_S)}",
            verdict(checks["commit"]),
        ],
        [
            "cold open + read 1 element (median of 5)",
            fmt_s(cold_total["vrepo"]["median"]),
            f"<= {fmt_s(TARGET_COLD_S)}",
            verdict(checks["cold"]),
        ],
        ["  same via zarr LocalStore (reference)", fmt_s(cold_total["local"]["median"]), "", ""],
        [
            "bytes on disk: file sizes",
            f"{disk['vrepo']['file_bytes'] / 1e6:.1f} MB",
            f"<= {TARGET_FILE_BYTES / 1e6:.0f} MB",
            verdict(checks["disk"]),
        ],
        [
            "bytes on disk: allocated blocks",
            f"{disk['vrepo']['allocated_bytes'] / 1e6:.1f} MB",
            "",
            "",
        ],
        [
            "  LocalStore: file sizes / allocated",
            f"{disk['local']['file_bytes'] / 1e6:.1f} / "
            f"{disk['local']['allocated_bytes'] / 1e6:.1f} MB",
            "",
            "",
        ],
        [
            "manifest memory per ref (columns)",
            f"{manifest['columns_bytes_per_ref']:.1f} B",
            f"<= {TARGET_REF_BYTES} B",
            verdict(checks["ref"]),
        ],
        ["manifest inline payload per ref", f"{manifest['inline_bytes_per_ref']:.1f} B", "", ""],
        ["zarr write, vrepo / LocalStore (median of pairs)", f"{write_ratio:.3f}", "", ""],
        ["zarr write + commit, vrepo / LocalStore", f"{write_commit_ratio:.3f}", "", ""],
    ]
    print()
    print_table(["measure", "value", "target", ""], rows)
    print(
        "\ncold read breakdown (vrepo, medians): "
        + ", ".join(f"{k[:-2]} {fmt_s(v)}" for k, v in cold_parts.items())
    )
    print(
        f"manifest file {fmt_bytes(manifest['file_bytes'])}, decode {fmt_s(manifest['decode_s'])}"
        f"; vrepo files {disk['vrepo']['files']}, LocalStore files {disk['local']['files']}"
    )
    print(
        f"writes (medians): vrepo {fmt_s(statistics.median(r['vrepo_write_s'] for r in rounds))}"
        f", LocalStore {fmt_s(statistics.median(r['local_write_s'] for r in paired))}"
    )

    path = save_results(
        "bench_many_chunks",
        {
            "rounds": rounds,
            "data": args.data,
            "commit_s": commit,
            "cold_read_s": cold_total,
            "cold_read_parts_s": cold_parts,
            "cold_runs": cold,
            "disk": disk,
            "manifest": manifest,
            "write_ratio": write_ratio,
            "write_commit_ratio": write_commit_ratio,
            "targets": {
                "commit_s": TARGET_COMMIT_S,
                "cold_s": TARGET_COLD_S,
                "file_bytes": TARGET_FILE_BYTES,
                "ref_bytes": TARGET_REF_BYTES,
            },
            "ok": checks,
        },
    )
    print(f"\nresults: {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
