"""The control loop reacts to events instead of polling: an idle operator sends (almost) nothing to the
API server, and a change of a child is acted on at once, with no timer involved.

The operator's own counter of API requests (`mlops_operator_api_requests_total`, on its metrics port)
is read from the chart-installed operator's pod, as a user's Prometheus would scrape it.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from support import REPO, Kubectl, model_deployment_manifest, training_run_manifest, wait_for, wait_phase

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.serial]
QUIET_SECONDS = 20


def api_requests(operator) -> dict[tuple[str, str, str], float]:
    """The operator's API requests so far, by (client, verb, resource)."""
    pod = operator.ready_pod()
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:9100/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("mlops_operator_api_requests_total{"):
            labels, value = line[len("mlops_operator_api_requests_total{") :].rsplit("} ", 1)
            fields = dict(part.split("=", 1) for part in labels.split(","))
            key = tuple(fields[k].strip('"') for k in ("client", "verb", "resource"))
            counts[key] = float(value)
    return counts


def not_watches(counts: dict) -> float:
    return sum(v for (_, verb, _), v in counts.items() if verb != "watch")


@pytest.fixture(scope="module")
def settled(cluster: Kubectl, ns: str) -> str:
    """A served model (ModelDeployment Healthy, no guard window, retraining triggers evaluated), finished runs,
    a waiting deployment."""
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(training_run_manifest("champion", "sklearn.linear_model.LogisticRegression"), ns)
    for i in range(10):  # runs that end at once: their Dataset does not exist
        cluster.apply(
            training_run_manifest(
                f"orphan-{i}", "sklearn.dummy.DummyClassifier", dataset="absent", datasetWaitSeconds=0
            ),
            ns,
        )
    # it evaluates its retraining triggers every 10 s (a schedule far off, a Dataset that does not move)
    template = {"datasetRef": {"name": "iris"}, "model": {"name": "iris", "estimator": "sklearn.dummy.DummyClassifier"}}
    retraining = {
        "template": template,
        "checkInterval": "10s",
        "triggers": {"schedule": "0 0 1 1 *", "newDatasetVersion": True},
    }
    cluster.apply(model_deployment_manifest("served", replicas=1, retraining=retraining), ns)
    cluster.apply(model_deployment_manifest("waiting", model="no-such-model"), ns)
    for i in range(10):
        wait_phase(cluster, "trainingrun", f"orphan-{i}", ns, ("Failed",), timeout=60)
    wait_phase(cluster, "trainingrun", "champion", ns, ("Succeeded",), timeout=180)
    wait_phase(cluster, "modeldeployment", "served", ns, ("Healthy",), timeout=120)
    wait_phase(cluster, "modeldeployment", "waiting", ns, ("Pending",), timeout=30)
    return ns


def test_an_idle_operator_sends_almost_nothing_to_the_api_server(operator, settled: str) -> None:
    first = api_requests(operator)
    assert not_watches(first) > 0, "the counter counts: the operator has made requests to get here"
    assert any(client == "kopf" for client, _, _ in first), "kopf's own requests are counted too"
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started > QUIET_SECONDS, timeout=QUIET_SECONDS + 5, what="a quiet window")
    second = api_requests(operator)
    moved = {k: second.get(k, 0) - first.get(k, 0) for k in second if k[1] != "watch"}
    moved = {k: v for k, v in moved.items() if v}
    # Other tests' namespaces may still be going away meanwhile; this namespace alone has 14 objects.
    assert sum(moved.values()) <= 3, f"requests during {QUIET_SECONDS}s of idling: {moved}"


def _get(cluster: Kubectl, kind: str, name: str, ns: str) -> dict | None:
    return cluster.get(kind, name, ns)


def test_a_deleted_child_deployment_is_recreated_within_a_second(cluster: Kubectl, settled: str) -> None:
    before = _get(cluster, "deployment", "served-canary", settled)
    assert before is not None, "the canary Deployment exists (at 0 replicas) while no canary runs"
    deleted = time.monotonic()
    cluster.run("delete", "deployment", "served-canary", "-n", settled, "--wait=false")
    back = wait_for(
        lambda: (
            (d := _get(cluster, "deployment", "served-canary", settled))
            and d["metadata"]["uid"] != before["metadata"]["uid"]
            and d
        ),
        timeout=10,
        interval=0.05,
        what="the canary Deployment to be recreated",
    )
    elapsed = time.monotonic() - deleted
    assert elapsed < 1.5, f"recreated {elapsed:.2f}s after the delete (kubectl's own calls included)"
    assert back["spec"]["replicas"] == 0


def test_a_scaled_child_is_set_back_at_once(cluster: Kubectl, settled: str) -> None:
    cluster.run("scale", "deployment", "served-stable", "-n", settled, "--replicas=3")
    scaled = time.monotonic()
    wait_for(
        lambda: _get(cluster, "deployment", "served-stable", settled)["spec"]["replicas"] == 1,
        timeout=10,
        interval=0.05,
        what="served-stable back at spec.replicas=1",
    )
    assert time.monotonic() - scaled < 1.5


def test_a_failed_job_pod_fails_the_run_at_once(cluster: Kubectl, settled: str) -> None:
    bad = training_run_manifest("bad-params", "sklearn.linear_model.LogisticRegression", params={"C": -1})
    cluster.apply(bad, settled)
    run = wait_phase(cluster, "trainingrun", "bad-params", settled, ("Failed", "Succeeded"), timeout=120)
    assert run["status"]["phase"] == "Failed", run["status"]
    job = cluster.json("get", "job", "bad-params-train", "-n", settled)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed" and c["status"] == "True")
    # The Job's condition time is whole seconds: the run failed within 1 s of it, plus that rounding.
    lag = _seconds(run["status"]["completedAt"]) - _seconds(failed["lastTransitionTime"])
    assert lag < 2.0, f"the run failed {lag:.2f}s after its Job: {json.dumps(run['status'])[:500]}"


def _seconds(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
