"""Processes that used S3 storage exit quietly: their s3fs/aiobotocore clients are closed on
the event loops that own them before those loops stop, in the writing process and in dask
workers alike. Each scenario runs as a program (tests/s3_exit_scenario.py) whose stderr,
workers' included, must not show what unclosed clients make asyncio and aiohttp print."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

import vrepo
from s3_servers import S3Server

SCENARIO = Path(__file__).with_name("s3_exit_scenario.py")
UNCLEAN = ["Task was destroyed but it is pending", "Unclosed client session", "was never awaited"]


def _run(server: S3Server, mode: str) -> tuple[str, vrepo.S3Storage]:
    """Run the scenario on a fresh bucket: its stderr, and the storage it wrote to."""
    bucket, prefix = server.pool.take(), f"exit-{uuid.uuid4().hex[:8]}"
    credentials = server.credentials
    done = subprocess.run(
        [
            sys.executable,
            str(SCENARIO),
            server.endpoint_url,
            credentials.access_key_id,
            credentials.secret_access_key,
            bucket,
            prefix,
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    storage = server.storage(bucket, prefix)
    repo = vrepo.Repository.open(storage)
    assert repo.lookup_branch("main") == done.stdout.split()[-1]  # it did write
    x = zarr.open_array(repo.readonly_session().store, path="x", mode="r")
    np.testing.assert_array_equal(x[:], np.arange(x.size, dtype="f8").reshape(x.shape))
    return done.stderr, storage


@pytest.mark.slow
def test_dask_workers_that_wrote_to_s3_exit_quietly(moto_server):
    stderr, _ = _run(moto_server, "cluster")
    found = [message for message in UNCLEAN if message in stderr]
    assert not found, stderr


def test_a_process_that_wrote_to_s3_exits_quietly(moto_server):
    stderr, _ = _run(moto_server, "plain")
    found = [message for message in UNCLEAN if message in stderr]
    assert not found, stderr
