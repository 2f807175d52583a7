"""Versions on a file system the pod mounts (a PersistentVolumeClaim, or a plain directory)."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from dataclasses import dataclass

from . import ArtifactStore, StoreError


@dataclass(frozen=True)
class LocalStore(ArtifactStore):
    """A store whose root URI (`pvc://mlops-artifacts` or `file:///data`) is mounted at `root`."""

    root_uri: str
    root: pathlib.Path

    def path(self, uri: str) -> pathlib.Path:
        """The local path of a URI inside this store; refuses URIs of another store or escaping it."""
        path = (self.root / self.relative(uri)).resolve()
        if path != self.root.resolve() and self.root.resolve() not in path.parents:
            raise StoreError(f"{uri} escapes the store")
        return path

    def has_version(self, relative: str) -> bool:
        return (self.root / relative).is_dir()  # renamed into place whole

    def read(self, uri: str) -> bytes:
        try:
            return self.path(uri).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{uri} does not exist", reason="ObjectMissing") from None
        except OSError as error:
            raise StoreError(f"cannot read {uri}: {error.strerror or error}", reason="Unavailable") from None

    def local_version(self, uri: str, scratch: pathlib.Path) -> pathlib.Path:
        directory = self.path(uri)
        if not directory.is_dir():
            raise StoreError(f"{uri} is not a stored version (no directory {directory})", reason="ObjectMissing")
        return directory

    def write_version(self, relative: str, files: dict[str, bytes]) -> str:
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

    def versions_under(self, prefix: str) -> list[tuple[str, int]]:
        base = self.root / prefix.strip("/")
        if not base.is_dir():
            return []
        found = []
        for directory in base.rglob("*"):
            if (
                directory.is_dir()
                and not directory.name.startswith(".")
                and any(p.is_file() for p in directory.iterdir())
            ):
                size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
                found.append((str(directory.relative_to(self.root)), size))
        return sorted(found)

    def delete_version(self, relative: str) -> None:
        target = self.path(self.uri(relative))
        if target.exists():  # renamed aside first: a reader sees all of the version or none of it
            aside = target.with_name(f".{target.name}.deleted")
            os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
