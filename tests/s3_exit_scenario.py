"""A program that writes to S3 storage and exits, for tests/test_clean_shutdown.py.

    python s3_exit_scenario.py ENDPOINT KEY SECRET BUCKET PREFIX {plain,cluster}

``plain`` writes from this process (vrepo's loop commits, zarr's loop writes the chunks);
``cluster`` writes through a `distributed.LocalCluster` of three worker processes, closed
before exit. Prints the committed snapshot id. The test reads this program's stderr, which
includes the workers'.
"""

from __future__ import annotations

import sys

import numpy as np
import zarr

import vrepo

SHAPE, CHUNKS = (96, 64), (16, 64)


def main(endpoint: str, key: str, secret: str, bucket: str, prefix: str, mode: str) -> None:
    storage = vrepo.s3_storage(
        bucket,
        prefix,
        endpoint_url=endpoint,
        region="us-east-1",
        credentials=vrepo.S3Credentials(key, secret),
    )
    repo = vrepo.Repository.create(storage)
    session = repo.writable_session("main")
    target = zarr.create_array(session.store, name="x", shape=SHAPE, chunks=CHUNKS, dtype="f8")
    data = np.arange(np.prod(SHAPE), dtype="f8").reshape(SHAPE)
    if mode == "cluster":
        import dask.array as da
        from distributed import Client, LocalCluster

        from vrepo.dask import store

        cluster = LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        with cluster, Client(cluster):
            store(da.from_array(data, chunks=CHUNKS), target)
    else:
        target[:] = data
    print(session.commit(f"written by {mode}"), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
