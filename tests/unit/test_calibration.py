"""The label-free accuracy estimate (CBPE): close to the truth on fresh traffic, falls with it under covariate
shift, blind where its docstring says so; stored with the model only when it can be fitted, covered by MANIFEST.json.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from mlops_operator.modelformat.calibration import (
    MIN_CALIBRATION_ROWS,
    calibrated_confidence,
    estimated_accuracy,
    fit_calibration,
    prediction_confidence,
)
from mlops_operator.modelformat.files import ModelIntegrityError, manifest_bytes, read_model_files, sha256_hex
from mlops_operator.storage import ArtifactStore, model_prefix
from support import run_training_of
from unit.test_trainer import _copy, _dataset, _request

# One synthetic problem: 4 informative and 4 redundant of 10 features, 2 % of the labels random, so that a
# model is wrong often enough (~20 %) for the estimate to have something to estimate.
PROBLEM = {"n_features": 10, "n_informative": 4, "n_redundant": 4, "flip_y": 0.02, "random_state": 3}
TRAIN, HELD_OUT, FRESH = 3000, 3000, 8000


@dataclass(frozen=True)
class Fitted:
    model: Any
    calibration: dict[str, Any]
    x_fresh: np.ndarray  # a second sample of the same distribution, never seen by the model or the calibration
    y_fresh: np.ndarray

    def true_accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.model.predict(x) == y))

    def estimate(self, x: np.ndarray) -> float:
        return estimated_accuracy(self.calibration, prediction_confidence(self.model, x))


def _sample(class_sep: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The problem's rows; the same seed with a smaller `class_sep` is the same problem with closer classes."""
    from sklearn.datasets import make_classification

    return make_classification(n_samples=TRAIN + HELD_OUT + FRESH, class_sep=class_sep, **PROBLEM)


def _fit(estimator: Any) -> Fitted:
    x, y = _sample()
    train, held_out, fresh = slice(0, TRAIN), slice(TRAIN, TRAIN + HELD_OUT), slice(TRAIN + HELD_OUT, None)
    model = estimator.fit(x[train], y[train])
    confidence = prediction_confidence(model, x[held_out])
    calibration = fit_calibration(confidence, model.predict(x[held_out]) == y[held_out])
    assert calibration is not None
    return Fitted(model=model, calibration=calibration, x_fresh=x[fresh], y_fresh=y[fresh])


@pytest.fixture(scope="module")
def logistic() -> Fitted:
    from sklearn.linear_model import LogisticRegression

    return _fit(LogisticRegression())


@pytest.fixture(scope="module")
def naive_bayes() -> Fitted:
    from sklearn.naive_bayes import GaussianNB

    return _fit(GaussianNB())


@pytest.mark.parametrize("fitted", ["logistic", "naive_bayes"])
def test_the_estimate_is_close_to_the_true_accuracy_of_a_fresh_sample(fitted: str, request) -> None:
    """8000 fresh rows. LogisticRegression: true 0.824, estimated 0.820. GaussianNB: true 0.838, estimated
    0.835. (Seeds 0-9 of the problem: at most 0.017 apart.)"""
    fitted: Fitted = request.getfixturevalue(fitted)
    true, estimate = fitted.true_accuracy(fitted.x_fresh, fitted.y_fresh), fitted.estimate(fitted.x_fresh)
    assert abs(estimate - true) <= 0.03, (estimate, true)


def test_the_calibration_corrects_an_overconfident_model(naive_bayes: Fitted) -> None:
    """The redundant features make naive Bayes overconfident: its mean confidence says 0.886, the truth is
    0.838; calibrated, 0.835."""
    true = naive_bayes.true_accuracy(naive_bayes.x_fresh, naive_bayes.y_fresh)
    raw = float(np.mean(prediction_confidence(naive_bayes.model, naive_bayes.x_fresh)))
    assert raw - true > 0.04 and abs(naive_bayes.estimate(naive_bayes.x_fresh) - true) <= 0.03


