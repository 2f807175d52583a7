"""The trainer end to end on a file:// store: every bundled dataset, metrics, allow-list, skops round trip."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

from mlops_operator.api.dataset import DatasetSpec
from mlops_operator.api.estimators import CLASSIFIERS, REGRESSORS
from mlops_operator.data.check import run_check
from mlops_operator.modelformat.files import (
    ModelIntegrityError,
    dump_model,
    load_model,
    read_model_files,
    sha256_hex,
)
from mlops_operator.storage import ArtifactStore
from mlops_operator.trainer.pipeline import PermanentTrainingError, allowed_class, build_pipeline
from support import run_training_of

ESTIMATOR_FOR = {
    "iris": "sklearn.linear_model.LogisticRegression",
    "wine": "sklearn.ensemble.RandomForestClassifier",
    "breast_cancer": "sklearn.tree.DecisionTreeClassifier",
    "digits": "sklearn.naive_bayes.GaussianNB",
    "diabetes": "sklearn.linear_model.Ridge",
}


def _dataset(store: ArtifactStore, name: str) -> dict:
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": name}}})
    result = run_check(spec, namespace="ns", name=name, store=store, input_dir=pathlib.Path("/nonexistent"))
    assert result["ok"], result
    k8s_name = name.replace("_", "-")
    return {"name": k8s_name, "version": result["version"], "snapshotUri": result["snapshotUri"], "target": "target"}


def _request(dataset: dict, estimator: str, **model) -> dict:
    return {
        "namespace": "ns",
        "run": f"{dataset['name']}-run",
        "dataset": dataset,
        "spec": {"datasetRef": {"name": dataset["name"]}, "model": {"name": "m", "estimator": estimator, **model}},
    }


@pytest.mark.parametrize("name", sorted(ESTIMATOR_FOR))
def test_trainer_on_each_builtin_dataset(tmp_path: pathlib.Path, name: str) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    result = run_training_of(_request(_dataset(store, name), ESTIMATOR_FOR[name]), store)
    expected = (
        {"rmse", "mae", "r2"} if name == "diabetes" else {"accuracy", "precision_macro", "recall_macro", "f1_macro"}
    )
    assert expected <= set(result.metrics)
    model_dir = store.path(result.model_uri)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    data = (model_dir / "model.skops").read_bytes()
    manifest = json.loads((model_dir / "MANIFEST.json").read_bytes())
    assert sha256_hex((model_dir / "MANIFEST.json").read_bytes()) == result.sha256
    calibration = {"calibration.json"} if metadata["calibrated"] else set()  # optional: see test_calibration.py
    assert set(manifest["files"]) == {"model.skops", "metadata.json", "profile.json", "golden.json"} | calibration
    for file, digest in manifest["files"].items():
        assert sha256_hex((model_dir / file).read_bytes()) == digest
    assert metadata["sha256"] == sha256_hex(data)
    assert read_model_files(model_dir, expected_sha256=result.sha256).covered
    assert metadata["dataset"]["version"].startswith("sha256:")
    assert metadata["features"] and "target" not in metadata["features"]
    model = load_model(data, expected_sha256=metadata["sha256"])
    assert model.predict(np.zeros((1, len(metadata["features"])))).shape == (1,)
    if name != "diabetes":
        assert result.metrics["accuracy"] > 0.7


def test_a_stored_model_version_is_never_overwritten(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    dataset = _dataset(store, "iris")
    first = run_training_of(_request(dataset, "sklearn.linear_model.LogisticRegression"), store)
    again = run_training_of(_request(dataset, "sklearn.dummy.DummyClassifier"), store)
    assert again.sha256 == first.sha256


def test_every_version_records_what_it_was_trained_with(tmp_path: pathlib.Path, monkeypatch) -> None:
    """Python, the libraries that decide its predictions, the lock's sha256 and the image: in metadata.json
    (covered by MANIFEST.json) and in the result the TrainingRun's status shows."""
    import importlib.metadata
    import platform

    lock = tmp_path / "requirements.lock"
    lock.write_text("scikit-learn==1.9.1 --hash=sha256:00\n")
    monkeypatch.setenv("MLOPS_LOCK_FILE", str(lock))
    monkeypatch.setenv("MLOPS_IMAGE", "registry.example/mlops-operator:1.2.3")
    store = ArtifactStore.from_uri(f"file://{tmp_path / 'store'}")
    result = run_training_of(_request(_dataset(store, "iris"), "sklearn.linear_model.LogisticRegression"), store)
    metadata = json.loads((store.path(result.model_uri) / "metadata.json").read_text())
    recorded = metadata["environment"]
    assert recorded == {
        "python": platform.python_version(),
        "scikitLearn": importlib.metadata.version("scikit-learn"),
        "numpy": importlib.metadata.version("numpy"),
        "scipy": importlib.metadata.version("scipy"),
        "skops": importlib.metadata.version("skops"),
        "pyarrow": importlib.metadata.version("pyarrow"),
        "lockSha256": sha256_hex(lock.read_bytes()),
        "image": "registry.example/mlops-operator:1.2.3",
    }
    assert result.environment.model_dump(mode="json", by_alias=True, exclude_none=True) == recorded
    assert read_model_files(store.path(result.model_uri), expected_sha256=result.sha256).covered
    # The status carries it as the result reports it (controllers/trainingrun.py).
    from mlops_operator.api.trainingrun import ModelArtifact

    status = ModelArtifact(uri=result.model_uri, sha256=result.sha256, version="v", environment=result.environment)
    assert status.model_dump(mode="json", by_alias=True, exclude_none=True)["environment"] == recorded


