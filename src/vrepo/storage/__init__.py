"""Layer 1: the only code that touches bytes at rest.

`Storage` is the async interface; `LocalStorage` (the default), `MemoryStorage`,
`S3Storage`, `SwiftStorage` and `FsspecStorage` implement it (docs/storage.md compares their
guarantees); `RoutedStorage` keeps refs on one storage and data on another. `as_storage` turns
what a user passes (a path, a ``file://``, ``s3://`` or ``swift://`` URL, or a storage object)
into a `Storage`.

The S3, Swift and memory backends load on first use of their names (``from vrepo.storage
import S3Storage`` works as before): a local repository, such as a ``vrepo log`` reads,
needs none of their modules.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vrepo.errors import InvalidArgumentError, StorageError
from vrepo.storage._guarded import guarded, unguarded
from vrepo.storage.base import Storage

# Imported here, before `fsspec_storage` is defined below: importing the module later would
# bind its name over the function's. (It imports fsspec only when used.)
from vrepo.storage.fsspec_storage import FsspecStorage
from vrepo.storage.local import LocalStorage

if TYPE_CHECKING:
    from vrepo.storage._swift_auth import SwiftToken, TokenProvider
    from vrepo.storage.credentials import CredentialsSource, S3Credentials
    from vrepo.storage.memory import MemoryStorage
    from vrepo.storage.routed import RoutedStorage
    from vrepo.storage.s3 import S3Storage
    from vrepo.storage.swift import SwiftStorage

# names loaded on first use, and their modules
_LAZY = {
    "CredentialsSource": "vrepo.storage.credentials",
    "MemoryStorage": "vrepo.storage.memory",
    "S3Credentials": "vrepo.storage.credentials",
    "RoutedStorage": "vrepo.storage.routed",
    "S3Storage": "vrepo.storage.s3",
    "SwiftStorage": "vrepo.storage.swift",
    "SwiftToken": "vrepo.storage._swift_auth",
}


def __getattr__(name: str) -> Any:
    """The S3, Swift, routed and memory storage names, imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


_S3_OPTIONS = frozenset(
    {"endpoint_url", "region", "anonymous", "credentials", "scatter_credentials"}
)
_SWIFT_OPTIONS = frozenset(
    {
        "preauthurl",
        "preauthtoken",
        "authurl",
        "user",
        "key",
        "token_provider",
        "single_writer",
        "scatter_credentials",
        "refs_storage",
    }
)
_SUPPORTED = (
    "plain paths and file:// URLs (local storage), s3://bucket/prefix URLs (S3 storage), "
    "swift://container/prefix URLs (OpenStack Swift), or a Storage object (see "
    "vrepo.fsspec_storage for other filesystems)"
)


def local_storage(path: str | os.PathLike[str]) -> LocalStorage:
    """Storage in a directory of the local filesystem (created on first write)."""
    return LocalStorage(path)


def memory_storage() -> MemoryStorage:
    """New, empty storage inside this process only: for tests and scratch work."""
    from vrepo.storage.memory import MemoryStorage

    return MemoryStorage()


def s3_storage(
    bucket: str,
    prefix: str = "",
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    anonymous: bool = False,
    credentials: CredentialsSource = None,
    scatter_credentials: bool | None = None,
) -> S3Storage:
    """Storage below ``s3://bucket/prefix`` on AWS or an S3-compatible server.

    ``credentials`` is `S3Credentials`, a picklable zero-argument callable returning them
    (called lazily, again only near expiry), or None for botocore's default chain
    (environment, config files, instance role); ``anonymous=True`` reads public buckets.

    With a provider, ``scatter_credentials=True`` (the default, from the
    ``storage.s3.scatter-credentials`` setting when None) makes pickles of the storage
    (forks sent to workers) carry the credentials it last returned: workers do not call the
    provider until those near expiry, and then once per process. ``False`` sends only the
    provider, which each worker process calls itself on first use (for workers with their own
    credentials, such as instance roles, or to keep secrets off the wire).
    """
    from vrepo.storage.s3 import S3Storage

    return S3Storage(
        bucket,
        prefix,
        endpoint_url=endpoint_url,
        region=region,
        anonymous=anonymous,
        credentials=credentials,
        scatter_credentials=scatter_credentials,
    )


