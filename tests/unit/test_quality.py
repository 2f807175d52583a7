"""Live quality from labels posted back: the server's counters and the analysis templates' PromQL, against
scikit-learn's own metrics on the same predictions.

The labels go through the server's scoring and its Prometheus counters (ServerMetrics); the counters'
values become a series for Prometheus's own rule tester (`promtool test rules`, Debian's prometheus),
which evaluates each template's query exactly as the operator sends it; the value must be what
`precision_recall_fscore_support`, `mean_absolute_error` and `mean_squared_error` say.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlops_operator.api.modeldeployment import AnalysisMetric
from mlops_operator.data.profile import class_key
from mlops_operator.rollout.analysis import judge, promql, result
from mlops_operator.server.monitoring import AccuracyWindow, DriftWindow, ServerMetrics, score
from support import promtool_value

SELECTOR = {"namespace": "ml", "model": "iris", "version": "v1"}
STEPS = 10  # samples, 15 s apart: the counters grow linearly, so every increase scales alike


def server_counters(predicted: list, labels: list, *, classify: bool, classes: list) -> dict[str, float]:
    """Feed the labels through the server's scoring; its counters as `series text → value`."""
    metrics = ServerMetrics(
        model="iris", version="v1", drift=DriftWindow(None, []), accuracy=AccuracyWindow(), classes=classes
    )
    metrics.feedback(score(predicted, labels, classify=classify), classify=classify)
    counters = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name.startswith("mlops_feedback") and sample.name.endswith("_total"):
                labels_text = ",".join(f'{k}="{v}"' for k, v in {"namespace": "ml", **sample.labels}.items())
                counters[f"{sample.name}{{{labels_text}}}"] = sample.value
    return counters


def evaluate(tmp_path, counters: dict[str, float], query: str) -> float | None:
    """The query's value at the last sample, by promtool; None when it answers nothing."""
    series = {name: f"0+{value}x{STEPS}" for name, value in counters.items()}
    return promtool_value(tmp_path, series, query, at_seconds=15 * STEPS)


def metric(template: str, **extra) -> AnalysisMetric:
    return AnalysisMetric.model_validate(
        {"name": template.lower(), "template": template, "threshold": 0.5, "minSamples": 1, **extra}
    )


def query(template: str, **extra) -> str:
    return promql(metric(template, **extra), namespace="ml", model="iris", version="v1", window="1m")