def test_bad_params_are_a_permanent_error(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    dataset = _dataset(store, "iris")
    with pytest.raises(PermanentTrainingError, match="'C' parameter"):
        run_training_of(_request(dataset, "sklearn.linear_model.LogisticRegression", params={"C": -1}), store)
    with pytest.raises(PermanentTrainingError, match="invalid parameters"):
        run_training_of(_request(dataset, "sklearn.svm.SVC", params={"no_such_param": 1}), store)


def test_only_allow_listed_classes_are_importable() -> None:
    assert allowed_class("sklearn.svm.SVC").__name__ == "SVC"
    for name in ("os.system", "sklearn.utils.deprecated", "builtins.eval", "sklearn.svm.SVC.fit"):
        with pytest.raises(PermanentTrainingError, match="allow-list"):
            allowed_class(name)


@pytest.mark.parametrize("estimator", CLASSIFIERS + REGRESSORS)
def test_every_allowed_estimator_round_trips_through_skops(estimator: str) -> None:
    from sklearn.datasets import load_diabetes, load_iris

    x, y = load_iris(return_X_y=True) if estimator in CLASSIFIERS else load_diabetes(return_X_y=True)
    preprocessing = ["sklearn.preprocessing.StandardScaler", "sklearn.decomposition.PCA"]
    model = build_pipeline(estimator, params={}, preprocessing=preprocessing, seed=0).fit(x, y)
    data = dump_model(model)
    loaded = load_model(data, expected_sha256=sha256_hex(data))
    assert np.array_equal(loaded.predict(x[:5]), model.predict(x[:5]))


def test_model_with_a_wrong_sha256_is_refused() -> None:
    from sklearn.dummy import DummyClassifier

    data = dump_model(DummyClassifier().fit([[0], [1]], [0, 1]))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(data, expected_sha256="0" * 64)


def test_model_needing_untrusted_types_is_refused() -> None:
    from sklearn.preprocessing import FunctionTransformer

    data = dump_model(FunctionTransformer(func=os.getcwd))  # a model that would call os.getcwd
    with pytest.raises(ModelIntegrityError, match="trusted"):
        load_model(data, expected_sha256=sha256_hex(data))


def test_metric_computation_on_known_predictions() -> None:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    from mlops_operator.trainer.metrics import evaluate

    x = np.zeros((4, 1))
    classifier = DummyClassifier(strategy="constant", constant=1).fit(x, [0, 1, 1, 1])
    metrics = evaluate(classifier, x, np.array([0, 1, 1, 1]), task="classification", wanted=[])
    assert metrics["accuracy"] == 0.75
    assert metrics["recall_macro"] == 0.5  # class 0: 0/1, class 1: 3/3
    assert metrics["roc_auc"] == 0.5  # constant scores cannot rank
    regressor = DummyRegressor(strategy="constant", constant=2.0).fit(x, [1.0, 3.0, 1.0, 3.0])
    metrics = evaluate(regressor, x, np.array([1.0, 3.0, 1.0, 3.0]), task="regression", wanted=["rmse", "mae"])
    assert metrics == {"rmse": 1.0, "mae": 1.0}


@pytest.fixture(scope="module")
def stored_iris(tmp_path_factory) -> tuple[pathlib.Path, str]:
    """A trained iris model directory and the sha256 the TrainingRun records for it."""
    store = ArtifactStore.from_uri(f"file://{tmp_path_factory.mktemp('store')}")
    result = run_training_of(_request(_dataset(store, "iris"), "sklearn.linear_model.LogisticRegression"), store)
    return store.path(result.model_uri), result.sha256


def _copy(directory: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    import shutil

    return pathlib.Path(shutil.copytree(directory, target))


def test_the_recorded_sha256_covers_every_file_the_server_loads(stored_iris) -> None:
    from mlops_operator.server.runtime import load

    directory, sha256 = stored_iris
    loaded, profile = load(f"file://{directory}", expected_sha256=sha256)
    assert loaded.features == json.loads((directory / "metadata.json").read_text())["features"]
    assert profile == json.loads((directory / "profile.json").read_text()) and profile["features"]
    store = ArtifactStore.from_uri(f"file://{directory.parents[3]}")  # <root>/models/ns/m/iris-run
    retried = run_training_of(
        _request(
            {"name": "iris", "version": "-", "snapshotUri": "-", "target": "target"}, "sklearn.dummy.DummyClassifier"
        ),
        store,
    )
    assert retried.sha256 == sha256  # a retried pod reports what is stored


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("metadata.json", "metadata.json has sha256 .* but MANIFEST.json records .* changed after training"),
        ("model.skops", "model.skops has sha256 .* but MANIFEST.json records .* changed after training"),
        ("profile.json", "profile.json has sha256 .* changed after training"),
        ("MANIFEST.json", "MANIFEST.json has sha256 .* but the recorded sha256 is"),
    ],
)
def test_an_edited_file_refuses_to_load(stored_iris, tmp_path: pathlib.Path, file: str, words: str) -> None:
    from mlops_operator.server.runtime import load

    directory, sha256 = stored_iris
    edited = _copy(directory, tmp_path / "model")
    path = edited / file
    if file == "metadata.json":  # the attack of the issue: another feature order
        metadata = json.loads(path.read_text())
        metadata["features"] = list(reversed(metadata["features"]))
        path.write_text(json.dumps(metadata, indent=1))
    else:
        path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(ModelIntegrityError, match=words):
        load(f"file://{edited}", expected_sha256=sha256)
    if file != "MANIFEST.json":  # without a recorded sha256, the manifest still catches it
        with pytest.raises(ModelIntegrityError, match=words):
            load(f"file://{edited}", expected_sha256=None)


