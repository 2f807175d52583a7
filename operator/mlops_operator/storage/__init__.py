"""The artifact store: datasets and models behind URIs (pvc://claim/path, file:///path).

Layout: `datasets/<ns>/<name>/<sha256>/…` and `models/<ns>/<model>/<run>/…`. Writes are atomic
(a temporary sibling renamed into place) and a version, once written, is never overwritten.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass


class StoreError(Exception):
    """A URI the store cannot serve, or an attempt to overwrite a stored version."""


@dataclass(frozen=True)
class ArtifactStore:
    """A store whose root URI (`pvc://mlops-artifacts` or `file:///data`) is mounted at `root`."""

    root_uri: str
    root: pathlib.Path

    @classmethod
    def from_uri(cls, root_uri: str, mount_path: str | None = None) -> ArtifactStore:
        """`file:///x` is its own mount; `pvc://claim` needs the path the claim is mounted at."""
        parsed = urllib.parse.urlparse(root_uri)
        if parsed.scheme == "file":
            return cls(root_uri.rstrip("/"), pathlib.Path(parsed.path))
        if parsed.scheme == "pvc" and parsed.netloc:
            if not mount_path:
                raise StoreError(f"{root_uri}: a pvc:// store needs the path where the claim is mounted")
            return cls(root_uri.rstrip("/"), pathlib.Path(mount_path))
        raise StoreError(f"unsupported artifact store URI {root_uri!r}: use pvc://<claim>[/path] or file:///path")

    def uri(self, relative: str) -> str:
        return f"{self.root_uri}/{relative.strip('/')}"

    def path(self, uri: str) -> pathlib.Path:
        """The local path of a URI inside this store; refuses URIs of another store or escaping it."""
        if not (uri == self.root_uri or uri.startswith(self.root_uri + "/")):
            raise StoreError(f"{uri} is not inside the store {self.root_uri}")
        relative = uri[len(self.root_uri) :].strip("/")
        path = (self.root / relative).resolve()
        if path != self.root.resolve() and self.root.resolve() not in path.parents:
            raise StoreError(f"{uri} escapes the store")
        return path

    def exists(self, relative: str) -> bool:
        return (self.root / relative).exists()

    def write_version(self, relative: str, files: dict[str, bytes]) -> str:
        """Write a directory of files atomically; an existing version is kept as it is. Returns its URI."""
        target = self.root / relative
        if target.exists():
            return self.uri(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, content in files.items():
                (staging / name).write_bytes(content)
                with open(staging / name, "rb") as handle:
                    os.fsync(handle.fileno())
            staging.chmod(0o755)
            try:
                os.rename(staging, target)  # atomic; fails if another writer got there first
            except OSError:
                if not target.exists():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.uri(relative)


def dataset_prefix(namespace: str, name: str, version: str) -> str:
    return f"datasets/{namespace}/{name}/{version.removeprefix('sha256:')}"


def model_prefix(namespace: str, model: str, run: str) -> str:
    return f"models/{namespace}/{model}/{run}"
