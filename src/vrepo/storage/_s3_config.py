"""What identifies an S3 storage: its checked arguments, and how its location is named.

`S3Config` is what an `S3Storage` compares by and pickles as (with its origin token), so it
holds configuration only: no clients, and no credentials a provider returned. It has no
field-showing repr, so static credentials never appear in messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from vrepo import config as _settings
from vrepo.errors import InvalidArgumentError, InvalidKeyError
from vrepo.storage._keys import validate_prefix
from vrepo.storage.credentials import CredentialsSource, check_credentials_source


@dataclass(frozen=True, repr=False)
class S3Config:
    """Everything that identifies an S3 storage; what it pickles as and compares by."""

    bucket: str
    root: str
    endpoint_url: str | None
    region: str | None
    anonymous: bool
    credentials: CredentialsSource
    scatter_credentials: bool

    @classmethod
    def checked(
        cls,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str | None,
        anonymous: bool,
        credentials: CredentialsSource,
        scatter_credentials: bool | None,
    ) -> S3Config:
        """The configuration the `S3Storage` arguments give (in order), after checking them.

        ``scatter_credentials=None`` reads the ``storage.s3.scatter-credentials`` setting.
        """
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
        return cls(
            bucket,
            prefix.strip("/"),
            endpoint_url,
            region,
            bool(anonymous),
            credentials,
            scatter_credentials,
        )

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``, followed by the endpoint host if it is not AWS."""
        url = f"s3://{self.bucket}/{self.root}" if self.root else f"s3://{self.bucket}"
        return f"{url} (endpoint {self.endpoint})" if self.endpoint_url else url

    @property
    def endpoint(self) -> str:
        """The endpoint for messages: scheme, host and port only (never user info)."""
        if self.endpoint_url is None:
            return f"AWS S3 ({self.region})" if self.region else "AWS S3"
        parts = urlsplit(self.endpoint_url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


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