def test_an_edited_manifest_with_matching_files_is_refused(stored_iris, tmp_path: pathlib.Path) -> None:
    """Editing metadata.json and writing its new sha256 into MANIFEST.json: the recorded sha256 catches it."""
    from mlops_operator.server.runtime import load

    directory, sha256 = stored_iris
    edited = _copy(directory, tmp_path / "model")
    (edited / "metadata.json").write_text((edited / "metadata.json").read_text().replace('"iris"', '"other"'))
    manifest = json.loads((edited / "MANIFEST.json").read_text())
    manifest["files"]["metadata.json"] = sha256_hex((edited / "metadata.json").read_bytes())
    (edited / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="MANIFEST.json has sha256"):
        load(f"file://{edited}", expected_sha256=sha256)


def test_a_removed_manifest_is_refused(stored_iris, tmp_path: pathlib.Path) -> None:
    """Deleting MANIFEST.json does not turn a model into an older, less covered one."""
    from mlops_operator.server.runtime import load

    directory, sha256 = stored_iris
    edited = _copy(directory, tmp_path / "model")
    (edited / "MANIFEST.json").unlink()
    with pytest.raises(ModelIntegrityError, match="no MANIFEST.json"):
        load(f"file://{edited}", expected_sha256=sha256)


def test_a_manifest_naming_other_files_is_refused(stored_iris, tmp_path: pathlib.Path) -> None:
    directory, _ = stored_iris
    edited = _copy(directory, tmp_path / "model")
    manifest = json.loads((edited / "MANIFEST.json").read_text())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (edited / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="unknown files"):
        read_model_files(edited, expected_sha256=None)


def test_a_model_stored_before_manifests_still_loads(stored_iris, tmp_path: pathlib.Path) -> None:
    """An older model version (model.skops + metadata.json, recorded sha256 = model.skops's) keeps serving."""
    from mlops_operator.server.runtime import load

    directory, _ = stored_iris
    old = _copy(directory, tmp_path / "model")
    (old / "MANIFEST.json").unlink()
    (old / "profile.json").unlink()
    skops_sha256 = sha256_hex((old / "model.skops").read_bytes())
    loaded, _ = load(f"file://{old}", expected_sha256=skops_sha256)
    assert loaded.name == "m" and len(loaded.features) == 4
    assert not read_model_files(old, expected_sha256=skops_sha256).covered
    (old / "model.skops").write_bytes((old / "model.skops").read_bytes() + b" ")
    with pytest.raises(ModelIntegrityError, match="model sha256 is"):
        load(f"file://{old}", expected_sha256=skops_sha256)
