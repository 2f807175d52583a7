"""Writes OCI image archives (the `oci-archive` layout `ctr images import` reads) from plain files.

Used for images that need no build tool at all, such as the pod sandbox ("pause") image made of one
static binary of our own. Standard library only.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import tarfile


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_from_files(files: dict[str, tuple[bytes, int]]) -> bytes:
    """An uncompressed layer tar holding `path → (content, mode)`, reproducible (zero mtimes, root owner)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_archive(out: pathlib.Path, *, name: str, layers: list[bytes], config: dict) -> str:
    """Write an OCI archive of one linux/amd64 image named `name`; return the manifest digest."""
    blobs: dict[str, bytes] = {}
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
        "created": "1970-01-01T00:00:00Z",
        # One history entry per layer: image builders (buildah) match them against the layers.
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    blobs[_digest(config_bytes)] = config_bytes
    for layer in layers:
        blobs[_digest(layer)] = layer
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    blobs[_digest(manifest_bytes)] = manifest_bytes
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": _digest(manifest_bytes),
                "size": len(manifest_bytes),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
            }
        ],
    }
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w") as tar:
        entries = {
            "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
            "index.json": json.dumps(index).encode(),
        }
        entries.update({f"blobs/sha256/{d.split(':')[1]}": b for d, b in blobs.items()})
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return _digest(manifest_bytes)
