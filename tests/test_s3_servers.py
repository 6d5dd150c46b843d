"""The test suite's own SeaweedFS helper: a server that stops answering is replaced, so one
stuck server cannot fail (or hang) every later S3 test of a run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import s3_servers
from s3_servers import start_seaweedfs


def test_a_stuck_seaweedfs_is_replaced_by_a_fresh_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(s3_servers, "_BATCH_TIMEOUT", 5.0)
    monkeypatch.setattr(s3_servers, "_POOL_BATCH", 2)
    with start_seaweedfs(tmp_path) as server:
        first = server.endpoint_url
        server.pool.take()
        server.pool.take()  # the batch is used up: the next take makes a new one
        weed = next(p for p in (tmp_path).iterdir() if p.name.startswith("attempt"))
        pids = [int(pid) for pid in os.popen(f"pgrep -f 'weed server.*{weed}'").read().split()]
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # alive, holding its ports, answering nothing
        bucket = server.pool.take()
        assert server.endpoint_url != first
        client = server.client()
        client.put_object(Bucket=bucket, Key="k", Body=b"v")
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
        for pid in pids:  # the stuck server was killed, not left running
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().split()[2] == "Z"
    assert "stopped answering" in capsys.readouterr().err
