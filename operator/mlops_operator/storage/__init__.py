"""The artifact store: datasets and models behind URIs (s3://bucket/prefix, pvc://claim, file:///path).

Layout under the store's root: `datasets/<ns>/<name>/<sha256>/…` and `models/<ns>/<model>/<run>-<uid>/…`
(the run's uid: a TrainingRun re-created under the same name writes a version of its own; versions
stored before the uid was part of the key are `models/<ns>/<model>/<run>/…`).
A version is a directory of files written once: readers see all of it or none of it, and once
written it is never overwritten, not even by a late second writer of the same version (a replaced pod
of one Job). `local.py` keeps versions on a mounted file system (a temporary sibling renamed into place:
the rename fails onto a version already there); `s3.py` in object storage (each writer's files under a
key of its own, then an index naming them, written only if the version has none: readers find the
files through the index).
"""

from __future__ import annotations

import pathlib
import urllib.parse
from abc import ABC, abstractmethod


class StoreError(Exception):
    """A URI the store cannot serve, a version that is not there, or the store refusing or unreachable;
    `reason` says which, in one word status can carry (ObjectMissing, AccessDenied, BucketMissing,
    Unreachable, Unavailable, InvalidUri, ...)."""

    def __init__(self, message: str, *, reason: str = "InvalidUri") -> None:
        super().__init__(message)
        self.reason = reason


class ArtifactStore(ABC):
    """Where versions live, behind URIs that start with `root_uri`."""

    root_uri: str

    @staticmethod
    def from_uri(root_uri: str, mount_path: str | None = None) -> ArtifactStore:
        """`s3://bucket[/prefix]` (configured from the environment, see s3.py), `file:///x`, or
        `pvc://claim` mounted at `mount_path`."""
        parsed = urllib.parse.urlparse(root_uri)
        if parsed.scheme == "s3":
            from .s3 import S3Store

            return S3Store.from_uri(root_uri)
        from .local import LocalStore

        if parsed.scheme == "file":
            return LocalStore(root_uri.rstrip("/"), pathlib.Path(parsed.path))
        if parsed.scheme == "pvc" and parsed.netloc:
            if not mount_path:
                raise StoreError(f"{root_uri}: a pvc:// store needs the path where the claim is mounted")
            return LocalStore(root_uri.rstrip("/"), pathlib.Path(mount_path))
        raise StoreError(
            f"unsupported artifact store URI {root_uri!r}: use s3://<bucket>[/prefix], pvc://<claim> or file:///path"
        )

    def uri(self, relative: str) -> str:
        return f"{self.root_uri}/{relative.strip('/')}"

    def relative(self, uri: str) -> str:
        """The path of a URI inside this store; refuses URIs of another store or escaping it."""
        if not (uri == self.root_uri or uri.startswith(self.root_uri + "/")):
            raise StoreError(f"{uri} is not inside the store {self.root_uri}")
        relative = uri[len(self.root_uri) :].strip("/")
        if any(part in ("..", ".") for part in relative.split("/")):
            raise StoreError(f"{uri} escapes the store")
        return relative

    @abstractmethod
    def has_version(self, relative: str) -> bool:
        """Whether the version at `relative` is written (all of it)."""

    @abstractmethod
    def write_version(self, relative: str, files: dict[str, bytes]) -> str:
        """Write a version's files so readers see all or none; an existing version is kept as it is.
        Returns its URI."""

    @abstractmethod
    def read(self, uri: str) -> bytes:
        """One file of a written version, by its URI (`<version uri>/<name>`): the file the version holds,
        wherever the store keeps it (never build a store's own paths or keys from such a URI)."""

    @abstractmethod
    def local_version(self, uri: str, scratch: pathlib.Path) -> pathlib.Path:
        """A local directory holding the version's files: the store's own (mounted), or a copy
        downloaded into `scratch`."""

    @abstractmethod
    def versions_under(self, prefix: str) -> list[tuple[str, int]]:
        """(relative path, bytes) of every written version whose path starts with `prefix/`, sorted by path."""

    @abstractmethod
    def delete_version(self, relative: str) -> None:
        """Remove a written version (readers stop seeing it first); one already gone is success. Only for
        data the operator's own components keep with a retention (production captures), never models or
        datasets."""


def dataset_prefix(namespace: str, name: str, version: str) -> str:
    return f"datasets/{namespace}/{name}/{version.removeprefix('sha256:')}"


def model_prefix(namespace: str, model: str, run: str, uid: str | None = None) -> str:
    """Where the model version of TrainingRun `run` (the object with that `uid`) is stored: keyed by what
    produced it, so that a new run of the same name never finds, and reports, another run's model."""
    return f"models/{namespace}/{model}/{run}-{uid}" if uid else f"models/{namespace}/{model}/{run}"