def test_the_estimate_falls_with_the_accuracy_when_traffic_moves_towards_the_boundary(logistic: Fitted) -> None:
    """Covariate shift: the traffic keeps only the rows nearest the decision boundary — chosen by their inputs
    alone, so P(label | inputs) is unchanged, the assumption of the estimate. All, nearest half, nearest quarter:
    true 0.824 → 0.721 → 0.625, estimated 0.820 → 0.713 → 0.591. (Seeds 0-9: at most 0.034 apart; the
    quarter's 2000 rows are calibrated by the ~750 held-out rows of their confidences.)"""
    distance = np.abs(logistic.model.decision_function(logistic.x_fresh))
    trues, estimates = [], []
    for kept in (1.0, 0.5, 0.25):
        near = distance <= np.quantile(distance, kept)
        x, y = logistic.x_fresh[near], logistic.y_fresh[near]
        trues.append(logistic.true_accuracy(x, y))
        estimates.append(logistic.estimate(x))
        assert abs(estimates[-1] - trues[-1]) <= 0.05, (kept, estimates, trues)
    assert trues[0] > trues[1] + 0.05 and trues[1] > trues[2]
    assert estimates[0] > estimates[1] + 0.05 and estimates[1] > estimates[2]


def test_the_estimate_falls_when_the_classes_move_closer_but_sees_only_part_of_the_fall(logistic: Fitted) -> None:
    """The same problem with a smaller class separation: inputs nearer the boundary (seen) but also labels that
    follow the inputs less (a concept change, unseen). sep 1.0 → 0.7: true 0.824 → 0.743, estimated 0.820 → 0.797."""
    true_before = logistic.true_accuracy(logistic.x_fresh, logistic.y_fresh)
    estimate_before = logistic.estimate(logistic.x_fresh)
    x, y = _sample(class_sep=0.7)
    x, y = x[TRAIN + HELD_OUT :], y[TRAIN + HELD_OUT :]
    true_after, estimate_after = logistic.true_accuracy(x, y), logistic.estimate(x)
    assert true_after < true_before - 0.05
    assert estimate_after < estimate_before
    assert estimate_before - estimate_after < true_before - true_after  # not an upper bound on the fall


def test_the_estimate_cannot_see_inputs_that_mean_something_else(logistic: Fitted) -> None:
    """What the module docstring says it cannot see. Concept drift with unchanged inputs (a third of the labels
    swapped): true 0.824 → 0.617, the same estimate. Noise on the inputs: true 0.824 → 0.741, but a linear model's
    margins spread, its confidence barely falls or even rises: estimated 0.820 → 0.838."""
    x, y = logistic.x_fresh, logistic.y_fresh
    true, estimate = logistic.true_accuracy(x, y), logistic.estimate(x)
    swapped = np.where(np.arange(len(y)) % 3 == 0, 1 - y, y)
    assert logistic.true_accuracy(x, swapped) < true - 0.15
    assert logistic.estimate(x) == estimate
    noisy = x + np.random.default_rng(0).normal(0.0, 1.0, x.shape)
    true_fall = true - logistic.true_accuracy(noisy, y)
    assert true_fall > 0.02 and estimate - logistic.estimate(noisy) < true_fall / 3


def test_the_calibration_is_a_small_json_document(logistic: Fitted) -> None:
    calibration = logistic.calibration
    assert json.loads(json.dumps(calibration)) == calibration
    assert set(calibration) == {"kind", "input", "x", "y", "rows", "heldOutAccuracy"}
    assert calibration["kind"] == "isotonic" and calibration["input"] == "maxPredictProba"
    assert calibration["rows"] == HELD_OUT and len(calibration["x"]) == len(calibration["y"]) < 100
    assert calibration["x"] == sorted(calibration["x"]) and calibration["y"] == sorted(calibration["y"])
    assert all(0.0 <= v <= 1.0 for v in calibration["x"] + calibration["y"])
    assert all(round(v, 6) == v for v in calibration["x"] + calibration["y"])


