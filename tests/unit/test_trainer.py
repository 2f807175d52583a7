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
from mlops_operator.storage import ArtifactStore
from mlops_operator.trainer.modelio import ModelIntegrityError, dump_model, load_model, sha256_hex
from mlops_operator.trainer.pipeline import PermanentTrainingError, allowed_class, build_pipeline
from mlops_operator.trainer.train import run_training

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
    result = run_training(_request(_dataset(store, name), ESTIMATOR_FOR[name]), store)
    expected = (
        {"rmse", "mae", "r2"} if name == "diabetes" else {"accuracy", "precision_macro", "recall_macro", "f1_macro"}
    )
    assert expected <= set(result["metrics"])
    model_dir = store.path(result["modelUri"])
    metadata = json.loads((model_dir / "metadata.json").read_text())
    data = (model_dir / "model.skops").read_bytes()
    assert sha256_hex(data) == result["sha256"] == metadata["sha256"]
    assert metadata["dataset"]["version"].startswith("sha256:")
    assert metadata["features"] and "target" not in metadata["features"]
    model = load_model(data, expected_sha256=result["sha256"])
    assert model.predict(np.zeros((1, len(metadata["features"])))).shape == (1,)
    if name != "diabetes":
        assert result["metrics"]["accuracy"] > 0.7


def test_a_stored_model_version_is_never_overwritten(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    dataset = _dataset(store, "iris")
    first = run_training(_request(dataset, "sklearn.linear_model.LogisticRegression"), store)
    again = run_training(_request(dataset, "sklearn.dummy.DummyClassifier"), store)
    assert again["sha256"] == first["sha256"]


def test_bad_params_are_a_permanent_error(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    dataset = _dataset(store, "iris")
    with pytest.raises(PermanentTrainingError, match="'C' parameter"):
        run_training(_request(dataset, "sklearn.linear_model.LogisticRegression", params={"C": -1}), store)
    with pytest.raises(PermanentTrainingError, match="invalid parameters"):
        run_training(_request(dataset, "sklearn.svm.SVC", params={"no_such_param": 1}), store)


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
