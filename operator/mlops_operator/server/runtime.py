"""Loading the model a server serves: metadata, sha256 check, trusted-type skops load, the drift profile."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import urllib.parse

from ..storage import ArtifactStore
from ..trainer.modelio import load_model
from .app import LoadedModel

log = logging.getLogger("mlops_operator.server")


def local_path(uri: str) -> pathlib.Path:
    """The path of a file:// URI, or of a pvc:// URI inside the store mounted at MLOPS_STORE_PATH."""
    if uri.startswith("file://"):
        return pathlib.Path(urllib.parse.urlparse(uri).path)
    store = ArtifactStore.from_uri(os.environ.get("MLOPS_STORE_URI", ""), os.environ.get("MLOPS_STORE_PATH"))
    return store.path(uri)


def load(model_uri: str, *, expected_sha256: str | None) -> tuple[LoadedModel, dict | None]:
    """The model and its dataset profile; raises (ModelIntegrityError, OSError, ...) if it must not be served."""
    directory = local_path(model_uri)
    metadata = json.loads((directory / "metadata.json").read_text())
    data = (directory / "model.skops").read_bytes()
    model = load_model(data, expected_sha256=expected_sha256 or metadata["sha256"])
    profile = None
    dataset_uri = (metadata.get("dataset") or {}).get("uri", "")
    if dataset_uri.endswith("/data.csv"):
        try:
            profile = json.loads(local_path(dataset_uri.removesuffix("data.csv") + "profile.json").read_text())
        except (OSError, ValueError) as error:
            log.warning("no dataset profile for drift (%s): %s", dataset_uri, error)
    loaded = LoadedModel(
        name=metadata["model"],
        version=metadata["version"],
        model=model,
        features=list(metadata["features"]),
        classify=metadata.get("task") == "classification",
    )
    return loaded, profile
