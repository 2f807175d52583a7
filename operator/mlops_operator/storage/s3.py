"""Versions in S3-compatible object storage, through boto3.

Configured from the environment of the pod (the chart and the operator set it for its Jobs and
servers): `MLOPS_STORE_URI=s3://bucket[/prefix]`; boto3's own `AWS_ENDPOINT_URL`, `AWS_REGION`,
`AWS_CA_BUNDLE` and credentials (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from a Secret, or the
pod's web identity or instance role); `MLOPS_S3_ADDRESSING` = `path`, `virtual` or `auto` (default).

Write-then-publish: each writer of a version puts its files under a key of its own,
`<version>/<writer>/<name>` (`<writer>` a random uuid4 hex), then the version's index
`<version>/.published`, `{"files": [...], "dir": "<writer>"}`, with `If-None-Match: *`: the first writer
to publish wins, and a published version's files are never written again, whatever a late writer (a
replaced pod of the same Job) does. Readers find every file through the index: a version without one
does not exist yet, and files a losing writer left beside the winner's are never read (the loser removes
its own directory, best effort). An index without "dir" (versions written before writers had keys of
their own) names files directly under `<version>/`. What a version's files hold is checked by the
readers themselves (dataset sha256, the model's MANIFEST.json).
"""

from __future__ import annotations

import json
import os
import pathlib
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import ArtifactStore, StoreError

INDEX = ".published"
MAX_CACHED_INDEXES = 256  # per store object: the indexes of the versions read last


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
class Published:
    """A published version as its index says: the names of its files, and the directory (relative to the
    store's root) they are in: `<version>/<writer>`, or `<version>` for versions written before writers
    had keys of their own."""

    files: tuple[str, ...]
    directory: str


