"""What an S3 request failed with, and the `StorageError` saying what to check.

botocore, aiohttp and s3fs raise a handful of exception families, and s3fs wraps botocore's
``ClientError`` in an ``OSError``. The tuples below name them; they are built on first use,
so ``import vrepo`` does not import botocore.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

from vrepo.errors import ObjectNotFoundError, StorageError

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


class Described(Protocol):
    """How a storage names itself in error messages (`S3Storage` does so)."""

    @property
    def bucket(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def _endpoint(self) -> str: ...


def storage_error(storage: Described, exc: BaseException, doing: str, key: str) -> StorageError:
    """A `StorageError` for a failed request on ``storage``, saying what to check."""
    code = error_code(exc)
    if code in ("NoSuchKey", "404"):
        return ObjectNotFoundError(key)
    where = f"{doing} {key!r} in {storage.url} failed"
    bucket = storage.bucket
    if code == "NoSuchBucket":
        return StorageError(
            f"{where}: bucket {bucket!r} does not exist at {storage._endpoint}; create the "
            f"bucket first (for example `aws s3 mb s3://{bucket}`), or check its name"
        )
    if code == "NotImplemented" or status(exc) == 501:
        return StorageError(
            f"{where}: {storage._endpoint} does not implement this request ({exc}); vrepo "
            "needs an S3 server that supports conditional writes (If-None-Match on "
            "PutObject) to commit safely"
        )
    if code in _ACCESS_CODES or status(exc) == 403:
        return StorageError(
            f"{where}: {storage._endpoint} denied access ({code}); check the credentials "
            f"(access key id, secret, session token, expiry) and that they may access "
            f"bucket {bucket!r}"
        )
    if isinstance(exc, _no_credentials_errors()):
        return StorageError.advised(
            f"{where}: no S3 credentials found",
            "pass credentials=S3Credentials(...), set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or use anonymous=True for a public bucket",
            "s3-credentials",
        )
    if isinstance(exc, transport_errors()):
        return StorageError(
            f"{where}: could not talk to {storage._endpoint} ({type(exc).__name__}: {exc}); "
            "check that the endpoint URL is right and the server is reachable"
        )
    return StorageError(
        f"{where}: {type(exc).__name__}: {exc}; check the credentials, that bucket "
        f"{bucket!r} exists, and that {storage._endpoint} is reachable"
    )


# --- exception families ------------------------------------------------------------------


def _botocore_exceptions() -> Any:
    import botocore.exceptions

    return botocore.exceptions


@functools.cache
def _no_credentials_errors() -> tuple[type[BaseException], ...]:
    exceptions = _botocore_exceptions()
    return (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)


@functools.cache
def transport_errors() -> tuple[type[BaseException], ...]:
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
def retryable_read_errors() -> tuple[type[BaseException], ...]:
    """Errors while reading a response body: the GET is simply repeated."""
    from s3fs.core import S3_RETRYABLE_ERRORS

    return S3_RETRYABLE_ERRORS


@functools.cache
def request_errors() -> tuple[type[BaseException], ...]:
    """Everything a request can fail with (as raised by botocore, aiohttp, or s3fs)."""
    exceptions = _botocore_exceptions()
    return (OSError, exceptions.BotoCoreError, exceptions.ClientError, *transport_errors())


# --- what the server answered ------------------------------------------------------------


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


def error_code(exc: BaseException) -> str | None:
    """The S3 error code (``NoSuchKey``, ``AccessDenied``, ...), None without a response."""
    error = _client_error(exc)
    return None if error is None else error.response.get("Error", {}).get("Code")


def status(exc: BaseException) -> int | None:
    """The HTTP status of the response, None without one."""
    error = _client_error(exc)
    return (
        None if error is None else error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    )


def retry_attempts(exc: BaseException) -> int:
    """How many times botocore itself repeated the request before this answer."""
    error = _client_error(exc)
    if error is None:
        return 0
    return int(error.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0)
