"""Storage in an OpenStack Swift container, over Swift's HTTP API with aiohttp.

Key ``k`` is the object ``<container>/<prefix>/k`` of the account the token is for. Swift has
no atomic create (``If-None-Match: *`` is checked before the upload, not under a lock, so
concurrent creators can all succeed): `supports_atomic_create` is False. Chunks, manifests
and snapshots have fresh ids and are safe from any number of writers; committing needs
``single_writer=True`` (one committer per branch, documented and the caller's promise) or
refs kept on a storage with atomic create (`vrepo.swift_storage(..., refs_storage=...)`,
see `vrepo.storage.routed`). docs/storage.md says what is guaranteed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from vrepo.errors import InvalidArgumentError, ObjectNotFoundError, StorageError
from vrepo.storage import _http
from vrepo.storage._keys import validate_byte_range, validate_key, validate_prefix
from vrepo.storage._swift_auth import SwiftAuth, SwiftToken, TokenCache, shared_tokens
from vrepo.storage.base import Storage

_ATTEMPTS = 5  # tries of one request that meets a transient failure
_BACKOFF = 0.1  # seconds before the first retry; doubled each time, jittered
_RETRY_STATUSES = frozenset({408, 429, 498, 500, 502, 503, 504})
_PAGE = 10_000  # Swift's largest listing page (container_listing_limit)
_MAX_OFFSET = 2**62


@dataclass(frozen=True)
class SwiftConfig:
    """What a Swift storage is: container, key prefix, how it authenticates, its promises."""

    container: str
    root: str
    auth: SwiftAuth
    single_writer: bool
    scatter_credentials: bool

    @classmethod
    def checked(cls, container: Any, prefix: Any, auth: SwiftAuth, **flags: Any) -> SwiftConfig:
        if not isinstance(container, str) or not container or "/" in container:
            raise InvalidArgumentError(
                f"the Swift container must be a non-empty name without '/', got {container!r}"
            )
        if not isinstance(prefix, str):
            raise InvalidArgumentError(f"prefix must be a str, got {type(prefix).__name__}")
        root = prefix.strip("/")
        if root:
            validate_key(root)
        return cls(container, root, auth, **{k: bool(v) for k, v in flags.items()})


class SwiftStorage(Storage):
    """Objects in a Swift container below an optional prefix.

    Authenticates with a pre-authenticated token (``preauthurl`` + ``preauthtoken``, or
    ``OS_STORAGE_URL`` + ``OS_AUTH_TOKEN``), a TempAuth/v1 login (``authurl``, ``user``,
    ``key``, or ``ST_AUTH``, ``ST_USER``, ``ST_KEY``) or a picklable ``token_provider``
    returning `SwiftToken`. A 401 gets one new token (login or provider) and the request is
    repeated; a second 401, or a 401 with nothing to refresh from, is a `StorageError`.
    Pickles carry the configuration and (``scatter_credentials``) the current token, so
    workers need not log in.
    """

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        preauthurl: str | None = None,
        preauthtoken: str | None = None,
        authurl: str | None = None,
        user: str | None = None,
        key: str | None = None,
        token_provider: Any = None,
        single_writer: bool = False,
        scatter_credentials: bool = True,
    ) -> None:
        auth = SwiftAuth.checked(preauthurl, preauthtoken, authurl, user, key, token_provider)
        self._config = SwiftConfig.checked(
            container,
            prefix,
            auth,
            single_writer=single_writer,
            scatter_credentials=scatter_credentials,
        )
        self._origin = secrets.token_hex(16)
        self._tokens: TokenCache = shared_tokens(self._origin, auth)

    # --- identity and pickling ---------------------------------------------------------

    @property
    def container(self) -> str:
        """The container name."""
        return self._config.container

    @property
    def prefix(self) -> str:
        """The key prefix inside the container, without leading or trailing '/'."""
        return self._config.root

    @property
    def single_writer(self) -> bool:
        """Whether the caller promised one committer per branch (see the module doc)."""
        return self._config.single_writer

    @property
    def supports_atomic_create(self) -> bool:
        """False: Swift's conditional create is not atomic under concurrency."""
        return False

    @property
    def url(self) -> str:
        """``swift://container/prefix``, and the host of a given storage or auth URL."""
        root = f"/{self._config.root}" if self._config.root else ""
        auth = self._config.auth
        where = _host(auth.preauthurl or auth.authurl)
        return f"swift://{self._config.container}{root}" + (f" ({where})" if where else "")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._config == self._config  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._config))

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {"config": self._config, "origin": self._origin}
        if self._config.scatter_credentials and self._config.auth.refreshable:
            fresh = self._tokens.fresh
            if fresh is not None:
                state["token"] = fresh
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config = state["config"]
        self._origin = state["origin"]
        self._tokens = shared_tokens(self._origin, self._config.auth, state.get("token"))

    async def _prepare_for_workers(self) -> None:
        """Log in now (if needed), so pickles sent to workers carry the token."""
        if self._config.scatter_credentials:
            await self._tokens.get()

    async def close(self) -> None:
        """Close the running loop's HTTP session (optional; shared by this process)."""
        await _http.close_loop()

    # --- requests ------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        return f"{self._config.root}/{key}" if self._config.root else key

    def _object_url(self, token: SwiftToken, name: str) -> str:
        return f"{token.storage_url.rstrip('/')}/{quote(self._config.container)}/{quote(name)}"

    async def _request(
        self,
        method: str,
        name: str | None,
        doing: str,
        key: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes, bool]:
        """One request (``name`` None: the container), with retries and one 401 refresh.

        Returns status, headers, body and whether the request was sent more than once.
        """
        token = await self._tokens.get()
        refreshed, sent = False, 0
        while True:
            url = (
                self._object_url(token, name)
                if name is not None
                else f"{token.storage_url.rstrip('/')}/{quote(self._config.container)}"
            )
            try:
                sent += 1
                async with _http.session().request(
                    method,
                    url,
                    headers={**(headers or {}), "X-Auth-Token": token.token},
                    data=data,
                    params=params,
                    allow_redirects=False,
                ) as response:
                    body = await response.read()
                    status, answer = response.status, response.headers
            except _http.transient_errors() as exc:  # connection, timeout, broken answer
                if sent < _ATTEMPTS:
                    await _backoff(sent)
                    continue
                raise self._error(
                    f"could not reach Swift or lost its answer, {sent} times ({exc!r})", doing, key
                ) from exc
            if status == 401:
                new = None if refreshed else await self._tokens.rejected(token)
                if new is None:
                    raise self._unauthorized(doing, key, refreshed)
                token, refreshed = new, True
                continue
            if status in _RETRY_STATUSES and sent < _ATTEMPTS:
                await _backoff(sent)
                continue
            return status, answer, body, sent > 1

    def _error(self, problem: str, doing: str, key: str) -> StorageError:
        return StorageError(f"{doing} {key!r} in {self.url} failed: {problem}")

    def _unauthorized(self, doing: str, key: str, refreshed: bool) -> StorageError:
        if refreshed:
            hint = "a new token was refused too: check the user's access to the account"
        else:
            hint = (
                "the token expired or is not valid, and there is nothing to get a new one "
                "from: set a fresh OS_AUTH_TOKEN (preauthtoken), or give authurl/user/key "
                "(ST_AUTH, ST_USER, ST_KEY) or a token_provider so vrepo can log in again"
            )
        return self._error(f"Swift answered 401 Unauthorized; {hint}", doing, key)

    def _failed(self, status: int, body: bytes, doing: str, key: str) -> StorageError:
        if status == 403:
            problem = (
                "403 Forbidden: the token is valid but may not do this; check the "
                "container's ACLs and the user's roles"
            )
        elif status == 404:
            problem = (
                f"the container {self._config.container!r} does not exist in this account; "
                f"create it first (`swift post {self._config.container}`)"
            )
        else:
            problem = f"Swift answered {status}: {body[:200].decode(errors='replace')!r}"
        return self._error(problem, doing, key)

    # --- async interface ---------------------------------------------------------------

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The object, or bytes ``[start, end)`` of it (one ranged GET, clipped at the end)."""
        name = self._path(key)
        byte_range = validate_byte_range(byte_range)
        headers = {}
        if byte_range is not None:
            start, end = min(byte_range[0], _MAX_OFFSET), min(byte_range[1], _MAX_OFFSET)
            byte_range = start, end
            headers["Range"] = f"bytes={start}-{max(end, start + 1) - 1}"
        status, _, body, _ = await self._request("GET", name, "reading", key, headers=headers)
        if status == 404:
            raise ObjectNotFoundError(key)
        if status == 416:  # the range starts at or past the end
            return b""
        if status not in (200, 206):
            raise self._failed(status, body, "reading", key)
        if byte_range is None:
            return body
        if status == 200:  # the whole object: the server ignored the range
            return body[byte_range[0] : byte_range[1]]
        return body[: byte_range[1] - byte_range[0]]

    async def put(self, key: str, data: bytes | memoryview) -> None:
        """One PUT, its MD5 as ``ETag`` (Swift refuses bytes that do not match)."""
        await self._put(key, bytes(data), {})

    async def _put(self, key: str, body: bytes, extra: Mapping[str, str]) -> tuple[int, bool]:
        headers = {"ETag": hashlib.md5(body, usedforsecurity=False).hexdigest(), **extra}
        status, _, answer, repeated = await self._request(
            "PUT", self._path(key), "writing", key, headers=headers, data=body
        )
        if status == 412 and extra:
            return status, repeated
        if status != 201:
            raise self._failed(status, answer, "writing", key)
        return status, repeated

    async def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Refused unless ``single_writer``: then a PUT with ``If-None-Match: *``.

        412 means the key exists: False. After a 201 the object is read back, and only our
        own bytes mean True: of racers that all passed the check, those whose write a newer
        one replaced lose (in 20 races of 8 writers on a Swift all-in-one, 20 had several
        winners without this, 2 with it: narrower, not atomic). A 412 answering a request
        that had to be repeated may refuse our own first write: read back the same way.
        """
        self._path(key)
        if not self._config.single_writer:
            raise StorageError(
                f"{self.url} cannot create {key!r} atomically: Swift's If-None-Match is not "
                "atomic under concurrency, so concurrent commits could both win. Keep refs on "
                "a storage with atomic create (vrepo.swift_storage(..., refs_storage=PATH or "
                "an S3 storage)) or, if only one process at a time commits to each branch, "
                "pass single_writer=True"
            )
        body = bytes(data)
        status, repeated = await self._put(key, body, {"If-None-Match": "*"})
        if status == 201 or repeated:
            # As far as Swift allows: a racer whose write was overwritten (the newest
            # timestamp wins) sees other bytes and loses; racers may still both win.
            try:
                return await self.get(key) == body
            except ObjectNotFoundError:  # deleted meanwhile, or a repeat that never landed
                return False if status == 201 else await self.put_if_absent(key, body)
        return False

    async def delete(self, key: str) -> None:
        """DELETE; a missing object is not an error."""
        status, _, body, _ = await self._request("DELETE", self._path(key), "deleting", key)
        if status not in (200, 204, 404):
            raise self._failed(status, body, "deleting", key)

    async def exists(self, key: str) -> bool:
        """HEAD: whether the object exists (False in a missing container too)."""
        return await self._head(key, "checking") is not None

    async def size(self, key: str) -> int:
        """HEAD: the object's Content-Length."""
        length = await self._head(key, "sizing")
        if length is None:
            raise ObjectNotFoundError(key)
        return length

    async def _head(self, key: str, doing: str) -> int | None:
        status, headers, body, _ = await self._request("HEAD", self._path(key), doing, key)
        if status == 404:
            return None
        if status not in (200, 204):
            raise self._failed(status, body, doing, key)
        return int(headers.get("Content-Length", "0"))

    async def list(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """Container listings (JSON, by marker, 10,000 names a page, no overall cap)."""
        return await self._list(prefix, limit, None)

    async def list_after(
        self, prefix: str, start_after: str, *, limit: int | None = None
    ) -> list[str]:
        """As `list`, from the first key after ``start_after`` (the listing's marker)."""
        return await self._list(prefix, limit, start_after)

    async def _list(self, prefix: str, limit: int | None, start_after: str | None) -> list[str]:
        validate_prefix(prefix)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidArgumentError(f"limit must be a non-negative int, got {limit!r}")
        root = f"{self._config.root}/" if self._config.root else ""
        marker = root + start_after if start_after is not None else ""
        keys: list[str] = []
        while limit is None or len(keys) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(keys))
            params = {"format": "json", "prefix": root + prefix, "limit": str(page)}
            if marker:
                params["marker"] = marker
            status, _, body, _ = await self._request("GET", None, "listing", prefix, params=params)
            if status == 204:
                break
            if status != 200:
                raise self._failed(status, body, "listing", prefix)
            names = [item["name"] for item in json.loads(body) if "name" in item]
            for name in names:
                rest = name[len(root) :]
                if _is_key(rest):
                    keys.append(rest)
            if len(names) < page:
                break
            marker = names[-1]
        return keys if limit is None else keys[:limit]

    async def make_durable(self, keys: Iterable[str]) -> None:
        """Nothing to do: a PUT that returned 201 is durable. Only validates the keys."""
        for key in keys:
            validate_key(key)


def _is_key(name: str) -> bool:
    try:
        validate_key(name)
    except Exception:
        return False
    return True


def _host(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(_BACKOFF * 2 ** (attempt - 1) * (0.5 + random.random()))
