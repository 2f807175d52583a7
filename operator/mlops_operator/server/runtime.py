"""Loading the model a server serves: checksums first, then metadata, trusted-type skops load, the replay of
its golden rows (modelformat/replay.py), the drift profile.

Nothing is parsed before it is verified: `read_model_files` checks MANIFEST.json against the sha256
the TrainingRun recorded and every file against the manifest, and everything below reads those bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
from typing import Any

from ..modelformat.environment import current_environment
from ..modelformat.files import (
    CALIBRATION_FILE,
    GOLDEN_FILE,
    METADATA_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    load_trusted,
    read_model_files,
)
from ..modelformat.replay import Verdict, environment_differences, replay, verdict
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


class ModelNotReproducible(Exception):
    """The version would not predict here as it did when trained (or strict reproducibility and other libraries)."""


def load(
    model_uri: str, *, expected_sha256: str | None, reproducibility: str = "replay"
) -> tuple[LoadedModel, dict | None]:
    """The model and its dataset profile, once its golden rows are predicted as in training (`reproducibility`:
    strict | replay | off, modelformat/replay.py); raises (ModelIntegrityError, ModelNotReproducible,
    StoreError, ...) if it must not be served."""
    directory = model_directory(model_uri)
    files = read_model_files(directory, expected_sha256=expected_sha256)
    metadata = json.loads(files[METADATA_FILE])
    model = load_trusted(files[MODEL_FILE])
    checked = check_reproducibility(model, metadata, files.get(GOLDEN_FILE), policy=reproducibility)
    if not checked.serve:
        raise ModelNotReproducible(f"{checked.reason}: {checked.message}")
    log.info("%s: %s", checked.reason, checked.message)
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
        reproducibility=checked.reason,
    )
    return loaded, profile


def check_reproducibility(model: Any, metadata: dict, golden: bytes | None, *, policy: str) -> Verdict:
    """Compare the libraries here with those that trained the version and replay its golden rows."""
    recorded = metadata.get("environment") or {"scikitLearn": metadata.get("sklearnVersion") or ""}
    differences = environment_differences(recorded, current_environment())
    result = replay(json.loads(golden), model) if golden is not None and policy != "off" else None
    return verdict(policy, differences, result)


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
