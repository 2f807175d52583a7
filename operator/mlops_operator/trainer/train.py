"""One training: load the pinned dataset version, split, fit, evaluate, store the model with its metadata.

The stored version holds everything the server will load — the model, its metadata, the dataset's
profile, for a classifier the calibration of its label-free accuracy estimate (calibration.py) — and
a MANIFEST.json of their sha256; the reported `sha256` is the manifest's (modelformat.files).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pathlib
import time
from typing import Any

import numpy as np

from ..api.estimators import task_of
from ..api.trainingrun import ChampionScores, TrainingEnvironment
from ..data.table import TableError, parse_csv
from ..modelformat.calibration import fit_calibration, prediction_confidence
from ..modelformat.environment import current_environment
from ..modelformat.files import (
    CALIBRATION_FILE,
    GOLDEN_FILE,
    MANIFEST,
    METADATA_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    dump_model,
    load_model,
    manifest_bytes,
    read_model_files,
    sha256_hex,
)
from ..modelformat.replay import golden_set
from ..resources.results import ChampionRef, TrainingRequest, TrainingResult
from ..storage import ArtifactStore, StoreError, model_prefix
from .metrics import evaluate
from .pipeline import PermanentTrainingError, build_pipeline

PRIMARY_METRIC = {"classification": "accuracy", "regression": "rmse"}


def load_dataset(store: ArtifactStore, *, snapshot_uri: str, version: str, target: str, task: str):
    """Features, labels and feature names of a stored dataset version, after checking its sha256."""
    data = store.read(snapshot_uri)
    if "sha256:" + hashlib.sha256(data).hexdigest() != version:
        raise PermanentTrainingError(f"the snapshot at {snapshot_uri} does not match dataset version {version}")
    try:
        table = parse_csv(data)
    except TableError as error:
        raise PermanentTrainingError(f"the snapshot at {snapshot_uri} is not a CSV table: {error}") from None
    features = [h for h in table.header if h != target]
    try:
        x = table.numeric_matrix(features)
        y = table.numeric_matrix([target])[:, 0]
    except TableError as error:
        raise PermanentTrainingError(f"scikit-learn estimators need numeric columns: {error}") from None
    if task == "classification":
        y = y.astype(np.int64) if np.all(np.mod(y, 1) == 0) else y.astype(str)
    return x, y, features


def run_training(
    request: TrainingRequest, store: ArtifactStore, *, snapshots: ArtifactStore | None = None
) -> TrainingResult:
    """Train on the pinned dataset version and store the model in `store`. The snapshot is read from
    `snapshots` when it lives in another store (one the namespace used before it moved)."""
    snapshots = snapshots or store
    spec, dataset = request.spec, request.dataset
    task = task_of(spec.model.estimator)
    prefix = model_prefix(request.namespace, spec.model.name, request.run, request.run_uid)
    if store.has_version(prefix):  # a retried pod of this run (same uid) after the model was stored: report it
        return _stored_result(store, prefix, task)

    from sklearn.model_selection import train_test_split

    x, y, features = load_dataset(
        snapshots, snapshot_uri=dataset.snapshot_uri, version=dataset.version, target=dataset.target, task=task
    )
    stratify = None
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        stratify = y if counts.min() >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=spec.evaluation.test_size, random_state=spec.evaluation.seed, stratify=stratify
    )
    pipeline = build_pipeline(
        spec.model.estimator,
        params=spec.model.params,
        preprocessing=list(spec.model.preprocessing),
        seed=spec.evaluation.seed,
    )
    started = time.monotonic()
    try:
        pipeline.fit(x_train, y_train)
    except (ValueError, TypeError) as error:  # scikit-learn's parameter validation and data checks
        raise PermanentTrainingError(f"fit failed: {type(error).__name__}: {error}") from None
    fit_seconds = round(time.monotonic() - started, 3)
    metrics = evaluate(pipeline, x_test, y_test, task=task, wanted=list(spec.evaluation.metrics))
    champion = score_champion(request.champion, store, x_test, y_test, task=task, wanted=list(spec.evaluation.metrics))
    calibration = held_out_calibration(pipeline, x_test, y_test) if task == "classification" else None
    model_bytes = dump_model(pipeline)

    import sklearn

    metadata = {
        "model": spec.model.name,
        "version": request.run,
        "trainingRunUid": request.run_uid,
        "namespace": request.namespace,
        "sha256": sha256_hex(model_bytes),
        "format": "skops",
        "sklearnVersion": sklearn.__version__,
        "environment": current_environment(),
        "estimator": spec.model.estimator,
        "params": spec.model.params,
        "preprocessing": list(spec.model.preprocessing),
        "task": task,
        "dataset": {"name": dataset.name, "version": dataset.version, "uri": dataset.snapshot_uri},
        "features": features,
        "inputSignature": input_signature(features, x_train),
        "classes": [c.item() if hasattr(c, "item") else c for c in getattr(pipeline, "classes_", [])],
        "metrics": metrics,
        "trainRows": len(y_train),
        "testRows": len(y_test),
        "fitSeconds": fit_seconds,
        "calibrated": calibration is not None,
        **({"champion": champion.model_dump(mode="json", by_alias=True, exclude_none=True)} if champion else {}),
        "createdAt": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    files = {MODEL_FILE: model_bytes, METADATA_FILE: json.dumps(metadata, indent=1).encode()}
    profile = _dataset_profile(snapshots, dataset.snapshot_uri)
    if profile is not None:
        files[PROFILE_FILE] = profile
    if calibration is not None:
        files[CALIBRATION_FILE] = json.dumps(calibration, indent=1).encode()
    if spec.evaluation.golden_rows:
        files[GOLDEN_FILE] = golden_set(pipeline, x_test, max_rows=spec.evaluation.golden_rows)
    files[MANIFEST] = manifest_bytes(files)
    store.write_version(prefix, files)
    return _stored_result(store, prefix, task)  # what is stored: another pod of this run may have won the race


def held_out_calibration(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any] | None:
    """The calibration of a classifier's label-free accuracy estimate, learned on the held-out split.

    The held-out rows are the only ones whose labels the model never saw, so how often it was right there,
    at each confidence, is what live traffic can be judged by. None: no probabilities, or no honest fit.
    """
    confidence = prediction_confidence(model, x_test)
    if confidence is None:
        return None
    return fit_calibration(confidence, model.predict(x_test) == y_test)


def _dataset_profile(store: ArtifactStore, snapshot_uri: str) -> bytes | None:
    """The profile stored beside the dataset snapshot (`…/data.csv` → `…/profile.json`), if there is one."""
    if not snapshot_uri.endswith("/data.csv"):
        return None
    try:
        return store.read(snapshot_uri.removesuffix("data.csv") + PROFILE_FILE)
    except StoreError as error:
        if error.reason == "ObjectMissing":
            return None
        raise


def score_champion(
    champion: ChampionRef | None,
    store: ArtifactStore,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    task: str,
    wanted: list[str],
) -> ChampionScores | None:
    """The champion's metrics on this run's held-out rows, so that `beatChampion` compares the two models on
    the same rows whatever data the champion was trained and scored on; or why it could not be scored (the
    operator then has no comparable evidence). `champion`: the model as the operator saw it."""
    if champion is None:
        return None
    import tempfile

    try:
        with tempfile.TemporaryDirectory(dir="/tmp" if pathlib.Path("/tmp").is_dir() else None) as scratch:
            directory = store.local_version(champion.model_uri, pathlib.Path(scratch))
            files = read_model_files(directory, expected_sha256=champion.sha256)
            model = load_model(files[MODEL_FILE], expected_sha256=sha256_hex(files[MODEL_FILE]))
        taken = getattr(model, "n_features_in_", x_test.shape[1])
        if taken != x_test.shape[1]:
            wrong = f"it takes {taken} features, this run's rows have {x_test.shape[1]}"
            return ChampionScores(name=champion.name, error=wrong)
        return ChampionScores(name=champion.name, metrics=evaluate(model, x_test, y_test, task=task, wanted=wanted))
    except Exception as error:  # any failure is missing evidence, reported, never a failed training
        return ChampionScores(name=champion.name, error=f"{type(error).__name__}: {str(error)[:300]}")


def input_signature(features: list[str], x: np.ndarray) -> dict[str, Any]:
    """What a client must send: the feature columns, in order, with their types. A model whose signature
    differs from the one it replaces takes other requests: its canary is held (rollout.canary)."""
    return {"features": list(features), "types": [str(x.dtype)] * len(features)}


def signature_sha256(signature: dict[str, Any]) -> str:
    """The digest of a signature that status carries (the signature itself is in metadata.json)."""
    return hashlib.sha256(json.dumps(signature, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _stored_result(store: ArtifactStore, prefix: str, task: str) -> TrainingResult:
    metadata = json.loads(store.read(store.uri(f"{prefix}/{METADATA_FILE}")))
    try:
        manifest = store.read(store.uri(f"{prefix}/{MANIFEST}"))
        sha256, listed = sha256_hex(manifest), json.loads(manifest)["files"]
    except StoreError as error:
        if error.reason != "ObjectMissing":
            raise
        # a version stored before MANIFEST.json: its checksum is model.skops's own, as it was recorded then
        sha256, listed = metadata["sha256"], {}
    return TrainingResult(
        ok=True,
        metrics=metadata["metrics"],
        model_uri=store.uri(prefix),
        sha256=sha256,
        fit_seconds=metadata["fitSeconds"],
        calibrated=bool(metadata.get("calibrated", False)),  # versions stored before calibration have none
        primary_metric=PRIMARY_METRIC[task],
        # versions stored before the signature: their features, as float64 (the only type trained on)
        signature_sha256=signature_sha256(
            metadata.get("inputSignature")
            or {"features": metadata["features"], "types": ["float64"] * len(metadata["features"])}
        ),
        feature_count=len(metadata["features"]),
        test_rows=metadata.get("testRows"),
        champion=ChampionScores.model_validate(metadata["champion"]) if metadata.get("champion") else None,
        # versions stored before the environment was recorded: the scikit-learn version they name
        environment=TrainingEnvironment.model_validate(
            metadata.get("environment") or {"scikitLearn": metadata.get("sklearnVersion")}
        ),
        golden_sha256=listed.get(GOLDEN_FILE),
    )
