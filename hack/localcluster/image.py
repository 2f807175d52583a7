#!/usr/bin/env python3
"""Builds the project image from operator/Dockerfile without Docker or a registry, and loads it into the node.

1. A base image from `debootstrap --variant=minbase bookworm` (the equivalent of debian:bookworm-slim),
   packed as an OCI archive and pulled into buildah's own storage (kept in the cache).
2. `buildah bud` builds operator/Dockerfile on that base; the host's CA bundle is mounted for the build
   stage only (PIP_CERT), so it is never baked into the image.
3. The image is saved as an OCI archive keyed by a hash of its inputs and imported into the node's
   containerd as `mlops-operator:dev`. Nothing changed → nothing is rebuilt or re-imported.

`--variant NAME` builds the same Dockerfile with the lock requirements-NAME.lock (build argument LOCK;
hack/lock-variants/NAME.txt says what it overrides) as `mlops-operator:dev-NAME`, cached the same way.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import cluster  # noqa: E402
import ociimage  # noqa: E402

REPO = cluster.REPO
CACHE = pathlib.Path(
    os.environ.get(
        "LOCALCLUSTER_CACHE",
        pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
        / "mlops-operator"
        / "localcluster",
    )
)
IMAGES = CACHE / "images"
BUILDAH = ["buildah", "--root", str(CACHE / "buildah" / "storage"), "--runroot", str(CACHE / "buildah" / "run")]
BASE_NAME = "localhost/debian:bookworm-minbase"
IMAGE_NAME = "docker.io/library/mlops-operator:dev"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
INPUTS = ["operator/Dockerfile", "requirements.lock", "pyproject.toml", "README.md", "operator/mlops_operator"]


def variants() -> list[str]:
    return sorted(p.stem for p in (REPO / "hack/lock-variants").glob("*.txt"))


def lock_of(variant: str | None) -> str:
    return f"requirements-{variant}.lock" if variant else "requirements.lock"


def image_name(variant: str | None) -> str:
    return f"{IMAGE_NAME}-{variant}" if variant else IMAGE_NAME


def archive_prefix(variant: str | None) -> str:
    return f"mlops-operator-{variant}-" if variant else "mlops-operator-"


_started = time.monotonic()


def log(message: str) -> None:
    print(f"[image {time.monotonic() - _started:5.1f}s] {message}", file=sys.stderr, flush=True)


def inputs_hash(variant: str | None = None) -> str:
    """sha256 over the paths and contents of everything the Dockerfile copies."""
    digest = hashlib.sha256()
    for entry in [lock_of(variant) if e == "requirements.lock" else e for e in INPUTS]:
        path = REPO / entry
        files = [path]
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in files:
            digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _buildah_has(name: str) -> bool:
    return subprocess.run([*BUILDAH, "inspect", "--type", "image", name], capture_output=True).returncode == 0


def ensure_base() -> None:
    """The debootstrap base image in buildah's storage."""
    if _buildah_has(BASE_NAME):
        return
    archive = IMAGES / "debian-bookworm-minbase.oci.tar"
    if not archive.exists():
        IMAGES.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            rootfs = pathlib.Path(tmp) / "rootfs"
            log(f"debootstrap --variant=minbase bookworm from {DEBIAN_MIRROR} ...")
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
                for item in (rootfs / leftover).glob("*"):
                    if item.is_file():
                        item.unlink()
            layer = pathlib.Path(tmp) / "layer.tar"
            subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(layer), "."], check=True)
            config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]}
            ociimage.write_archive(archive, name=BASE_NAME, layers=[layer.read_bytes()], config=config)
        log(f"base image archive: {archive}")
    subprocess.run([*BUILDAH, "pull", "--quiet", f"oci-archive:{archive}"], check=True, capture_output=True)
    subprocess.run([*BUILDAH, "tag", _buildah_image_id(f"oci-archive:{archive}"), BASE_NAME], check=False)
    if not _buildah_has(BASE_NAME):
        out = subprocess.run([*BUILDAH, "images", "--format", "{{.ID}} {{.Name}}"], capture_output=True, text=True)
        raise SystemExit(f"could not load the base image into buildah:\n{out.stdout}")


