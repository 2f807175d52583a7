"""Live quality on the local cluster, judged by real Prometheus on the servers' own counters: a canary that
is accurate overall but fails one class is rolled back by precision and F1; a regressor's canary is
rolled back on its live RMSE; the label-free estimate is refused for a model without probabilities."""

from __future__ import annotations

import json

import pytest

from support import (
    REPO,
    Kubectl,
    LabelledTraffic,
    condition,
    training_run_manifest,
    two_iris_versions,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")
# 4 setosa, 4 versicolor, 1 virginica per request: the third class is a ninth of the traffic
IRIS_ROWS = [
    [5.1, 3.5, 1.4, 0.2],
    [4.9, 3.0, 1.4, 0.2],
    [5.0, 3.4, 1.5, 0.2],
    [5.4, 3.9, 1.7, 0.4],
    [6.4, 3.2, 4.5, 1.5],
    [5.7, 2.8, 4.5, 1.3],
    [6.0, 2.9, 4.5, 1.5],
    [5.6, 3.0, 4.1, 1.3],
    [6.7, 3.0, 5.2, 2.3],
]


def deployment(name: str, run: str, *, model: str, metrics: list[dict], steps: list[dict] | None = None) -> str:
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"trainingRun": run},
            "replicas": 2,
            "postPromotion": {"enabled": False},
            "strategy": {"canary": {"steps": steps or [{"setWeight": 50}, {"pause": {"duration": "10m"}}]}},
            "analysis": {"interval": "5s", "failureLimit": 2, "metrics": metrics},
        },
    }
    return json.dumps(body)


def status(cluster: Kubectl, ns: str, name: str) -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def service_url(cluster: Kubectl, ns: str, name: str, model: str) -> str:
    return f"http://{cluster.get('service', name, ns)['spec']['clusterIP']}/v2/models/{model}"


def serving(cluster: Kubectl, ns: str, name: str, version: str) -> dict:
    def settled():
        s = status(cluster, ns, name)
        ok = not s.get("canary") and (s.get("stable") or {}).get("version") == version
        return s if ok and s["stable"].get("readyReplicas") == 2 else None

    return wait_for(settled, timeout=180, what=f"{name} serving {version} on its pods")


def rolled_back(cluster: Kubectl, ns: str, name: str) -> dict:
    return wait_for(
        lambda: (s := status(cluster, ns, name)).get("degraded") and s, timeout=240, what=f"{name}'s canary rolled back"
    )


def test_a_canary_accurate_overall_but_failing_one_class_is_rolled_back(cluster: Kubectl, ns: str) -> None:
    a, b = two_iris_versions(cluster, ns, "quality")
    metrics = [
        {"name": "accuracy", "template": "accuracy", "threshold": 0.85},
        {"name": "precision", "template": "precision", "threshold": 0.8},
        {"name": "f1-virginica", "template": "f1", "class": "2", "threshold": 0.5},
    ]
    cluster.apply(deployment("classes", a, model="iris", metrics=metrics), ns)
    serving(cluster, ns, "classes", a)

    def truth(version: str, rows: list, predicted: list) -> list:
        """The world as the labels tell it: the stable version is right; whatever the canary calls class 2
        is really class 1 (a ninth of its answers)."""
        return [1 if version == b and round(p) == 2 else p for p in predicted]

    with LabelledTraffic(service_url(cluster, ns, "classes", "iris"), IRIS_ROWS, truth) as traffic:
        cluster.run(
            "patch",
            "modeldeployment",
            "classes",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"model": {"trainingRun": b}}}),
        )
        s = rolled_back(cluster, ns, "classes")
    assert traffic.answered.get(b), "the canary answered no request"
    assert s["degraded"]["reason"] == "AnalysisFailed" and s["stable"]["version"] == a, s["degraded"]
    judged = {r["metric"]: r for r in s["lastAnalysis"]}
    assert judged["accuracy"]["phase"] == "Successful" and judged["accuracy"]["value"] >= 0.85, judged
    assert judged["precision"]["phase"] == "Failed" and judged["precision"]["value"] < 0.8, judged
    assert judged["f1-virginica"]["phase"] == "Failed" and judged["f1-virginica"]["value"] == 0, judged
    assert "precision" in s["degraded"]["message"], s["degraded"]


def test_a_regressor_is_judged_on_its_live_rmse(cluster: Kubectl, ns: str) -> None:
    from sklearn.datasets import load_diabetes

    dataset = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "diabetes"},
        "spec": {"source": {"builtin": {"name": "diabetes"}}, "target": "target"},
    }
    cluster.apply(json.dumps(dataset), ns)
    for name, estimator in (
        ("sugar-ridge", "sklearn.linear_model.LinearRegression"),
        ("sugar-mean", "sklearn.dummy.DummyRegressor"),
    ):
        cluster.apply(training_run_manifest(name, estimator, model="sugar", dataset="diabetes"), ns)
    for name in ("sugar-ridge", "sugar-mean"):
        wait_phase(cluster, "trainingrun", name, ns, ("Succeeded",), timeout=240)
    x, y = load_diabetes(return_X_y=True)
    rows, targets = x[:40].tolist(), y[:40].tolist()
    metrics = [
        {"name": "rmse", "template": "rmse", "threshold": 65},
        {"name": "mae", "template": "mae", "threshold": 60},
    ]
    cluster.apply(deployment("sugar", "sugar-ridge", model="sugar", metrics=metrics), ns)
    serving(cluster, ns, "sugar", "sugar-ridge")
    with LabelledTraffic(service_url(cluster, ns, "sugar", "sugar"), rows, lambda *_: targets) as traffic:
        cluster.run(
            "patch",
            "modeldeployment",
            "sugar",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"model": {"trainingRun": "sugar-mean"}}}),
        )
        s = rolled_back(cluster, ns, "sugar")
    assert traffic.answered.get("sugar-mean"), "the canary answered no request"
    judged = {r["metric"]: r for r in s["lastAnalysis"]}
    assert s["degraded"]["reason"] == "AnalysisFailed" and s["stable"]["version"] == "sugar-ridge"
    assert judged["rmse"]["phase"] == "Failed" and judged["rmse"]["value"] > 65, judged  # the mean guesses ~77
    assert "rmse" in s["degraded"]["message"], s["degraded"]


def test_the_estimate_is_refused_for_a_model_without_probabilities(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(training_run_manifest("iris-svc", "sklearn.svm.SVC"), ns)
    run = wait_phase(cluster, "trainingrun", "iris-svc", ns, ("Succeeded",), timeout=240)
    assert run["status"]["model"]["calibrated"] is False
    metrics = [{"name": "estimate", "template": "estimatedAccuracy", "threshold": 0.8}]
    cluster.apply(deployment("estimate", "iris-svc", model="iris", metrics=metrics), ns)
    ready = wait_for(
        lambda: condition(cluster.get("modeldeployment", "estimate", ns), "Ready"),
        timeout=30,
        what="the Ready condition",
    )
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec", ready
    assert "iris-svc has no confidence calibration" in ready["message"], ready
    assert cluster.get("deployment", "estimate-stable", ns) is None, "nothing is served on a refused spec"
