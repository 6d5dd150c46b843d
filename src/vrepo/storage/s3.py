"""Storage in an S3 bucket (AWS or any S3-compatible server) through s3fs.

Key ``k`` is the object ``s3://bucket/prefix/k``. Atomic create is a conditional PutObject
(``If-None-Match: *``, see `_s3_create`); every other call is a single plain S3 request. s3fs
and botocore are imported only when a client is first needed, so ``import vrepo`` does not
pay for them.

Each storage object keeps one s3fs client per event loop (see `_s3_clients`). Pickling keeps
the configuration, a random origin token, and (with ``scatter_credentials``) the credentials
a provider returned, so workers need not call it. The copies unpickled in one process share
their clients and credentials by origin.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from vrepo.errors import ObjectNotFoundError, StorageError
from vrepo.storage._keys import validate_byte_range, validate_key, validate_prefix
from vrepo.storage._s3_clients import Clients, LoopClient, clients_of, data_loader, new_filesystem
from vrepo.storage._s3_config import S3Config
from vrepo.storage._s3_create import create_if_absent
from vrepo.storage._s3_errors import (
    error_code,
    request_errors,
    retryable_read_errors,
    storage_error,
)
from vrepo.storage._s3_listing import list_keys
from vrepo.storage.base import Storage
from vrepo.storage.credentials import CredentialsSource, S3Credentials, shared_cache

if TYPE_CHECKING:
    from s3fs import S3FileSystem

_READ_ATTEMPTS = 3  # a GET whose body breaks off is repeated (reads are idempotent)
_MAX_OFFSET = 2**62  # byte offsets in a Range header are capped here (S3's limit is 5 TiB)
_data_loader = data_loader  # importable from here, as before (test workers warm up with it)


class S3Storage(Storage):
    """Objects in an S3 bucket below an optional prefix; safe for many processes.

    ``put_if_absent`` needs a server that honours ``If-None-Match: *`` on PutObject (AWS S3
    since 2024, recent SeaweedFS, moto; see docs/storage.md). A successful PUT is
    durable, so `make_durable` does nothing.

    ``credentials`` is `S3Credentials`, a picklable zero-argument callable returning them (a
    provider: called lazily, and again only near their expiry), or None for botocore's
    default chain. With a provider and ``scatter_credentials=True`` (the default; None reads
    the ``storage.s3.scatter-credentials`` setting), pickles
    carry the credentials it last returned, so processes that unpickle the storage (workers
    receiving a fork) use them and call the provider only when they near expiry, once per
    process. With ``scatter_credentials=False`` pickles carry only the provider, and each
    process calls it on first use: for workers that get credentials of their own (instance
    roles) and to keep secrets off the wire. Static credentials always travel in pickles.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        anonymous: bool = False,
        credentials: CredentialsSource = None,
        scatter_credentials: bool | None = None,
    ) -> None:
        self._config = S3Config.checked(
            bucket, prefix, endpoint_url, region, anonymous, credentials, scatter_credentials
        )
        # Names this object and its unpickled copies, which share credentials and clients in
        # each process. Not part of equality: storages made alike are equal, whatever origin.
        self._origin = secrets.token_hex(16)
        self._credentials = shared_cache(self._origin, self._config.credentials)
        self._shared = Clients()  # its own: pickles are copies; they share theirs

    # --- identity and pickling ---------------------------------------------------------

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._config.bucket

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket, without leading or trailing '/' ('' for none)."""
        return self._config.root

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint, or None for AWS."""
        return self._config.endpoint_url

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``, followed by the endpoint host if it is not AWS."""
        return self._config.url

    @property
    def _endpoint(self) -> str:
        """The endpoint for messages: scheme, host and port only (never user info)."""
        return self._config.endpoint

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._config == self._config  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._config))

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {"config": self._config, "origin": self._origin}
        if self._config.scatter_credentials and callable(self._config.credentials):
            fresh = self._credentials.fresh  # what a provider returned; None if near expiry
            if fresh is not None:
                state["credentials"] = fresh
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config = state["config"]
        self._origin = state["origin"]
        self._credentials = shared_cache(
            self._origin, self._config.credentials, state.get("credentials")
        )
        self._shared = clients_of(self._origin)

    async def _prepare_for_workers(self) -> None:
        """Fetch a provider's credentials now, so pickles sent to workers carry them."""
        if self._config.scatter_credentials:
            await self._credentials.get()

    # --- clients -----------------------------------------------------------------------

    @property
    def _clients(self) -> dict[asyncio.AbstractEventLoop, LoopClient]:
        return self._shared.by_loop

    async def _filesystem(self) -> S3FileSystem:
        """This loop's s3fs filesystem with a live client, created on first use.

        Replaced when the credentials were refreshed (see `Clients.filesystem`).
        """
        credentials = await self._credentials.get()
        return await self._shared.filesystem(credentials, self._new_filesystem)

    def _new_filesystem(self, credentials: S3Credentials | None) -> S3FileSystem:
        """A new s3fs filesystem for this storage's configuration and ``credentials``."""
        config = self._config
        return new_filesystem(
            credentials,
            anonymous=config.anonymous,
            endpoint_url=config.endpoint_url,
            region=config.region,
        )

    async def close(self) -> None:
        """Close the clients of the running event loop (others close when their loop ends).

        Optional: a later call simply opens a new client. Copies of a storage unpickled in one
        process share their clients, so this closes them for all those copies.
        """
        await self._shared.close_loop()

    async def _call(self, method: str, **kwargs: Any) -> Any:
        """One S3 request on this bucket through s3fs (which retries transient failures)."""
        fs = await self._filesystem()
        return await fs._call_s3(method, Bucket=self._config.bucket, **kwargs)

    # --- paths and errors ----------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        return f"{self._config.root}/{key}" if self._config.root else key

    def _error(self, exc: BaseException, doing: str, key: str) -> StorageError:
        """A `StorageError` for a failed request, saying what to check."""
        return storage_error(self, exc, doing, key)

    # --- async interface ---------------------------------------------------------------

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The object, or bytes ``[start, end)`` of it (one ranged GET, clipped at the end)."""
        path = self._path(key)
        byte_range = validate_byte_range(byte_range)
        extra: dict[str, str] = {}
        if byte_range is not None:
            # No object is that large, and servers parse the header's offsets as 64-bit ints;
            # the server clips the rest, and answers only with the bytes there are.
            start, end = min(byte_range[0], _MAX_OFFSET), min(byte_range[1], _MAX_OFFSET)
            byte_range = start, end
            # An empty range still asks for one byte, so a missing object is reported.
            extra["Range"] = f"bytes={start}-{max(end, start + 1) - 1}"
        for attempt in range(_READ_ATTEMPTS):
            try:
                response = await self._call("get_object", Key=path, **extra)
                async with response["Body"] as body:
                    data = await body.read()
                break
            except request_errors() as exc:
                if error_code(exc) == "InvalidRange":  # the range starts past the end
                    return b""
                if isinstance(exc, retryable_read_errors()) and attempt + 1 < _READ_ATTEMPTS:
                    continue  # the body broke off; reads are idempotent
                raise self._error(exc, "reading", key) from exc
        if byte_range is None:
            return data
        if "ContentRange" not in response:  # the server ignored the Range header
            return data[byte_range[0] : byte_range[1]]
        return data[: byte_range[1] - byte_range[0]]

    async def put(self, key: str, data: bytes | memoryview) -> None:
        """One PutObject: readers see the old or the new object, never a mix."""
        path = self._path(key)
        try:
            await self._call("put_object", Key=path, Body=bytes(data))
        except request_errors() as exc:
            raise self._error(exc, "writing", key) from exc

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """PutObject with ``If-None-Match: *``: True if this call created the object.

        412 means another writer has it: False. Conflicts are retried, and requests of
        unknown outcome resolved by reading the object back (see `create_if_absent`).
        """
        return await create_if_absent(self, key, self._path(key), bytes(data))

    async def _conditional_put(self, fs: S3FileSystem, path: str, body: bytes) -> None:
        """PutObject with ``If-None-Match: *``, straight on the client.

        Not through s3fs's retry wrapper: it repeats requests that broke off, and a 412
        answering such a repeat could be refusing our own first, applied, request.
        """
        await fs.s3.put_object(Bucket=self._config.bucket, Key=path, Body=body, IfNoneMatch="*")

    async def delete(self, key: str) -> None:
        """DeleteObject; S3 does not report missing keys, so neither do we."""
        path = self._path(key)
        try:
            await self._call("delete_object", Key=path)
        except request_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return
            raise self._error(exc, "deleting", key) from exc

    async def exists(self, key: str) -> bool:
        """HeadObject: whether an object with this key exists."""
        path = self._path(key)
        try:
            await self._call("head_object", Key=path)
        except request_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return False
            raise self._error(exc, "checking", key) from exc
        return True

    async def size(self, key: str) -> int:
        """HeadObject: the object's ContentLength."""
        try:
            response = await self._call("head_object", Key=self._path(key))
        except request_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise ObjectNotFoundError(key) from None
            raise self._error(exc, "sizing", key) from exc
        return int(response["ContentLength"])

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """ListObjectsV2 pages, in the server's (lexicographic) order (see `list_keys`).

        With ``limit`` only as many keys as wanted are asked for; objects whose names are not
        valid keys (such as folder markers ending in '/') are skipped.
        """
        return await self._list(prefix, limit, None)

    async def list_after(
        self, prefix: str, start_after: str, *, limit: int | None = None
    ) -> list[str]:
        """As `list`, from the first key after ``start_after`` (ListObjectsV2 ``StartAfter``):
        the keys before it are never sent."""
        return await self._list(prefix, limit, start_after)

    async def _list(self, prefix: str, limit: int | None, start_after: str | None) -> list[str]:
        validate_prefix(prefix)

        async def list_page(**request: Any) -> Any:
            try:
                return await self._call("list_objects_v2", **request)
            except request_errors() as exc:
                raise self._error(exc, "listing", prefix) from exc

        return await list_keys(list_page, self._config.root, prefix, limit, start_after)

    async def make_durable(self, keys: Iterable[str]) -> None:
        """Nothing to do: a PUT that succeeded is durable. Only validates the keys."""
        for key in keys:
            validate_key(key)
