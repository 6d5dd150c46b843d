"""Storage in an S3 bucket (AWS or any S3-compatible server) through s3fs.

Key ``k`` is the object ``s3://bucket/prefix/k``. Atomic create is a conditional PutObject
(``If-None-Match: *``); every other call is a single plain S3 request. s3fs and botocore are
imported only when a client is first needed, so ``import vrepo`` does not pay for them.

s3fs's async filesystem is bound to the event loop it was created in, and vrepo runs storage
calls on several loops (its background loop, zarr's loop, callers' loops), so each storage
object keeps one client per running loop. Pickling keeps the configuration, a random origin
token, and (with ``scatter_credentials``) the credentials a provider returned, so workers need
not call it. The copies unpickled in one process share their clients and credentials by origin:
a worker unpickles a copy per task, and a new client costs tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import os
import random
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vrepo import config as _settings
from vrepo.errors import InvalidArgumentError, InvalidKeyError, ObjectNotFoundError, StorageError
from vrepo.storage._keys import (
    first_keys,
    is_valid_key,
    validate_byte_range,
    validate_key,
    validate_prefix,
)
from vrepo.storage._shared import SharedRegistry
from vrepo.storage.base import Storage
from vrepo.storage.credentials import (
    CredentialsSource,
    S3Credentials,
    check_credentials_source,
    shared_cache,
)

if TYPE_CHECKING:
    from s3fs import S3FileSystem

_MAX_PAGE = 1000  # ListObjectsV2 returns at most this many keys per request
_READ_ATTEMPTS = 3  # a GET whose body breaks off is repeated (reads are idempotent)
_CREATE_ATTEMPTS = 6  # conditional PUTs per put_if_absent before giving up
_CONFLICT_BACKOFF = 0.05  # seconds; doubled per attempt, jittered
_CLOSE_DELAY = 300.0  # seconds an outdated client stays open for requests still using it
_SHARED_CLIENTS = 8  # client sets of unpickled copies nobody holds, kept per process
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)


@dataclass(frozen=True, repr=False)
class _Config:
    """Everything that identifies an S3 storage; what it pickles as and compares by."""

    bucket: str
    root: str
    endpoint_url: str | None
    region: str | None
    anonymous: bool
    credentials: CredentialsSource
    scatter_credentials: bool


class _LoopClient:
    """The s3fs filesystem of one event loop, and those it replaced, still to be closed."""

    __slots__ = ("credentials", "fs", "retired")

    def __init__(self, fs: S3FileSystem, credentials: S3Credentials | None) -> None:
        self.fs = fs
        self.credentials = credentials
        self.retired: list[tuple[float, S3FileSystem]] = []

    def replace(self, fs: S3FileSystem, credentials: S3Credentials | None) -> None:
        """Use ``fs`` from now on; the old one is kept for requests still running on it."""
        self.retired.append((time.monotonic(), self.fs))
        self.fs, self.credentials = fs, credentials

    def take_retired(self, older_than: float = 0.0) -> list[S3FileSystem]:
        """Remove and return the replaced filesystems retired at least ``older_than`` ago."""
        cutoff = time.monotonic() - older_than
        due = [fs for since, fs in self.retired if since <= cutoff]
        self.retired = [(since, fs) for since, fs in self.retired if since > cutoff]
        return due

    def everything(self) -> list[S3FileSystem]:
        return [self.fs, *(fs for _, fs in self.retired)]


class _Clients:
    """One `_LoopClient` per event loop, for one storage object or its unpickled copies.

    Closed when garbage collected (or at exit), on their loops where those still run.
    """

    __slots__ = ("__weakref__", "by_loop", "lock", "pid")

    def __init__(self) -> None:
        self.by_loop: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self.lock = threading.Lock()
        self.pid = os.getpid()
        weakref.finalize(self, _close_all, self.by_loop)
        _all_clients.add(self)


_all_clients: weakref.WeakSet[_Clients] = weakref.WeakSet()
_shared_clients: SharedRegistry[_Clients] = SharedRegistry(_SHARED_CLIENTS)


class _Outcome:
    """Result of one conditional PUT attempt (see `S3Storage.put_if_absent`)."""

    CREATED = "created"
    EXISTS = "exists"
    CONFLICT = "conflict"  # 409: a concurrent conditional write is in progress; try again
    UNKNOWN = "unknown"  # the request may or may not have been applied: read back


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
        _check_bucket(bucket)
        try:
            validate_prefix(prefix)
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"invalid S3 prefix {prefix!r} ({exc})") from None
        if endpoint_url is not None and urlsplit(endpoint_url).scheme not in ("http", "https"):
            raise InvalidArgumentError(
                f"endpoint_url must be an http:// or https:// URL, got {endpoint_url!r}"
            )
        credentials = check_credentials_source(credentials)
        if anonymous and credentials is not None:
            raise InvalidArgumentError("pass either anonymous=True or credentials, not both")
        if scatter_credentials is None:
            scatter_credentials = _settings.get("storage.s3.scatter-credentials")
        if not isinstance(scatter_credentials, bool):
            raise InvalidArgumentError(
                f"scatter_credentials must be True or False, got {scatter_credentials!r}"
            )
        self._config = _Config(
            bucket,
            prefix.strip("/"),
            endpoint_url,
            region,
            bool(anonymous),
            credentials,
            scatter_credentials,
        )
        # Names this object and its unpickled copies, which share credentials and clients in
        # each process. Not part of equality: storages made alike are equal, whatever origin.
        self._origin = secrets.token_hex(16)
        self._credentials = shared_cache(self._origin, credentials)
        self._shared = _Clients()  # its own: pickles are copies; they share theirs

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
        config = self._config
        url = f"s3://{config.bucket}/{config.root}" if config.root else f"s3://{config.bucket}"
        return f"{url} (endpoint {self._endpoint})" if config.endpoint_url else url

    @property
    def _endpoint(self) -> str:
        """The endpoint for messages: scheme, host and port only (never user info)."""
        if self._config.endpoint_url is None:
            region = self._config.region
            return f"AWS S3 ({region})" if region else "AWS S3"
        parts = urlsplit(self._config.endpoint_url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")

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
        self._shared = _shared_clients.get(self._origin, _Clients)

    async def _prepare_for_workers(self) -> None:
        """Fetch a provider's credentials now, so pickles sent to workers carry them."""
        if self._config.scatter_credentials:
            await self._credentials.get()

    # --- clients -----------------------------------------------------------------------

    @property
    def _clients(self) -> dict[asyncio.AbstractEventLoop, _LoopClient]:
        return self._shared.by_loop

    async def _filesystem(self) -> S3FileSystem:
        """This loop's s3fs filesystem with a live client, created on first use.

        A new one replaces the old when the credentials were refreshed; the old one is closed
        `_CLOSE_DELAY` later, when requests still using it are done. Clients of loops that
        have closed are dropped.
        """
        loop = asyncio.get_running_loop()
        credentials = await self._credentials.get()
        shared = self._shared
        with shared.lock:
            if shared.pid != os.getpid():  # forked: the parent's connections are not ours
                shared.by_loop.clear()
                shared.pid = os.getpid()
            for closed in [other for other in shared.by_loop if other.is_closed()]:
                for fs in shared.by_loop.pop(closed).everything():
                    _abandon(fs)
            entry = shared.by_loop.get(loop)
            if entry is None:
                entry = _LoopClient(self._new_filesystem(credentials), credentials)
                shared.by_loop[loop] = entry
            elif entry.credentials != credentials:  # refreshed (copies carry equal ones)
                entry.replace(self._new_filesystem(credentials), credentials)
            retired = entry.take_retired(_CLOSE_DELAY) if entry.retired else []
        for fs in retired:
            await _close_filesystem(fs)
        await entry.fs.set_session()  # cheap once the client exists
        return entry.fs

    def _new_filesystem(self, credentials: S3Credentials | None) -> S3FileSystem:
        try:
            import s3fs
        except ImportError as exc:
            raise StorageError(
                "S3 storage needs s3fs: install it with `pip install 'vrepo[s3]'`"
            ) from exc
        options: dict[str, Any] = {
            "session": _new_session(),
            "asynchronous": True,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "anon": self._config.anonymous,
            "endpoint_url": self._config.endpoint_url,
        }
        if self._config.region:
            options["client_kwargs"] = {"region_name": self._config.region}
        if credentials is not None:
            options["key"] = credentials.access_key_id
            options["secret"] = credentials.secret_access_key
            options["token"] = credentials.session_token
        return s3fs.S3FileSystem(**options)

    async def close(self) -> None:
        """Close the clients of the running event loop (others close when their loop ends).

        Optional: a later call simply opens a new client. Copies of a storage unpickled in one
        process share their clients, so this closes them for all those copies.
        """
        loop = asyncio.get_running_loop()
        with self._shared.lock:
            entry = self._shared.by_loop.pop(loop, None)
        for fs in entry.everything() if entry is not None else ():
            await _close_filesystem(fs)

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
        code = _error_code(exc)
        if code in ("NoSuchKey", "404"):
            return ObjectNotFoundError(key)
        where = f"{doing} {key!r} in {self.url} failed"
        bucket = self._config.bucket
        if code == "NoSuchBucket":
            return StorageError(
                f"{where}: bucket {bucket!r} does not exist at {self._endpoint}; create the "
                f"bucket first (for example `aws s3 mb s3://{bucket}`), or check its name"
            )
        if code == "NotImplemented" or _status(exc) == 501:
            return StorageError(
                f"{where}: {self._endpoint} does not implement this request ({exc}); vrepo "
                "needs an S3 server that supports conditional writes (If-None-Match on "
                "PutObject) to commit safely"
            )
        if code in _ACCESS_CODES or _status(exc) == 403:
            return StorageError(
                f"{where}: {self._endpoint} denied access ({code}); check the credentials "
                f"(access key id, secret, session token, expiry) and that they may access "
                f"bucket {bucket!r}"
            )
        if isinstance(exc, _no_credentials_errors()):
            return StorageError(
                f"{where}: no S3 credentials found; pass credentials=S3Credentials(...), set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use anonymous=True for a "
                "public bucket"
            )
        if isinstance(exc, _transport_errors()):
            return StorageError(
                f"{where}: could not talk to {self._endpoint} ({type(exc).__name__}: {exc}); "
                "check that the endpoint URL is right and the server is reachable"
            )
        return StorageError(
            f"{where}: {type(exc).__name__}: {exc}; check the credentials, that bucket "
            f"{bucket!r} exists, and that {self._endpoint} is reachable"
        )

    # --- async interface ---------------------------------------------------------------

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The object, or bytes ``[start, end)`` of it (one ranged GET, clipped at the end)."""
        path = self._path(key)
        validate_byte_range(byte_range)
        extra: dict[str, str] = {}
        if byte_range is not None:
            start, end = byte_range
            # An empty range still asks for one byte, so a missing object is reported.
            extra["Range"] = f"bytes={start}-{max(end, start + 1) - 1}"
        for attempt in range(_READ_ATTEMPTS):
            try:
                response = await self._call("get_object", Key=path, **extra)
                async with response["Body"] as body:
                    data = await body.read()
                break
            except _request_errors() as exc:
                if _error_code(exc) == "InvalidRange":  # the range starts past the end
                    return b""
                if isinstance(exc, _retryable_read_errors()) and attempt + 1 < _READ_ATTEMPTS:
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
        except _request_errors() as exc:
            raise self._error(exc, "writing", key) from exc

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """PutObject with ``If-None-Match: *``: True if this call created the object.

        412 means another writer has it: False. 409 (a concurrent conditional write) is
        retried with jittered backoff. When a request fails in a way that leaves unknown
        whether it was applied (timeout, broken connection, 5xx, or a 412 answering a
        retried request), the object is read back: our bytes mean we created it, other
        bytes mean someone else did, no object means we try again.
        """
        path = self._path(key)
        body = bytes(data)
        for attempt in range(_CREATE_ATTEMPTS):
            outcome = await self._try_create(path, body, key)
            if outcome == _Outcome.CREATED:
                return True
            if outcome == _Outcome.EXISTS:
                return False
            if outcome == _Outcome.CONFLICT:
                await asyncio.sleep(_CONFLICT_BACKOFF * 2**attempt * random.uniform(0.5, 1.5))
                continue
            won = await self._created_by_us(path, body, key)
            if won is not None:
                return won
        won = await self._created_by_us(path, body, key)
        if won is not None:
            return won
        raise StorageError(
            f"creating {key!r} in {self.url} failed: {_CREATE_ATTEMPTS} conditional PUTs "
            f"to {self._endpoint} were neither applied nor refused; check that the endpoint "
            "is healthy and try again"
        )

    async def _try_create(self, path: str, body: bytes, key: str) -> str:
        """One conditional PUT, classified; raises only for definite failures (403, ...)."""
        fs = await self._filesystem()
        try:
            await self._conditional_put(fs, path, body)
        except _request_errors() as exc:
            status, code = _status(exc), _error_code(exc)
            retried = _retry_attempts(exc) > 0  # botocore repeated the request itself
            if status == 412 or code == "PreconditionFailed":
                return _Outcome.UNKNOWN if retried else _Outcome.EXISTS
            if status == 409 or code == "ConditionalRequestConflict":
                return _Outcome.UNKNOWN if retried else _Outcome.CONFLICT
            if status == 501 or code == "NotImplemented":  # no conditional writes here
                raise self._error(exc, "creating", key) from exc
            if (status is not None and status >= 500) or isinstance(exc, _transport_errors()):
                return _Outcome.UNKNOWN
            raise self._error(exc, "creating", key) from exc
        return _Outcome.CREATED

    async def _conditional_put(self, fs: S3FileSystem, path: str, body: bytes) -> None:
        """PutObject with ``If-None-Match: *``, straight on the client.

        Not through s3fs's retry wrapper: it repeats requests that broke off, and a 412
        answering such a repeat could be refusing our own first, applied, request.
        """
        await fs.s3.put_object(Bucket=self._config.bucket, Key=path, Body=body, IfNoneMatch="*")

    async def _created_by_us(self, path: str, body: bytes, key: str) -> bool | None:
        """Resolve an unknown outcome: True/False if the object exists, None if it does not."""
        try:
            return await self.get(key) == body
        except ObjectNotFoundError:
            return None
        except StorageError as exc:
            raise StorageError(
                f"creating {key!r} in {self.url}: the outcome of the request is unknown and "
                f"reading the object back failed: {exc}"
            ) from exc

    async def delete(self, key: str) -> None:
        """DeleteObject; S3 does not report missing keys, so neither do we."""
        path = self._path(key)
        try:
            await self._call("delete_object", Key=path)
        except _request_errors() as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return
            raise self._error(exc, "deleting", key) from exc

    async def exists(self, key: str) -> bool:
        """HeadObject: whether an object with this key exists."""
        path = self._path(key)
        try:
            await self._call("head_object", Key=path)
        except _request_errors() as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return False
            raise self._error(exc, "checking", key) from exc
        return True

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """ListObjectsV2 pages, in the server's (lexicographic) order.

        With ``limit`` the request asks for only that many keys (``MaxKeys``), so the first
        key of a prefix costs one request. Objects whose names are not valid keys (such as
        folder markers ending in '/') are skipped.
        """
        validate_prefix(prefix)
        if limit is not None and limit <= 0:
            return first_keys([], limit)  # raises for a negative limit
        root = f"{self._config.root}/" if self._config.root else ""
        request: dict[str, Any] = {"Prefix": root + prefix}
        keys: list[str] = []
        while True:
            wanted = _MAX_PAGE if limit is None else limit - len(keys)
            request["MaxKeys"] = min(wanted, _MAX_PAGE)
            try:
                page = await self._call("list_objects_v2", **request)
            except _request_errors() as exc:
                raise self._error(exc, "listing", prefix) from exc
            keys.extend(
                key
                for key in (item["Key"][len(root) :] for item in page.get("Contents", ()))
                if is_valid_key(key)
            )
            if not page.get("IsTruncated") or (limit is not None and len(keys) >= limit):
                return first_keys(keys, limit)
            request["ContinuationToken"] = page["NextContinuationToken"]

    async def make_durable(self, keys: Iterable[str]) -> None:
        """Nothing to do: a PUT that succeeded is durable. Only validates the keys."""
        for key in keys:
            validate_key(key)


# --- helpers ---------------------------------------------------------------------------


def _check_bucket(bucket: object) -> None:
    if (
        not isinstance(bucket, str)
        or not bucket
        or "/" in bucket
        or any(c.isspace() or not c.isprintable() for c in bucket)
    ):
        raise InvalidArgumentError(
            f"invalid S3 bucket name {bucket!r}: expected a bucket name such as 'my-data' "
            "(no '/', no whitespace); put the path inside the bucket in `prefix`"
        )


def _new_session() -> Any:
    """An aiobotocore session sharing the process's service-model loader.

    Sessions are not shared (their credential caches may be bound to an event loop), but
    loading S3's service model costs more than everything else in creating a client.
    """
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component("data_loader", _data_loader())
    return session


@functools.cache
def _data_loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()


def _botocore_exceptions() -> Any:
    import botocore.exceptions

    return botocore.exceptions


@functools.cache
def _no_credentials_errors() -> tuple[type[BaseException], ...]:
    exceptions = _botocore_exceptions()
    return (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)


@functools.cache
def _transport_errors() -> tuple[type[BaseException], ...]:
    """Failures of the connection itself, after which a request may or may not have applied."""
    import aiohttp
    from s3fs.core import S3_RETRYABLE_ERRORS

    exceptions = _botocore_exceptions()
    return (
        *S3_RETRYABLE_ERRORS,
        exceptions.ConnectionError,
        aiohttp.ClientError,
        ConnectionError,
        TimeoutError,
    )


@functools.cache
def _retryable_read_errors() -> tuple[type[BaseException], ...]:
    """Errors while reading a response body: the GET is simply repeated."""
    from s3fs.core import S3_RETRYABLE_ERRORS

    return S3_RETRYABLE_ERRORS


@functools.cache
def _request_errors() -> tuple[type[BaseException], ...]:
    """Everything a request can fail with (as raised by botocore, aiohttp, or s3fs)."""
    exceptions = _botocore_exceptions()
    return (OSError, exceptions.BotoCoreError, exceptions.ClientError, *_transport_errors())


def _client_error(exc: BaseException) -> Any:
    """The botocore ClientError behind ``exc`` (s3fs wraps it in an OSError), or None."""
    seen = exc
    for _ in range(3):
        if getattr(seen, "response", None) is not None:
            return seen
        if seen.__cause__ is None:
            return None
        seen = seen.__cause__
    return None


def _error_code(exc: BaseException) -> str | None:
    error = _client_error(exc)
    return None if error is None else error.response.get("Error", {}).get("Code")


def _status(exc: BaseException) -> int | None:
    error = _client_error(exc)
    return (
        None if error is None else error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    )


def _retry_attempts(exc: BaseException) -> int:
    error = _client_error(exc)
    if error is None:
        return 0
    return int(error.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0)


async def _close_filesystem(fs: S3FileSystem) -> None:
    client = getattr(fs, "_s3", None)
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()


def _abandon(fs: S3FileSystem) -> None:
    """Release a client whose event loop has closed (it can no longer be awaited).

    Marks its connection pools closed so aiohttp does not warn about an unclosed session;
    the sockets themselves are freed with their loop's transports.
    """
    http = getattr(getattr(getattr(fs, "_s3", None), "_endpoint", None), "http_session", None)
    for session in list((getattr(http, "_sessions", None) or {}).values()):
        connector = getattr(session, "connector", None)
        if connector is not None:
            with contextlib.suppress(Exception):
                connector._close()


def _close_all(clients: dict[asyncio.AbstractEventLoop, _LoopClient]) -> list[Any]:
    """Finalizer of `_Clients`: close each client on its loop, or abandon it.

    Returns the futures of the closes scheduled on other loops.
    """
    scheduled = []
    for loop, entry in list(clients.items()):
        for fs in entry.everything():
            if loop.is_running() and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    scheduled.append(asyncio.run_coroutine_threadsafe(_close_filesystem(fs), loop))
                    continue
            _abandon(fs)
    clients.clear()
    return scheduled


@atexit.register
def _close_all_at_exit() -> None:
    """Close the clients still open at exit, while the loops (in daemon threads) still run.

    Shared clients are kept past their storage objects (see `_shared_clients`); closes merely
    scheduled at exit would never run, leaving aiohttp to warn about unclosed sessions.
    """
    scheduled = []
    for clients in list(_all_clients):
        if clients.pid != os.getpid():  # inherited through os.fork: their loops do not run here
            for entry in clients.by_loop.values():
                for fs in entry.everything():
                    _abandon(fs)
            clients.by_loop.clear()
        scheduled.extend(_close_all(clients.by_loop))
    concurrent.futures.wait(scheduled, timeout=2.0)