RNG = np.random.default_rng(7)
CASES = {
    "random": (RNG.integers(0, 3, 200).tolist(), RNG.integers(0, 3, 200).tolist()),
    "accurate-but-one-class-fails": ([0] * 40 + [1] * 40 + [2] * 20, [0] * 40 + [1] * 40 + [1] * 20),
    "a-class-never-predicted": ([0, 1, 2, 2, 1, 0, 2], [0, 1, 1, 1, 1, 0, 0]),
    "a-class-never-a-label": ([0, 0, 1, 1], [0, 2, 1, 2]),
    "perfect": ([0, 1, 2] * 5, [0, 1, 2] * 5),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("template", ["precision", "recall", "f1"])
def test_class_metrics_are_scikit_learns(tmp_path, case: str, template: str) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    truth, predicted = CASES[case]
    labels = [float(v) for v in truth]  # the server's classes are floats (a numeric target); labels come as ints
    counters = server_counters(predicted, truth, classify=True, classes=[0.0, 1.0, 2.0])
    index = ["precision", "recall", "f1"].index(template)
    expected = precision_recall_fscore_support(labels, [float(p) for p in predicted], average="macro", zero_division=0)[
        index
    ]
    assert evaluate(tmp_path, counters, query(template)) == pytest.approx(expected, abs=1e-9)
    per_class = precision_recall_fscore_support(
        labels, [float(p) for p in predicted], labels=[0.0, 1.0, 2.0], zero_division=0
    )[index]
    for klass, value in zip(("0", "1", "2"), per_class, strict=True):
        seen = float(klass) in labels or float(klass) in predicted
        got = evaluate(tmp_path, counters, query(template, **{"class": klass}))
        assert got == (pytest.approx(value, abs=1e-9) if seen else None), (klass, got, value)


def test_accuracy_and_the_regression_errors_are_scikit_learns(tmp_path) -> None:
    from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

    truth, predicted = CASES["random"]
    counters = server_counters(predicted, truth, classify=True, classes=[0, 1, 2])
    assert evaluate(tmp_path, counters, query("accuracy")) == pytest.approx(accuracy_score(truth, predicted))
    target = RNG.normal(150, 60, 300)
    guess = target + RNG.normal(0, 25, 300)
    counters = server_counters(guess.tolist(), target.tolist(), classify=False, classes=[])
    assert evaluate(tmp_path, counters, query("mae")) == pytest.approx(mean_absolute_error(target, guess))
    rmse = math.sqrt(mean_squared_error(target, guess))
    assert evaluate(tmp_path, counters, query("rmse")) == pytest.approx(rmse)


def test_fewer_labelled_predictions_than_min_samples_is_inconclusive(tmp_path) -> None:
    truth, predicted = CASES["perfect"]
    counters = server_counters(predicted, truth, classify=True, classes=[0, 1, 2])
    labels = 'mlops_feedback_labels_total{namespace="ml",model="iris",version="v1"}'
    in_window = evaluate(tmp_path, counters, f"sum(increase({labels}[1m]))")  # as Prometheus counts them
    assert in_window and in_window > 20
    assert evaluate(tmp_path, counters, query("f1", minSamples=math.floor(in_window))) == pytest.approx(1.0)
    assert evaluate(tmp_path, counters, query("f1", minSamples=math.floor(in_window) + 1)) is None
    words = result(metric("f1", minSamples=100), None).message
    assert words == "f1: no data yet, or fewer than 100 labelled predictions in the window"


def test_class_keys_and_the_bounded_confusion() -> None:
    assert [class_key(v) for v in (1, 1.0, "1", "1.0", 2.5, "setosa", True)] == [
        "1",
        "1",
        "1",
        "1",
        "2.5",
        "setosa",
        "true",
    ]
    counters = server_counters([0, 1, "x" * 40], [0, "made-up", 7], classify=True, classes=[0.0, 1.0])
    cells = set()
    for name in counters:
        if name.startswith("mlops_feedback_confusion_total"):
            labels = dict(pair.split("=") for pair in name.split("{")[1].rstrip("}").split(","))
            cells.add((labels["label"], labels["prediction"], labels["correct"]))
    # labels and echoed predictions outside the model's classes are `other`
    assert cells == {('"0"', '"0"', '"true"'), ('"other"', '"1"', '"false"'), ('"other"', '"other"', '"false"')}


def test_a_regressor_takes_only_numbers_and_a_label_per_row() -> None:
    assert score([1.0, 2.0], [2, 4], classify=False).squared_error == pytest.approx(5.0)
    with pytest.raises(ValueError, match="must be numbers"):
        score([1.0], ["big"], classify=False)
    with pytest.raises(ValueError, match="2 predictions, but 1 labels"):
        score([1.0, 2.0], [1], classify=True)


# ----------------------------------------------------------------------- drift beyond numeric PSI


def test_a_feature_of_few_values_drifts_by_its_frequencies() -> None:
    from mlops_operator.data.profile import build_profile
    from mlops_operator.data.table import parse_csv

    lines = [f"{i % 3},{(i * 7) % 100 / 10},{i % 2}" for i in range(300)]  # a 3-valued code, a number, the target
    profile = build_profile(parse_csv(("code,size,target\n" + "\n".join(lines)).encode()), "target")
    assert profile["features"]["code"]["frequencies"] == pytest.approx({"0": 1 / 3, "1": 1 / 3, "2": 1 / 3})
    assert "frequencies" not in profile["features"]["size"]  # 100 distinct values: bins only
    window = DriftWindow(profile, ["code", "size"], size=300, min_rows=50)
    same = np.column_stack([np.arange(300) % 3, (np.arange(300) * 7) % 100 / 10])
    window.add(same)
    assert window.psi_by_feature()["code"] < 0.01 and window.psi_by_feature()["size"] < 0.05
    window.add(np.column_stack([np.full(300, 2.0), same[:, 1]]))  # every row is now code 2
    drift = window.psi_by_feature()
    assert drift["code"] > 1 and drift["size"] < 0.05
    window.add(np.column_stack([np.full(300, 9.0), same[:, 1]]))  # a code the profile never saw: `other`
    assert window.psi_by_feature()["code"] > 1


def test_the_predictions_drift_against_the_training_target() -> None:
    classes = {"target": {"name": "y", "kind": "classes", "shares": {"0.0": 0.5, "1.0": 0.5}}, "features": {}}
    window = DriftWindow(classes, [], size=200, min_rows=50)
    window.add(np.zeros((40, 0)), np.array([0, 1] * 20))
    assert window.prediction_psi() is None  # too few to say
    window.add(np.zeros((60, 0)), np.array([0, 1] * 30))
    assert window.prediction_psi() < 0.01  # 1.0 in the profile is the class 1 the model predicts
    window.add(np.zeros((200, 0)), np.ones(200))
    assert window.prediction_psi() > 1
    rng = np.random.default_rng(1)
    target = rng.normal(100, 10, 2000)
    from mlops_operator.data.profile import numeric_bins

    regression = {"target": {"name": "y", "kind": "numeric", **numeric_bins(target)}, "features": {}}
    window = DriftWindow(regression, [], size=500, min_rows=50)
    window.add(np.zeros((500, 0)), rng.normal(100, 10, 500))
    assert window.prediction_psi() < 0.1
    window.add(np.zeros((500, 0)), rng.normal(120, 10, 500))
    assert window.prediction_psi() > 1


def test_the_estimate_window_samples_and_counts_every_row() -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from mlops_operator.modelformat.calibration import fit_calibration, prediction_confidence
    from mlops_operator.server.monitoring import EstimateWindow

    x, y = make_classification(n_samples=4000, n_informative=4, random_state=3)
    model = LogisticRegression().fit(x[:1000], y[:1000])
    calibration = fit_calibration(
        prediction_confidence(model, x[1000:2000]), model.predict(x[1000:2000]) == y[1000:2000]
    )
    window = EstimateWindow(model, calibration, sample=500)
    for start in range(2000, 4000, 10):  # 2,000 rows in requests of 10: more than the sample keeps
        window.add(x[start : start + 10])
    correct, rows = window.flush()
    assert rows == 2000, "every predicted row counts, sampled or not"
    truth = float(np.mean(model.predict(x[2000:]) == y[2000:]))
    assert correct / rows == pytest.approx(truth, abs=0.05)
    assert window.flush() == (correct, rows)  # nothing new: the counters stay


def test_the_estimate_is_refused_for_a_model_without_calibration() -> None:
    from mlops_operator.api.modeldeployment import ModelDeploymentSpec
    from mlops_operator.rollout.analysis import refused_estimate

    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "iris"},
            "analysis": {"metrics": [{"name": "estimate", "template": "estimatedAccuracy", "threshold": 0.8}]},
        }
    )
    assert refused_estimate(spec, []) is None
    words = refused_estimate(spec, ["iris-svc"])
    assert "['estimate']" in words and "iris-svc has no confidence calibration" in words and "predict_proba" in words
    plain = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}})
    assert refused_estimate(plain, ["iris-svc"]) is None
    passed, message = judge(spec.analysis.metrics[0], 0.75)
    assert not passed and "blind to concept drift with unchanged inputs" in message
