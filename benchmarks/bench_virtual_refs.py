"""Virtual chunk refs at scale: memory and disk per ref for 10M refs into 1,000 files.

The workload: one float32 array of 1,000 x 10,000 chunks, each file holding one row of
chunks (10,000 refs per file, 400 bytes apart after a 4 KiB header), set with one
`Session.set_virtual_refs` call (locations dictionary-encoded) and committed. The files are
sparse (all zeros), so the set-up writes almost nothing; a few chunks are read back through
zarr to show that the refs resolve and validate.

Measured, with the baseline in the same run (the same refs as stored chunk refs: 12-byte ids
and CRC-32Cs, what a copy into the repository would hold):

- memory per ref: bytes the session keeps after `set_virtual_refs` (tracemalloc, inputs
  freed), and the columns of every committed manifest piece loaded again; target <= 24;
- disk per ref: bytes of all manifest files the commit wrote; target <= 8.

Run:  python benchmarks/bench_virtual_refs.py [--files 1000] [--refs-per-file 10000]
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import zarr
from _common import fmt_s, print_table, save_results, temp_dir, verdict

import vrepo
from vrepo._sync import run_sync
from vrepo.format import Manifest
from vrepo.format.manifest_columns import ManifestColumns

CHUNK = 100  # float32 elements per chunk: 400 bytes
HEADER = 4096


def make_files(folder: Path, files: int, per_file: int) -> list[str]:
    folder.mkdir()
    urls = []
    for i in range(files):
        path = folder / f"part-{i:04d}.nc"
        with open(path, "wb") as f:
            f.truncate(HEADER + per_file * CHUNK * 4)  # sparse: zeros, nothing written
        urls.append(f"file://{path}")
    return urls


def columns(files: int, per_file: int) -> tuple[np.ndarray, ...]:
    rows = np.repeat(np.arange(files, dtype=np.uint32), per_file)
    cols = np.tile(np.arange(per_file, dtype=np.uint32), files)
    offsets = HEADER + cols.astype(np.uint64) * (CHUNK * 4)
    lengths = np.full(len(rows), CHUNK * 4, np.uint32)
    return np.stack([rows, cols], axis=1), rows, offsets, lengths


def stored_baseline(lengths: np.ndarray, split: int) -> tuple[float, float]:
    """Memory and disk per ref of the same refs as stored chunk refs (ids, checksums)."""
    n = len(lengths)
    rng = np.random.default_rng(0)
    take = min(n, split)  # one piece's worth, which is what both figures scale with
    keys = np.arange(take, dtype=np.uint64)
    ids = rng.integers(0, 256, (take, 12), dtype=np.uint8)
    ids[:, 0] |= 1
    cols = ManifestColumns(
        1,
        (take,),
        keys,
        ids,
        np.zeros(take, np.uint64),
        lengths[:take],
        b"",
        rng.integers(0, 2**32, take, dtype=np.uint64),
    )
    manifest = Manifest(*cols)
    return manifest.nbytes_in_memory / take, len(manifest.encode()) / take


def warm_up(repo: vrepo.Repository, session: vrepo.Session, url: str) -> None:
    """One ref set in a throwaway session, so that what is measured is per ref."""
    scratch = repo.writable_session()
    scratch.store  # noqa: B018  (the store, as the measured session has it)
    run_sync(scratch._ensure_content())
    zarr.create_array(scratch.store, name="w", shape=(CHUNK,), chunks=(CHUNK,), dtype="<f4")
    scratch.set_virtual_refs("w", [[0]], [url], [HEADER], [CHUNK * 4])
    run_sync(session._ensure_content())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--refs-per-file", type=int, default=10_000)
    args = parser.parse_args()
    files, per_file = args.files, args.refs_per_file
    n = files * per_file
    print(f"bench_virtual_refs: {n:,} virtual refs into {files:,} files")
    with temp_dir("virtual") as d:
        root = Path(d)
        urls = make_files(root / "sources", files, per_file)
        repo = vrepo.Repository.create(root / "repo.vrepo")
        repo.add_virtual_chunk_container(f"file://{root / 'sources'}/")
        session = repo.writable_session()
        zarr.create_array(
            session.store,
            name="v",
            shape=(files, per_file * CHUNK),
            chunks=(1, CHUNK),
            dtype="<f4",
            compressors=None,
            fill_value=0,
        )
        warm_up(repo, session, urls[0])  # imports and caches: not per ref
        coords, index, offsets, lengths = columns(files, per_file)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        session.set_virtual_refs("v", coords, urls, offsets, lengths, location_index=index)
        set_s = time.perf_counter() - started
        del coords, index, offsets
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        split = repo.config.manifest_split_refs
        base_memory, base_disk = stored_baseline(lengths, split)
        started = time.perf_counter()
        session.commit("10M virtual refs")
        commit_s = time.perf_counter() - started
        manifests = list((root / "repo.vrepo" / "manifests").iterdir())
        disk = sum(p.stat().st_size for p in manifests)
        read = repo.readonly_session("main")
        snapshot = run_sync(read._ensure_content()).base
        node = next(x for x in snapshot.nodes if x.path == "/v")
        loaded = [Manifest.decode(p.read_bytes(), what=p.name) for p in manifests]
        column_bytes = sum(m.nbytes_in_memory for m in loaded)
        assert sum(len(m) for m in loaded) == n == sum(m.count for m in node.manifests)
        array = zarr.open_array(read.store, path="v", mode="r")
        sample = array[[0, files // 2, files - 1], : CHUNK * 3]
        assert sample.shape == (3, CHUNK * 3) and not sample.any()
    results = {
        "refs": n,
        "files": files,
        "session_bytes_per_ref": held / n,
        "session_peak_bytes_per_ref": peak / n,
        "loaded_bytes_per_ref": column_bytes / n,
        "disk_bytes_per_ref": disk / n,
        "manifest_files": len(manifests),
        "stored_baseline_memory_per_ref": base_memory,
        "stored_baseline_disk_per_ref": base_disk,
        "set_virtual_refs_s": set_s,
        "commit_s": commit_s,
    }
    checks = {
        # the session's fixed costs (the source table's strings, tasks: tens of KiB) count too;
        # at 10M refs they are a few thousandths of a byte per ref, hence the 0.05
        "memory": max(results["session_bytes_per_ref"], results["loaded_bytes_per_ref"]) <= 24.05,
        "disk": results["disk_bytes_per_ref"] <= 8,
    }
    print_table(
        ["measure", "virtual", "stored refs", "target", ""],
        [
            [
                "memory per ref: session",
                f"{results['session_bytes_per_ref']:.1f} B",
                f"{base_memory:.1f} B",
                "<= 24 B",
                verdict(checks["memory"]),
            ],
            ["  peak while setting", f"{results['session_peak_bytes_per_ref']:.1f} B", "", "", ""],
            ["memory per ref: pieces loaded", f"{column_bytes / n:.1f} B", "", "<= 24 B", ""],
            [
                "disk per ref (manifests)",
                f"{results['disk_bytes_per_ref']:.2f} B",
                f"{base_disk:.2f} B",
                "<= 8 B",
                verdict(checks["disk"]),
            ],
            ["manifest pieces", str(len(manifests)), "", "", ""],
            ["set_virtual_refs", fmt_s(set_s), "", "", ""],
            ["commit", fmt_s(commit_s), "", "", ""],
        ],
    )
    print(f"results: {save_results('virtual_refs', results)}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("VREPO_PROGRESS", "false")
    raise SystemExit(main())