def test_calibrated_confidence_is_a_clipped_monotone_step_function() -> None:
    calibration = {"kind": "isotonic", "input": "maxPredictProba", "x": [0.6, 0.8, 0.9], "y": [0.5, 0.7, 0.95]}
    confidence = np.array([0.5, 0.6, 0.7, 0.8, 0.95, 1.0, np.nan])
    expected = np.array([0.5, 0.5, 0.6, 0.7, 0.95, 0.95, np.nan])
    np.testing.assert_allclose(calibrated_confidence(calibration, confidence), expected)
    assert estimated_accuracy(calibration, confidence) == pytest.approx(np.mean(expected[:-1]))  # NaN left out
    assert estimated_accuracy(calibration, np.array([])) is None
    assert estimated_accuracy(calibration, np.array([np.nan])) is None
    for broken in ({**calibration, "kind": "other"}, {**calibration, "y": [0.5]}, {**calibration, "x": "abc"}):
        with pytest.raises(ValueError, match="calibration"):
            calibrated_confidence(broken, confidence)


def _rows(n: int, *, wrong_every: int = 4) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.linspace(0.5, 1.0, n)
    return confidence, np.arange(n) % wrong_every != 0


@pytest.mark.parametrize(
    ("confidence", "correct", "why"),
    [
        (*_rows(MIN_CALIBRATION_ROWS - 1), "a tiny held-out split"),
        (_rows(200)[0], np.ones(200, dtype=bool), "every prediction right: a constant, blind to any shift"),
        (_rows(200)[0], np.zeros(200, dtype=bool), "every prediction wrong"),
        (np.ones(200), _rows(200)[1], "the same confidence everywhere (a tree of pure leaves)"),
        (np.where(np.arange(200) == 7, np.nan, _rows(200)[0]), _rows(200)[1], "a confidence that is no number"),
    ],
)
def test_no_calibration_without_evidence(confidence: np.ndarray, correct: np.ndarray, why: str) -> None:
    assert fit_calibration(confidence, correct) is None, why


def test_the_smallest_held_out_split_that_calibrates() -> None:
    calibration = fit_calibration(*_rows(MIN_CALIBRATION_ROWS))
    assert calibration is not None and calibration["rows"] == MIN_CALIBRATION_ROWS
    assert calibration["heldOutAccuracy"] == 0.75
    with pytest.raises(ValueError, match="20 confidences but 19"):
        fit_calibration(_rows(20)[0], _rows(19)[1])


def test_a_model_without_probabilities_has_no_confidence() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = load_iris(return_X_y=True)
    assert prediction_confidence(SVC().fit(x, y), x) is None
    assert prediction_confidence(make_pipeline(StandardScaler(), SVC()).fit(x, y), x) is None

    class Unsure(LogisticRegression):
        def predict_proba(self, x):
            raise NotImplementedError

    assert prediction_confidence(make_pipeline(StandardScaler(), Unsure()).fit(x, y), x) is None
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    np.testing.assert_array_equal(prediction_confidence(model, x[:5]), model.predict_proba(x[:5]).max(axis=1))


def _stored(store: ArtifactStore, result: dict) -> tuple[pathlib.Path, dict, dict]:
    """The stored version's directory, metadata and manifest."""
    directory = store.path(result.model_uri)
    metadata = json.loads((directory / "metadata.json").read_text())
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    return directory, metadata, manifest


@pytest.mark.parametrize(
    ("name", "estimator", "model"),
    [
        ("iris", "sklearn.svm.SVC", {}),  # no predict_proba without probability=True
        ("diabetes", "sklearn.linear_model.Ridge", {}),  # regression: no accuracy to estimate
        ("breast_cancer", "sklearn.tree.DecisionTreeClassifier", {}),  # pure leaves: every confidence is 1.0
        ("wine", "sklearn.ensemble.RandomForestClassifier", {}),  # every held-out prediction right
    ],
)
def test_run_training_stores_no_calibration_it_cannot_fit(tmp_path: pathlib.Path, name, estimator, model) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    result = run_training_of(_request(_dataset(store, name), estimator, **model), store)
    directory, metadata, manifest = _stored(store, result)
    assert result.calibrated is False and metadata["calibrated"] is False
    assert not (directory / "calibration.json").exists() and "calibration.json" not in manifest["files"]


