"""Versions in S3-compatible object storage, through boto3.

Configured from the environment of the pod (the chart and the operator set it for its Jobs and
servers): `MLOPS_STORE_URI=s3://bucket[/prefix]`; boto3's own `AWS_ENDPOINT_URL`, `AWS_REGION`,
`AWS_CA_BUNDLE` and credentials (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from a Secret, or the
pod's web identity or instance role); `MLOPS_S3_ADDRESSING` = `path`, `virtual` or `auto` (default).

Write-then-publish: a version's files are written first, then its index `.published` (the names of
its files) with `If-None-Match: *`, so the first writer to publish wins and a published version is
never written again. Readers look at the index only: a version without one does not exist yet, and
files a losing writer left beside it are never read. What a version's files hold is checked by the
readers themselves (dataset sha256, the model's MANIFEST.json).
"""

from __future__ import annotations

import json
import os
import pathlib
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from . import ArtifactStore, StoreError

INDEX = ".published"


def client_from_env(*, prefix: str = "") -> Any:
    """A client configured as the pod's environment says. With `prefix` (a Dataset's own source
    bucket), `<prefix>AWS_ACCESS_KEY_ID`/`<prefix>AWS_SECRET_ACCESS_KEY` and `<prefix>ENDPOINT`, where set,
    override the artifact store's."""
    import boto3
    from botocore.config import Config

    addressing = os.environ.get("MLOPS_S3_ADDRESSING", "auto")
    config = Config(
        s3={"addressing_style": addressing if addressing in ("path", "virtual") else "auto"},
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        # Checksums only where S3 requires them: S3-compatible servers differ in the newer ones.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    key, secret = os.environ.get(f"{prefix}AWS_ACCESS_KEY_ID"), os.environ.get(f"{prefix}AWS_SECRET_ACCESS_KEY")
    credentials = {"aws_access_key_id": key, "aws_secret_access_key": secret} if prefix and key and secret else {}
    endpoint = (
        {"endpoint_url": os.environ[f"{prefix}ENDPOINT"]} if prefix and os.environ.get(f"{prefix}ENDPOINT") else {}
    )
    # A session of its own: boto3's default session keeps the credentials it found first.
    return boto3.session.Session().client("s3", region_name=region, config=config, **credentials, **endpoint)


def read_object(uri: str, *, client: Any, max_bytes: int) -> bytes:
    """The bytes of one object (`s3://bucket/key`), at most `max_bytes`; a StoreError names the object and
    the cause otherwise."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    size = request(client, "head_object", bucket, key).get("ContentLength") or 0
    if size > max_bytes:
        raise StoreError(f"{uri} is larger than the limit of {max_bytes} bytes ({size})", reason="Unavailable")
    body = request(client, "get_object", bucket, key)["Body"]
    data = body.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise StoreError(f"{uri} is larger than the limit of {max_bytes} bytes", reason="Unavailable")
    return data


@dataclass(frozen=True)
class S3Store(ArtifactStore):
    root_uri: str  # s3://bucket[/prefix]
    bucket: str
    prefix: str
    client: Any = field(repr=False, compare=False)

    @classmethod
    def from_uri(cls, root_uri: str, client: Any = None) -> S3Store:
        parsed = urllib.parse.urlparse(root_uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StoreError(f"{root_uri!r} is not an s3://<bucket>[/prefix] URI")
        prefix = parsed.path.strip("/")
        return cls(root_uri.rstrip("/"), parsed.netloc, prefix, client or client_from_env())

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative.strip('/')}" if self.prefix else relative.strip("/")

    def has_version(self, relative: str) -> bool:
        return self._exists(self._key(f"{relative}/{INDEX}"))

    def write_version(self, relative: str, files: dict[str, bytes]) -> str:
        index_key = self._key(f"{relative}/{INDEX}")
        if self._exists(index_key):
            return self.uri(relative)
        for name, content in files.items():
            self._call("put_object", self._key(f"{relative}/{name}"), Body=content)
        index = json.dumps({"files": sorted(files)}).encode()
        try:
            self._call("put_object", index_key, Body=index, IfNoneMatch="*")
        except StoreError as failure:
            if failure.reason == "PreconditionFailed":
                return self.uri(relative)  # another writer published first: its version stands
            if failure.reason != "NotImplemented":
                raise
            if not self._exists(index_key):  # a server without conditional writes: check, then write
                self._call("put_object", index_key, Body=index)
        return self.uri(relative)

    def read(self, uri: str) -> bytes:
        response = self._call("get_object", self._key(self.relative(uri)))
        return response["Body"].read()

    def local_version(self, uri: str, scratch: pathlib.Path) -> pathlib.Path:
        relative = self.relative(uri)
        try:
            index = json.loads(self.read(self.uri(f"{relative}/{INDEX}")))
        except StoreError as failure:
            if failure.reason == "ObjectMissing":
                raise StoreError(f"{uri} is not a published version (no {INDEX})", reason="ObjectMissing") from None
            raise
        scratch.mkdir(parents=True, exist_ok=True)
        for name in index["files"]:
            if "/" in name or name in ("", ".", ".."):
                raise StoreError(f"{uri}: the version index names {name!r}, not a file of the version")
            (scratch / name).write_bytes(self.read(self.uri(f"{relative}/{name}")))
        return scratch

    def versions_under(self, prefix: str) -> list[tuple[str, int]]:
        """The published versions under `prefix` (their index is there), with the bytes of all their files."""
        base = self._key(prefix).rstrip("/") + "/"
        sizes: dict[str, int] = {}
        published: set[str] = set()
        token: str | None = None
        while True:
            page = list_page(self.client, self.bucket, base, token)
            for item in page.get("Contents") or []:
                directory, _, name = item["Key"].rpartition("/")
                sizes[directory] = sizes.get(directory, 0) + int(item.get("Size") or 0)
                if name == INDEX:
                    published.add(directory)
            token = page.get("NextContinuationToken")
            if not token:
                break
        start = len(self.prefix) + 1 if self.prefix else 0
        return sorted((directory[start:], sizes[directory]) for directory in published)

    def delete_version(self, relative: str) -> None:
        key = self._key(relative)
        self._call("delete_object", f"{key}/{INDEX}")  # unpublished first: readers stop seeing it
        page = list_page(self.client, self.bucket, f"{key}/", None)
        for item in page.get("Contents") or []:
            self._call("delete_object", item["Key"])

    def _exists(self, key: str) -> bool:
        try:
            self._call("head_object", key)
        except StoreError as failure:
            if failure.reason == "ObjectMissing":
                return False
            raise
        return True

    def _call(self, operation: str, key: str, **kwargs: Any) -> Any:
        return request(self.client, operation, self.bucket, key, **kwargs)


def request(client: Any, operation: str, bucket: str, key: str, **kwargs: Any) -> Any:
    """One request to object storage; every failure becomes a StoreError that names the object and the cause."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    where = f"s3://{bucket}/{key}"
    try:
        return getattr(client, operation)(Bucket=bucket, Key=key, **kwargs)
    except ClientError as error:
        raise _client_failure(error, where, bucket) from None
    except NoCredentialsError:
        raise StoreError(
            f"no credentials for {where}: give the pod a Secret with AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or a role",
            reason="AccessDenied",
        ) from None
    except BotoCoreError as error:  # connection refused, timeouts, TLS, endpoint resolution
        endpoint = getattr(client.meta, "endpoint_url", "?")
        raise StoreError(f"the object store at {endpoint} is unreachable: {error}", reason="Unreachable") from None


def list_page(client: Any, bucket: str, prefix: str, token: str | None) -> dict[str, Any]:
    """One page (up to 1,000 keys) of the objects under `prefix`, errors mapped as for every request."""
    from botocore.exceptions import BotoCoreError, ClientError

    extra = {"ContinuationToken": token} if token else {}
    try:
        return client.list_objects_v2(Bucket=bucket, Prefix=prefix, **extra)
    except ClientError as error:
        raise _client_failure(error, f"s3://{bucket}/{prefix}", bucket) from None
    except BotoCoreError as error:
        endpoint = getattr(client.meta, "endpoint_url", "?")
        raise StoreError(f"the object store at {endpoint} is unreachable: {error}", reason="Unreachable") from None


def _client_failure(error: Any, where: str, bucket: str) -> StoreError:
    details = error.response.get("Error") or {}
    code = str(details.get("Code") or "")
    status = (error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    message = details.get("Message") or code
    if code == "NoSuchBucket":
        return StoreError(f"the bucket {bucket} does not exist (reading {where})", reason="BucketMissing")
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return StoreError(f"{where} does not exist", reason="ObjectMissing")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden") or status == 403:
        return StoreError(f"access to {where} denied ({code}): check the store's credentials", reason="AccessDenied")
    if code == "PreconditionFailed" or status == 412:
        return StoreError(f"{where} exists already", reason="PreconditionFailed")
    if code == "NotImplemented" or status == 501:
        return StoreError(f"the store does not implement this request for {where}: {message}", reason="NotImplemented")
    return StoreError(f"the store answered {code or status} for {where}: {message}", reason="Unavailable")
