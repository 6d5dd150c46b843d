"""S3 credentials: a masked value type and a lazily refreshed cache around a provider.

Credentials travel inside pickled storage objects (workers need them) but are never written
to storage, never logged, and never shown by ``repr``/``str``. Storage objects unpickled in
one process from the same original share one `CredentialsCache` (see `shared_cache`), so a
provider runs at most once per process each time its credentials near expiry.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vrepo.errors import InvalidArgumentError, StorageError
from vrepo.storage._shared import SharedRegistry

#: Provided credentials are fetched again when they expire within this margin.
REFRESH_MARGIN = timedelta(minutes=5)

_MASK = "****"

#: How many credential caches nobody holds a process keeps, most recently used first.
SHARED_CACHES = 64


@dataclass(frozen=True, repr=False)
class S3Credentials:
    """An S3 access key, its secret, and optionally a session token and its expiry time.

    ``repr`` and ``str`` show only the last four characters of the key id; the secret and
    token are never shown. ``expires_at`` must be timezone-aware (a naive time is ambiguous).
    """

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("access_key_id", "secret_access_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"S3Credentials.{name} must be a non-empty str")
        if self.session_token is not None and not isinstance(self.session_token, str):
            raise InvalidArgumentError("S3Credentials.session_token must be a str or None")
        if self.expires_at is not None and (
            not isinstance(self.expires_at, datetime) or self.expires_at.utcoffset() is None
        ):
            raise InvalidArgumentError(
                "S3Credentials.expires_at must be a timezone-aware datetime or None, e.g. "
                "datetime.now(timezone.utc) + timedelta(hours=1)"
            )

    @classmethod
    def from_env(cls) -> S3Credentials:
        """Read AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and (optional) AWS_SESSION_TOKEN."""
        key_id = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key_id or not secret:
            raise StorageError(
                "no S3 credentials in the environment: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)"
            )
        return cls(key_id, secret, os.environ.get("AWS_SESSION_TOKEN") or None)

    def expires_within(self, margin: timedelta, now: datetime | None = None) -> bool:
        """Whether these credentials expire less than ``margin`` from ``now`` (default: now)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (now or datetime.now(UTC)) < margin

    def __repr__(self) -> str:
        token = None if self.session_token is None else _MASK
        expiry = "" if self.expires_at is None else f", expires_at={self.expires_at.isoformat()}"
        return (
            f"S3Credentials(access_key_id='{_MASK}{self.access_key_id[-4:]}', "
            f"secret_access_key='{_MASK}', session_token={token!r}{expiry})"
        )

    __str__ = __repr__


CredentialsProvider = Callable[[], S3Credentials]
CredentialsSource = S3Credentials | CredentialsProvider | None


def check_credentials_source(source: object) -> CredentialsSource:
    """Return ``source`` if it is `S3Credentials`, a zero-argument callable, or None."""
    if source is None or isinstance(source, S3Credentials) or callable(source):
        return source  # type: ignore[return-value]
    raise InvalidArgumentError(
        f"credentials must be S3Credentials, a zero-argument callable returning S3Credentials, "
        f"or None (the default AWS credential chain), got {type(source).__name__}"
    )


class CredentialsCache:
    """The current credentials of storage objects (not pickled: one per process and origin).

    Static credentials are returned as they are. A provider is called on first use and again
    only when the credentials it returned expire within `REFRESH_MARGIN`; the call runs in a
    worker thread (providers may do network I/O) and at most one runs at a time, so however
    many threads and storage objects share the cache, each expiry costs one call.
    """

    def __init__(self, source: CredentialsSource) -> None:
        self._source = source
        self._current = source if isinstance(source, S3Credentials) else None
        self._lock = threading.Lock()

    def _stale(self) -> bool:
        return self._current is None or self._current.expires_within(REFRESH_MARGIN)

    @property
    def fresh(self) -> S3Credentials | None:
        """The credentials held now, if they do not expire within `REFRESH_MARGIN`; no call."""
        current = self._current
        return None if current is None or current.expires_within(REFRESH_MARGIN) else current

    def offer(self, credentials: S3Credentials) -> None:
        """Adopt ``credentials`` (fetched elsewhere) if they expire later than the held ones."""
        with self._lock:
            if self._current is None or _expiry(credentials) > _expiry(self._current):
                self._current = credentials

    async def get(self) -> S3Credentials | None:
        """The credentials to use now, fetching fresh ones from the provider if needed."""
        if self._source is None or isinstance(self._source, S3Credentials):
            return self._source
        if self._stale():
            await asyncio.to_thread(self._refresh)
        return self._current

    def _refresh(self) -> None:
        with self._lock:
            if not self._stale():  # another thread refreshed while we waited
                return
            try:
                credentials = self._source()  # type: ignore[misc]
            except Exception as exc:
                raise StorageError(
                    f"the S3 credentials provider {_name(self._source)} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(credentials, S3Credentials):
                raise StorageError(
                    f"the S3 credentials provider {_name(self._source)} returned "
                    f"{type(credentials).__name__}, expected S3Credentials"
                )
            self._current = credentials


_shared: SharedRegistry[CredentialsCache] = SharedRegistry(SHARED_CACHES)


def shared_cache(
    origin: str, source: CredentialsSource, embedded: S3Credentials | None = None
) -> CredentialsCache:
    """This process's cache for the storage objects of one ``origin`` (a random token).

    Only providers are shared: static credentials and None need no cache of their own state.
    ``embedded`` are credentials a pickle carried ("scattered" by the coordinator): a new cache
    starts with them, an existing one adopts them if they expire later than its own. A cache
    nobody holds stays registered while among the `SHARED_CACHES` most recently used;
    dropping one costs at most one more provider call.
    """
    if source is None or isinstance(source, S3Credentials):
        return CredentialsCache(source)
    cache = _shared.get(origin, lambda: CredentialsCache(source))
    if embedded is not None:
        cache.offer(embedded)
    return cache


def _expiry(credentials: S3Credentials) -> datetime:
    return credentials.expires_at or datetime.max.replace(tzinfo=UTC)


def _name(provider: object) -> str:
    return getattr(provider, "__qualname__", type(provider).__qualname__)
