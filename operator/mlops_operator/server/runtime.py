"""Loading the model a server serves: checksums first, then metadata, trusted-type skops load, the drift profile.

Nothing is parsed before it is verified: `read_model_files` checks MANIFEST.json against the sha256
the TrainingRun recorded and every file against the manifest, and everything below reads those bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib

from ..modelformat.files import (
    CALIBRATION_FILE,
    METADATA_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    load_trusted,
    read_model_files,
)
from ..storage import ArtifactStore, StoreError
from .dataplane import LoadedModel

log = logging.getLogger("mlops_operator.server")


def _store(uri: str) -> ArtifactStore:
    """The store a URI is in: a file:// URI is its own; otherwise the one MLOPS_STORE_URI configures
    (s3://, or pvc:// mounted at MLOPS_STORE_PATH)."""
    if uri.startswith("file://"):
        return ArtifactStore.from_uri(uri)
    return ArtifactStore.from_uri(os.environ.get("MLOPS_STORE_URI", ""), os.environ.get("MLOPS_STORE_PATH"))


def model_directory(model_uri: str) -> pathlib.Path:
    """A local directory with the version's files: the mounted store's own, or downloaded from object
    storage into MLOPS_MODEL_DIR (an emptyDir) — verified by `read_model_files` before anything loads."""
    scratch = (
        pathlib.Path(os.environ.get("MLOPS_MODEL_DIR", "/tmp/models"))
        / hashlib.sha256(model_uri.encode()).hexdigest()[:16]
    )
    return _store(model_uri).local_version(model_uri, scratch)


def load(model_uri: str, *, expected_sha256: str | None) -> tuple[LoadedModel, dict | None]:
    """The model and its dataset profile; raises (ModelIntegrityError, StoreError, ...) if it must not be served."""
    directory = model_directory(model_uri)
    files = read_model_files(directory, expected_sha256=expected_sha256)
    metadata = json.loads(files[METADATA_FILE])
    model = load_trusted(files[MODEL_FILE])
    if files.covered:
        profile_bytes = files.get(PROFILE_FILE)
        profile = json.loads(profile_bytes) if profile_bytes is not None else None
        if profile is None:
            log.warning("the model version has no dataset profile: no drift metrics")
        if expected_sha256 is None:
            log.warning("no --sha256 given: the files match their MANIFEST.json, but nothing checks the manifest")
    else:
        log.warning(
            "%s has no MANIFEST.json (stored by an older trainer): only model.skops is covered by the recorded "
            "sha256, metadata.json and the dataset profile are not; retrain to cover them",
            model_uri,
        )
        profile = _uncovered_profile((metadata.get("dataset") or {}).get("uri", ""))
    loaded = LoadedModel(
        name=metadata["model"],
        version=metadata["version"],
        model=model,
        features=list(metadata["features"]),
        classify=metadata.get("task") == "classification",
        classes=list(metadata.get("classes") or []),
        calibration=json.loads(files[CALIBRATION_FILE]) if files.get(CALIBRATION_FILE) is not None else None,
    )
    return loaded, profile


def _uncovered_profile(dataset_uri: str) -> dict | None:
    """The profile beside the dataset snapshot, for a model version stored before MANIFEST.json."""
    if not dataset_uri.endswith("/data.csv"):
        return None
    try:
        profile_uri = dataset_uri.removesuffix("data.csv") + PROFILE_FILE
        return json.loads(_store(profile_uri).read(profile_uri))
    except (OSError, ValueError, StoreError) as error:
        log.warning("no dataset profile for drift (%s): %s", dataset_uri, error)
        return None