def _buildah_image_id(reference: str) -> str:
    out = subprocess.run([*BUILDAH, "images", "-q", "--noheading"], capture_output=True, text=True)
    return out.stdout.split()[0] if out.stdout.split() else reference


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the lock `name` in the image cache: image.py run twice at once (`make` builds the image beside the
    binaries, a test loads a variant in the background) builds and imports each image once."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with open(IMAGES / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(variant: str | None = None) -> pathlib.Path:
    """The OCI archive of the project image (or a variant) for the current inputs (built only if missing)."""
    archive = IMAGES / f"{archive_prefix(variant)}{inputs_hash(variant)}.oci.tar"
    if archive.exists():
        return archive
    with locked("build"):  # one buildah at a time: the images share the base and buildah's storage
        if not archive.exists():
            _build(archive, variant)
    return archive


def _build(archive: pathlib.Path, variant: str | None) -> None:
    name = image_name(variant)
    ensure_base()
    log("buildah bud -f operator/Dockerfile ...")
    ca_bundle = pathlib.Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    extra = []
    if ca_bundle.exists():
        extra = ["--volume", f"{ca_bundle}:/run/build-ca.crt:ro", "--build-arg", "PIP_CERT=/run/build-ca.crt"]
    subprocess.run(
        [
            *BUILDAH,
            "bud",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--layers",
            "--quiet",
            "--build-arg",
            f"BASE_IMAGE={BASE_NAME}",
            "--build-arg",
            f"LOCK={lock_of(variant)}",
            *extra,
            "-f",
            str(REPO / "operator/Dockerfile"),
            "-t",
            name,
            str(REPO),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    subprocess.run([*BUILDAH, "push", "--quiet", name, f"oci-archive:{tmp}:{name}"], check=True)
    for old in IMAGES.glob(f"{archive_prefix(variant)}*.oci.tar"):
        if old.name.removeprefix(archive_prefix(variant)).count("-") == 0:  # this variant's, not another's
            old.unlink()
    tmp.replace(archive)
    log(f"built {archive.name}")


def load(archive: pathlib.Path, variant: str | None = None) -> None:
    """Import the archive into every node's containerd unless that exact build is there already; the nodes
    import at once."""
    running = [n for n in cluster.nodes() if n.socket.exists()]
    if not running:
        raise SystemExit("the local cluster's node is not running: make cluster-up first")
    with locked(archive_prefix(variant).rstrip("-")), concurrent.futures.ThreadPoolExecutor(len(running)) as pool:
        for imported in [pool.submit(_load_into, node, archive, variant) for node in running]:
            imported.result()


def _load_into(node: cluster.Node, archive: pathlib.Path, variant: str | None) -> None:
    name = image_name(variant)
    ctr = [shutil.which("ctr") or "ctr", "--address", str(node.socket), "-n", "k8s.io"]
    build_label = f"mlops.dev/build={archive.stem}"
    listed = subprocess.run(
        [*ctr, "images", "list", f'labels."mlops.dev/build"=={archive.stem}'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if name in listed:
        log(f"{name} is up to date in {node.name}")
        return
    subprocess.run([*ctr, "images", "import", str(archive)], check=True, capture_output=True)
    subprocess.run([*ctr, "images", "label", name, build_label], check=True, capture_output=True)
    log(f"imported {name} into {node.name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "load"], help="build: only the archive; load: build and import")
    parser.add_argument("--variant", choices=variants(), help="an image variant (hack/lock-variants/)")
    args = parser.parse_args()
    archive = build(args.variant)
    if args.command == "load":
        load(archive, args.variant)
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
