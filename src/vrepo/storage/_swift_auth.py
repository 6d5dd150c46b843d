"""Swift authentication: pre-authenticated tokens, TempAuth (v1) user/key, token providers.

`SwiftAuth` is the configuration (frozen, hashable, masked in ``repr``), `SwiftToken` a
token and the storage URL it is good for, and `TokenCache` the current token of the storage
objects of one origin in a process: fetched on first use, again when it nears expiry, and
again once when Swift answers 401 to it. Fetching (a v1 auth request or a provider call)
runs in a worker thread under a lock, so however many loops, threads and copies share the
cache, each refresh is one call.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from vrepo.errors import InvalidArgumentError, StorageError
from vrepo.storage._shared import SharedRegistry

#: A token is fetched again when it expires within this many seconds.
REFRESH_MARGIN = 300.0
_AUTH_TIMEOUT = 30.0
_MASK = "****"


@dataclass(frozen=True, repr=False)
class SwiftToken:
    """A Swift auth token, the storage URL it is for, and when it expires (epoch seconds).

    ``repr`` never shows the token.
    """

    storage_url: str
    token: str
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.storage_url, str) or "://" not in self.storage_url:
            raise InvalidArgumentError(
                "SwiftToken.storage_url must be the account URL, such as "
                f"'https://swift.example.org/v1/AUTH_project', got {self.storage_url!r}"
            )
        if not isinstance(self.token, str) or not self.token:
            raise InvalidArgumentError("SwiftToken.token must be a non-empty str")

    def expires_within(self, margin: float) -> bool:
        """Whether the token expires less than ``margin`` seconds from now."""
        return self.expires_at is not None and self.expires_at - time.time() < margin

    def __repr__(self) -> str:
        return f"SwiftToken(storage_url={self.storage_url!r}, token='{_MASK}')"

    __str__ = __repr__


TokenProvider = Callable[[], SwiftToken]


@dataclass(frozen=True, repr=False)
class SwiftAuth:
    """How a Swift storage authenticates; ``repr`` masks the token and the key."""

    preauthurl: str | None = None
    preauthtoken: str | None = field(default=None, compare=False)
    authurl: str | None = None
    user: str | None = None
    key: str | None = field(default=None, compare=False)
    token_provider: TokenProvider | None = None

    @classmethod
    def checked(
        cls,
        preauthurl: str | None,
        preauthtoken: str | None,
        authurl: str | None,
        user: str | None,
        key: str | None,
        token_provider: TokenProvider | None,
    ) -> SwiftAuth:
        """Validated settings. What is missing comes from ``OS_STORAGE_URL`` and
        ``OS_AUTH_TOKEN`` (pre-auth) and ``ST_AUTH``, ``ST_USER``, ``ST_KEY`` (login): a
        group given in part is completed from its variables; with nothing given, both are
        read; with a ``token_provider`` only, none."""
        env = os.environ
        preauth_given = preauthurl is not None or preauthtoken is not None
        login_given = authurl is not None or user is not None or key is not None
        nothing_given = not (preauth_given or login_given or token_provider is not None)
        if preauth_given or nothing_given:  # what is missing comes from the environment
            preauthurl = preauthurl or env.get("OS_STORAGE_URL") or None
            preauthtoken = preauthtoken or env.get("OS_AUTH_TOKEN") or None
        if login_given or nothing_given:
            authurl = authurl or env.get("ST_AUTH") or None
            user = user or env.get("ST_USER") or None
            key = key or env.get("ST_KEY") or None
        final = (preauthurl, preauthtoken, authurl, user, key)
        names = ("preauthurl", "preauthtoken", "authurl", "user", "key")
        for name, value in zip(names, final, strict=True):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidArgumentError(f"{name} must be a non-empty str or None")
        if token_provider is not None and not callable(token_provider):
            raise InvalidArgumentError(
                "token_provider must be a picklable zero-argument callable returning SwiftToken"
            )
        has_login = authurl is not None or user is not None or key is not None
        if has_login and not (authurl and user and key):
            raise InvalidArgumentError(
                "authurl, user and key go together (TempAuth/v1 login: ST_AUTH, ST_USER, "
                "ST_KEY); pass all three"
            )
        if token_provider is not None and has_login:
            raise InvalidArgumentError("pass either token_provider or authurl/user/key, not both")
        if preauthtoken and not (preauthurl or has_login or token_provider):
            raise InvalidArgumentError(
                "a preauthtoken needs the storage URL it is for: pass preauthurl "
                "(OS_STORAGE_URL), such as 'https://swift.example.org/v1/AUTH_project'"
            )
        if not (preauthtoken or has_login or token_provider):
            raise StorageError(
                "no Swift credentials: pass preauthurl and preauthtoken (or set "
                "OS_STORAGE_URL and OS_AUTH_TOKEN), authurl, user and key (or ST_AUTH, "
                "ST_USER, ST_KEY), or a token_provider"
            )
        if preauthurl is not None and "://" not in preauthurl:
            raise InvalidArgumentError(
                f"preauthurl must be a URL such as 'https://swift.example.org/v1/AUTH_project', "
                f"got {preauthurl!r}"
            )
        return cls(preauthurl, preauthtoken, authurl, user, key, token_provider)

    @property
    def refreshable(self) -> bool:
        """Whether a new token can be had (a login or a provider), not only the one given."""
        return self.authurl is not None or self.token_provider is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets configured (for tests that check nothing shows them)."""
        return tuple(s for s in (self.preauthtoken, self.key) if s)

    def initial(self) -> SwiftToken | None:
        """The pre-authenticated token, if one was given with its URL."""
        if self.preauthtoken and self.preauthurl:
            return SwiftToken(self.preauthurl, self.preauthtoken)
        return None

    def fetch(self) -> SwiftToken:
        """A new token: a v1 login or a provider call (blocking; run in a thread)."""
        if self.token_provider is not None:
            try:
                token = self.token_provider()
            except Exception as exc:
                raise StorageError(
                    f"the Swift token provider {_name(self.token_provider)} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(token, SwiftToken):
                raise StorageError(
                    f"the Swift token provider {_name(self.token_provider)} returned "
                    f"{type(token).__name__}, expected SwiftToken"
                )
        elif self.authurl is not None:
            token = _v1_login(self.authurl, self.user or "", self.key or "")
        else:
            raise StorageError("no way to get a new Swift token")  # callers check refreshable
        if self.preauthurl:  # as swiftclient does: a given storage URL wins
            token = SwiftToken(self.preauthurl, token.token, token.expires_at)
        return token

    def __repr__(self) -> str:
        parts = []
        if self.preauthurl:
            parts.append(f"preauthurl={self.preauthurl!r}")
        if self.preauthtoken:
            parts.append(f"preauthtoken='{_MASK}'")
        if self.authurl:
            parts += [f"authurl={self.authurl!r}", f"user={self.user!r}", f"key='{_MASK}'"]
        if self.token_provider is not None:
            parts.append(f"token_provider={_name(self.token_provider)}")
        return f"SwiftAuth({', '.join(parts)})"


def _v1_login(authurl: str, user: str, key: str) -> SwiftToken:
    """GET the v1 auth URL with X-Auth-User and X-Auth-Key (TempAuth, swauth, ...)."""
    request = urllib.request.Request(authurl, headers={"X-Auth-User": user, "X-Auth-Key": key})
    where = authurl.split("?")[0]
    try:
        with urllib.request.urlopen(request, timeout=_AUTH_TIMEOUT) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        what = "the user or key is wrong" if exc.code in (401, 403) else "the login failed"
        raise StorageError(
            f"Swift login at {where} as {user!r} answered {exc.code} {exc.reason}: {what}; "
            "check ST_USER/ST_KEY (user, key) and ST_AUTH (authurl)"
        ) from None
    except OSError as exc:
        raise StorageError(f"could not reach the Swift auth URL {where}: {exc}") from exc
    url, token = headers.get("X-Storage-Url"), headers.get("X-Auth-Token")
    if not url or not token:
        raise StorageError(f"Swift login at {where} returned no X-Storage-Url/X-Auth-Token")
    expires = headers.get("X-Auth-Token-Expires")
    return SwiftToken(url, token, time.time() + float(expires) if expires else None)


class TokenCache:
    """The current token of one origin's storage objects in this process (never pickled)."""

    def __init__(self, auth: SwiftAuth) -> None:
        self._auth = auth
        self._current = auth.initial()
        self._lock = threading.Lock()

    @property
    def fresh(self) -> SwiftToken | None:
        """The token held now if it does not near expiry; no request."""
        current = self._current
        return None if current is None or current.expires_within(REFRESH_MARGIN) else current

    def offer(self, token: SwiftToken) -> None:
        """Adopt a token fetched elsewhere (a pickle's) if the held one is older or absent."""
        with self._lock:
            if self._current is None or _expiry(token) > _expiry(self._current):
                self._current = token

    async def get(self) -> SwiftToken:
        """The token to use now, fetched if there is none or it nears expiry."""
        current = self._current
        if current is None or (current.expires_within(REFRESH_MARGIN) and self._auth.refreshable):
            await asyncio.to_thread(self._refresh, current)
        assert self._current is not None
        return self._current

    async def rejected(self, token: SwiftToken) -> SwiftToken | None:
        """Swift answered 401 to ``token``: a new one, or None if none can be had."""
        if not self._auth.refreshable:
            return None
        await asyncio.to_thread(self._refresh, token)
        return self._current

    def _refresh(self, seen: SwiftToken | None) -> None:
        with self._lock:
            if self._current is not seen and self._current is not None:
                return  # another thread refreshed while we waited
            self._current = self._auth.fetch()


_shared: SharedRegistry[TokenCache] = SharedRegistry(64)


def shared_tokens(origin: str, auth: SwiftAuth, embedded: SwiftToken | None = None) -> TokenCache:
    """This process's token cache for the storage objects of ``origin``; ``embedded`` is a
    token a pickle carried (scattered by the coordinator)."""
    cache = _shared.get(origin, lambda: TokenCache(auth))
    if embedded is not None:
        cache.offer(embedded)
    return cache


def _expiry(token: SwiftToken) -> float:
    return token.expires_at if token.expires_at is not None else float("inf")


def _name(provider: object) -> str:
    return getattr(provider, "__qualname__", type(provider).__qualname__)