def swift_storage(
    container: str,
    prefix: str = "",
    *,
    preauthurl: str | None = None,
    preauthtoken: str | None = None,
    authurl: str | None = None,
    user: str | None = None,
    key: str | None = None,
    token_provider: TokenProvider | None = None,
    single_writer: bool = False,
    scatter_credentials: bool = True,
    refs_storage: Storage | str | os.PathLike[str] | None = None,
) -> Storage:
    """Storage below ``prefix`` in an OpenStack Swift container.

    Authenticates with a pre-authenticated token (``preauthurl`` + ``preauthtoken``), a
    TempAuth/v1 login (``authurl``, ``user``, ``key``) or a picklable ``token_provider``
    returning `SwiftToken`; with none of them, from ``OS_STORAGE_URL`` + ``OS_AUTH_TOKEN``
    and ``ST_AUTH``, ``ST_USER``, ``ST_KEY``. Swift has no atomic create, so commits need
    ``refs_storage`` (a path, URL or storage with atomic create, such as a shared
    filesystem or S3: refs live there, all data in Swift; returns a `RoutedStorage`) or
    ``single_writer=True``, the promise that one process at a time commits to each branch.
    ``scatter_credentials`` sends the current token to workers in forks.
    """
    from vrepo.storage.swift import SwiftStorage

    swift = SwiftStorage(
        container,
        prefix,
        preauthurl=preauthurl,
        preauthtoken=preauthtoken,
        authurl=authurl,
        user=user,
        key=key,
        token_provider=token_provider,
        single_writer=single_writer,
        scatter_credentials=scatter_credentials,
    )
    if refs_storage is None:
        return swift
    from vrepo.storage.routed import RoutedStorage

    refs = as_storage(refs_storage)
    if not refs.supports_atomic_create:
        raise InvalidArgumentError(
            f"refs_storage {refs.url} has no atomic create either; use local storage on a "
            "shared filesystem or S3"
        )
    return RoutedStorage(swift, refs)


def fsspec_storage(
    url_or_fs: Any,
    root: str | None = None,
    single_writer: bool = False,
    **storage_options: Any,
) -> FsspecStorage:
    """Storage on any fsspec filesystem, given a URL (plus its options) or a filesystem.

    Such storage cannot commit safely with concurrent writers; see `FsspecStorage`.
    """
    if isinstance(url_or_fs, str):
        if root is not None:
            raise InvalidArgumentError("pass root only with a filesystem object, not a URL")
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(url_or_fs, **storage_options)
        return FsspecStorage(fs, path, single_writer=single_writer)
    if storage_options:
        raise InvalidArgumentError(
            "storage options apply only to a URL; configure the filesystem object instead"
        )
    return FsspecStorage(url_or_fs, root or "", single_writer=single_writer)


def as_storage(
    obj: Storage | str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Storage:
    """Accept a storage object as is, or turn a path or URL into a storage.

    Paths and ``file://`` URLs give `LocalStorage`; ``s3://bucket/prefix`` gives `S3Storage`,
    configured by ``storage_options`` (the keyword arguments of `s3_storage`);
    ``swift://container/prefix`` gives Swift storage (the keyword arguments of
    `swift_storage`: ``preauthurl``, ``preauthtoken``, ``authurl``, ``user``, ``key``,
    ``refs_storage``, ...). Lets
    user-facing functions take either a location or a configured storage.
    """
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise InvalidArgumentError(
            "storage_options must be a dict of s3_storage or swift_storage keyword arguments, got "
            f"{type(storage_options).__name__}"
        )
    if isinstance(obj, Storage):
        _no_options(storage_options, "a Storage object")
        return obj
    if isinstance(obj, str):
        scheme, sep, rest = obj.partition("://")
        if sep:
            scheme = scheme.lower()
            if scheme == "s3":
                bucket, _, prefix = rest.partition("/")
                return _s3_from_url(bucket, prefix, storage_options or {})
            if scheme == "swift":
                container, _, prefix = rest.partition("/")
                return _swift_from_url(container, prefix, storage_options or {})
            if scheme != "file":
                raise StorageError(
                    f"unsupported storage URL scheme {scheme!r} in {obj!r}; supported are "
                    f"{_SUPPORTED}"
                )
            obj = rest
    elif not isinstance(obj, os.PathLike):
        raise InvalidArgumentError(f"expected {_SUPPORTED}, got {type(obj).__name__}")
    _no_options(storage_options, "local storage")
    if not os.fspath(obj):
        raise InvalidArgumentError(
            "the storage location is an empty path; pass a directory such as "
            "'data/my.vrepo', an s3://bucket/prefix URL, or a Storage object"
        )
    return LocalStorage(obj)


def _s3_from_url(bucket: str, prefix: str, options: Mapping[str, Any]) -> S3Storage:
    unknown = sorted(set(options) - _S3_OPTIONS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown storage_options {unknown} for an s3:// URL; the options are "
            f"{sorted(_S3_OPTIONS)}"
        )
    return s3_storage(bucket, prefix, **options)


def _swift_from_url(container: str, prefix: str, options: Mapping[str, Any]) -> Storage:
    unknown = sorted(set(options) - _SWIFT_OPTIONS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown storage_options {unknown} for a swift:// URL; the options are "
            f"{sorted(_SWIFT_OPTIONS)}"
        )
    return swift_storage(container, prefix, **options)


def _no_options(storage_options: dict[str, Any] | None, what: str) -> None:
    if storage_options:
        raise InvalidArgumentError(
            f"storage_options apply only to s3:// and swift:// URLs, not to {what}; "
            f"got {sorted(storage_options)}"
        )


__all__ = [
    "FsspecStorage",
    "LocalStorage",
    "MemoryStorage",
    "RoutedStorage",
    "S3Credentials",
    "S3Storage",
    "Storage",
    "SwiftStorage",
    "SwiftToken",
    "as_storage",
    "fsspec_storage",
    "guarded",
    "local_storage",
    "memory_storage",
    "s3_storage",
    "swift_storage",
    "unguarded",
]