def plain_name(name: object) -> bool:
    """A name of one file (or one writer's directory) of a version: no path, nothing outside it."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name


@dataclass(frozen=True)
class S3Store(ArtifactStore):
    root_uri: str  # s3://bucket[/prefix]
    bucket: str
    prefix: str
    client: Any = field(repr=False, compare=False)
    # The indexes read (relative version path -> Published): a published version's index never changes
    # until the version is deleted.
    _indexes: dict[str, Published] = field(default_factory=dict, init=False, repr=False, compare=False)

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
        """The files under a key of this writer's own, then the index naming them if the version has none:
        a late writer never touches the files of the version another writer published."""
        if not all(plain_name(name) for name in files):
            raise StoreError(f"{self.uri(relative)}: a version holds files by plain names, not {sorted(files)}")
        if self._exists(self._key(f"{relative}/{INDEX}")):
            return self.uri(relative)
        writer = uuid.uuid4().hex
        try:
            for name, content in files.items():
                self._call("put_object", self._key(f"{relative}/{writer}/{name}"), Body=content)
        except StoreError:
            self._remove_own(relative, writer, files)
            raise
        if not self._publish(relative, writer, sorted(files)):
            self._remove_own(relative, writer, files)  # another writer published first: its version stands
        return self.uri(relative)

    def _publish(self, relative: str, writer: str, names: list[str]) -> bool:
        """Put the index naming `writer`'s files unless the version has one; False if it names another
        writer's files (this writer lost)."""
        index_key = self._key(f"{relative}/{INDEX}")
        index = json.dumps({"files": names, "dir": writer}).encode()
        try:
            self._call("put_object", index_key, Body=index, IfNoneMatch="*")
            return True
        except StoreError as failure:
            if failure.reason == "PreconditionFailed":
                return not self._lost(relative, writer)
            if failure.reason != "NotImplemented":
                raise
        if self._exists(index_key):  # a server without conditional writes: check, then write
            return not self._lost(relative, writer)
        self._call("put_object", index_key, Body=index)
        return True

    def _lost(self, relative: str, writer: str) -> bool:
        """Whether the version's index names another writer's files. A conditional put retried after its
        first attempt was written is refused too: then the index names this writer, which has won. In
        doubt (the index unreadable), not lost: nothing is removed."""
        try:
            return self._read_index(relative).directory != f"{relative}/{writer}"
        except StoreError:
            return False

    def _remove_own(self, relative: str, writer: str, files: dict[str, bytes]) -> None:
        """Best effort: this writer's own files of a version it did not publish (never read either way)."""
        for name in files:
            try:
                self._call("delete_object", self._key(f"{relative}/{writer}/{name}"))
            except StoreError:
                return

    def read(self, uri: str) -> bytes:
        """One file of a published version (`<version uri>/<name>`), where the version's index says it is."""
        version, _, name = self.relative(uri).rpartition("/")
        published = self._published(version)
        if name not in published.files:
            raise StoreError(f"{uri} does not exist: the version has no file {name!r}", reason="ObjectMissing")
        try:
            return self._get(f"{published.directory}/{name}")
        except StoreError as failure:
            if failure.reason == "ObjectMissing":  # deleted since the index was read: the next read reads it again
                self._indexes.pop(version, None)
            raise

    def local_version(self, uri: str, scratch: pathlib.Path) -> pathlib.Path:
        published = self._published(self.relative(uri))
        scratch.mkdir(parents=True, exist_ok=True)
        for name in published.files:
            (scratch / name).write_bytes(self._get(f"{published.directory}/{name}"))
        return scratch

    def _published(self, relative: str) -> Published:
        """The index of the published version at `relative`, read once per store object; ObjectMissing if
        the version is not published."""
        cached = self._indexes.get(relative)
        if cached is not None:
            return cached
        try:
            published = self._read_index(relative)
        except StoreError as failure:
            if failure.reason == "ObjectMissing":
                message = f"{self.uri(relative)} is not a published version (no {INDEX})"
                raise StoreError(message, reason="ObjectMissing") from None
            raise
        if len(self._indexes) >= MAX_CACHED_INDEXES:
            self._indexes.clear()
        self._indexes[relative] = published
        return published

    def _read_index(self, relative: str) -> Published:
        uri = self.uri(relative)
        try:
            index = json.loads(self._get(f"{relative}/{INDEX}"))
            names, writer = index["files"], index.get("dir")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StoreError(f"{uri}: the version index {INDEX} is not a list of its files") from None
        if not isinstance(names, list) or not all(plain_name(name) for name in names):
            raise StoreError(f"{uri}: the version index names {names!r}, not files of the version")
        if writer is not None and not plain_name(writer):
            raise StoreError(f"{uri}: the version index names {writer!r}, not a directory of the version")
        return Published(tuple(names), f"{relative}/{writer}" if writer else relative)

    def versions_under(self, prefix: str) -> list[tuple[str, int]]:
        """The published versions under `prefix` (their index is there), each with the bytes stored under it
        (the index, the files it names, any a losing writer left): what `delete_version` frees."""
        base = self._key(prefix).rstrip("/") + "/"
        sizes: dict[str, int] = {}  # bytes by directory
        published: set[str] = set()
        for item in self._objects(base):
            directory, _, name = item["Key"].rpartition("/")
            sizes[directory] = sizes.get(directory, 0) + int(item.get("Size") or 0)
            if name == INDEX:
                published.add(directory)
        totals = dict.fromkeys(published, 0)
        for directory, size in sizes.items():
            version = directory
            while version and version not in published:  # a writer's directory: the version above it
                version = version.rpartition("/")[0]
            if version:
                totals[version] += size
        start = len(self.prefix) + 1 if self.prefix else 0
        return sorted((version[start:], size) for version, size in totals.items())

    def delete_version(self, relative: str) -> None:
        """The index first (readers stop seeing the version), then every object under it: every writer's."""
        key = self._key(relative)
        self._indexes.pop(relative.strip("/"), None)
        self._call("delete_object", f"{key}/{INDEX}")
        for item in list(self._objects(f"{key}/")):
            self._call("delete_object", item["Key"])

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under `prefix`, page after page."""
        token: str | None = None
        while True:
            page = list_page(self.client, self.bucket, prefix, token)
            yield from page.get("Contents") or []
            token = page.get("NextContinuationToken")
            if not token:
                return

    def _get(self, relative: str) -> bytes:
        return self._call("get_object", self._key(relative))["Body"].read()

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