def test_run_training_on_a_tiny_held_out_split_stores_no_calibration(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    request = _request(_dataset(store, "iris"), "sklearn.naive_bayes.GaussianNB")
    request["spec"]["evaluation"] = {"testSize": 0.1}  # 15 of 150 rows
    result = run_training_of(request, store)
    directory, metadata, _ = _stored(store, result)
    assert metadata["testRows"] < MIN_CALIBRATION_ROWS and 0 < result.metrics["accuracy"] < 1  # only too few
    assert result.calibrated is False and not (directory / "calibration.json").exists()


@pytest.fixture(scope="module")
def stored_digits(tmp_path_factory) -> tuple[ArtifactStore, dict]:
    """A GaussianNB on digits: 360 held-out rows, 82 % right — a model version that has a calibration."""
    store = ArtifactStore.from_uri(f"file://{tmp_path_factory.mktemp('store')}")
    return store, run_training_of(_request(_dataset(store, "digits"), "sklearn.naive_bayes.GaussianNB"), store)


def test_a_calibrated_version_is_covered_by_its_manifest(stored_digits) -> None:
    store, result = stored_digits
    directory, metadata, manifest = _stored(store, result)
    assert result.calibrated is True and metadata["calibrated"] is True
    assert manifest["files"]["calibration.json"] == sha256_hex((directory / "calibration.json").read_bytes())
    files = read_model_files(directory, expected_sha256=result.sha256)
    calibration = json.loads(files["calibration.json"])
    assert calibration["rows"] == metadata["testRows"]
    assert calibration["heldOutAccuracy"] == result.metrics["accuracy"]  # the same held-out split
    retried = run_training_of(
        _request(
            {"name": "digits", "version": "-", "snapshotUri": "-", "target": "target"}, "sklearn.dummy.DummyClassifier"
        ),
        store,
    )
    assert retried.calibrated is True and retried.sha256 == result.sha256


def test_an_edited_calibration_refuses_to_load(stored_digits, tmp_path: pathlib.Path) -> None:
    """A calibration.json that reports a better model than the one trained is caught like any other file."""
    store, result = stored_digits
    edited = _copy(_stored(store, result)[0], tmp_path / "model")
    calibration = json.loads((edited / "calibration.json").read_text())
    calibration["y"] = [1.0 for _ in calibration["y"]]
    (edited / "calibration.json").write_text(json.dumps(calibration, indent=1))
    for expected_sha256 in (result.sha256, None):
        with pytest.raises(ModelIntegrityError, match="calibration.json has sha256 .* changed after training"):
            read_model_files(edited, expected_sha256=expected_sha256)


def test_a_version_stored_before_calibration_still_reads(stored_digits, tmp_path: pathlib.Path) -> None:
    """Versions stored before calibration existed have neither the file nor the metadata key."""
    store, result = stored_digits
    directory, metadata, _ = _stored(store, result)
    del metadata["calibrated"]
    files = {name: (directory / name).read_bytes() for name in ("model.skops", "profile.json")}
    files["metadata.json"] = json.dumps(metadata, indent=1).encode()
    files["MANIFEST.json"] = manifest_bytes(files)
    old_store, prefix = ArtifactStore.from_uri(f"file://{tmp_path}"), model_prefix("ns", "m", "digits-run")
    old_store.write_version(prefix, files)
    old = read_model_files(old_store.path(old_store.uri(prefix)), expected_sha256=sha256_hex(files["MANIFEST.json"]))
    assert old.covered and old.get("calibration.json") is None
    dataset = {"name": "digits", "version": "-", "snapshotUri": "-", "target": "target"}
    request = _request(dataset, "sklearn.dummy.DummyClassifier")
    assert run_training_of(request, old_store).calibrated is False  # what a retried pod reports
