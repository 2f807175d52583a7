"""ModelDeployment on the local cluster: the champion is served behind one Service, and a better
version is rolled out through canary steps to 100 % with real pods and real traffic from the host."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from support import REPO, Kubectl, add_artifact_volume, condition, wait_for, wait_phase

pytestmark = pytest.mark.usefixtures("operator")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]  # one of each species: 0, 1, 2
MD = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris"},
    "spec": {
        "model": {"name": "iris"},
        "replicas": 2,
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}]}},
        "postPromotion": {"enabled": False},
    },
}


@pytest.fixture(scope="module")
def ns(cluster: Kubectl, image: str) -> Iterator[str]:
    name = f"srv-{uuid.uuid4().hex[:8]}"
    cluster.run("create", "namespace", name)
    cluster.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    add_artifact_volume(name)
    yield name
    cluster.run("delete", "namespace", name, "--wait=false", check=False)


def _predict(cluster_ip: str, rows: list[list[float]]) -> list:
    body = json.dumps({"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]})
    request = urllib.request.Request(f"http://{cluster_ip}/v2/models/iris/infer", data=body.encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["outputs"][0]["data"]


def test_the_champion_is_served(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply((REPO / "examples/trainingrun-iris-dummy.yaml").read_text(), ns)
    wait_phase(cluster, "trainingrun", "iris-baseline", ns, ("Succeeded",), timeout=180)
    cluster.apply(json.dumps(MD), ns)
    md = wait_phase(cluster, "modeldeployment", "iris", ns, ("Healthy",), timeout=120)
    assert md["status"]["stable"]["version"] == "iris-baseline" and md["status"]["stable"]["weight"] == 100
    cluster.run("wait", "--for=condition=Ready", "modeldeployment/iris", "-n", ns, "--timeout=30s")
    cluster_ip = cluster.get("service", "iris", ns)["spec"]["clusterIP"]
    predictions = wait_for(lambda: _try_predict(cluster_ip), timeout=30, what="predictions through the Service")
    assert len(set(predictions)) == 1, "the baseline always predicts the most frequent class"


def _try_predict(cluster_ip: str) -> list | None:
    try:
        return _predict(cluster_ip, ROWS)
    except OSError:
        return None


def test_a_better_version_is_canaried_to_100_percent(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/trainingrun-iris-logreg.yaml").read_text(), ns)
    seen = wait_for(
        lambda: (
            ((cluster.get("modeldeployment", "iris", ns)["status"].get("canary") or {}).get("weight") == 50)
            and cluster.get("modeldeployment", "iris", ns)
        ),
        timeout=180,
        what="the canary at 50 %",
    )
    assert seen["status"]["canary"]["version"] == "iris-logreg"
    assert condition(seen, "Progressing")["status"] == "True"
    md = wait_for(
        lambda: (
            (m := cluster.get("modeldeployment", "iris", ns))["status"]["stable"]["version"] == "iris-logreg"
            and m["status"]["phase"] == "Healthy"
            and m
        ),
        timeout=120,
        what="iris-logreg stable at 100 %",
    )
    assert md["status"]["history"][0]["outcome"] == "Promoted"
    assert md["status"]["lastGood"]["version"] == "iris-baseline"
    events = [e["reason"] for e in cluster.json("get", "events", "-n", ns)["items"]
              if e["involvedObject"]["kind"] == "ModelDeployment"]  # fmt: skip
    assert {"CanaryStarted", "StepCompleted", "Promoted"} <= set(events)
    cluster_ip = cluster.get("service", "iris", ns)["spec"]["clusterIP"]

    def served_by_logreg() -> list | None:
        predictions = _try_predict(cluster_ip)
        return predictions if predictions == [0, 1, 2] else None

    wait_for(served_by_logreg, timeout=60, what="the logistic regression answering through the Service")
