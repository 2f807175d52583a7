"""ModelDeployment on the local cluster: the champion is served behind one Service, and a better
version is rolled out through canary steps to 100 % with real pods and real traffic from the host.

A canary is promoted only on a Successful measurement: a test about something else than judging
traffic (route weights) judges an always-passing query on the cluster's Prometheus."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import threading
import urllib.parse
import urllib.request

import pytest

from support import (
    REPO,
    STATE,
    UNREACHABLE_PROMETHEUS,
    Kubectl,
    artifact_path,
    condition,
    s3_client,
    s3_env,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]  # one of each species: 0, 1, 2
# Evidence that does not depend on traffic: one measurement when the canary's pod is ready, Successful.
PASSING = {
    "analysis": {
        "interval": "1h",
        "metrics": [{"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}],
    }
}
MD = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris"},
    "spec": {
        "model": {"name": "iris"},
        "replicas": 2,
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}]}},
        # The default metrics (error rate, p95 latency) on the traffic the test sends during the canary:
        # the first measurement, as soon as a canary pod is ready, has no data yet; one of the next ones passes.
        "analysis": {"interval": "5s", "inconclusiveLimit": 20},
        "postPromotion": {"enabled": False},
    },
}


def _predict(cluster_ip: str, rows: list[list[float]]) -> list:
    body = json.dumps({"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]})
    request = urllib.request.Request(
        f"http://{cluster_ip}/v2/models/iris/infer", data=body.encode(), headers={"Content-Type": "application/json"}
    )
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
    cluster_ip = cluster.get("service", "iris", ns)["spec"]["clusterIP"]
    stop = threading.Event()
    traffic = threading.Thread(target=_labelled_traffic, args=(cluster_ip, stop), daemon=True)
    traffic.start()  # the canary is judged on it: without traffic there is no data, and no promotion
    try:
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
            what="iris-logreg stable at 100 % after a passing measurement",
        )
    finally:
        stop.set()
        traffic.join(timeout=10)
    assert md["status"]["history"][0]["outcome"] == "Promoted"
    judged = {r["metric"]: r["phase"] for r in md["status"].get("lastAnalysis") or []}
    assert judged and set(judged.values()) == {"Successful"}, md["status"].get("lastAnalysis")
    assert md["status"]["lastGood"]["version"] == "iris-baseline"
    events = [
        e["reason"]
        for e in cluster.json("get", "events", "-n", ns)["items"]
        if e["involvedObject"]["kind"] == "ModelDeployment"
    ]
    assert {"CanaryStarted", "StepCompleted", "Promoted"} <= set(events)

    def served_by_logreg() -> list | None:
        predictions = _try_predict(cluster_ip)
        return predictions if predictions == [0, 1, 2] else None

    wait_for(served_by_logreg, timeout=60, what="the logistic regression answering through the Service")


def _md(name: str, *, run: str | None = None, **spec) -> str:
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"trainingRun": run} if run else {"name": "iris"},
            "replicas": 2,
            "postPromotion": {"enabled": False},
            **spec,
        },
    }
    return json.dumps(body)


def _status(cluster: Kubectl, ns: str, name: str = "iris") -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def test_degraded_model_quality_is_rolled_back(cluster: Kubectl, ns: str) -> None:
    """Labels posted back show the new version's accuracy is low: the canary is rolled back, stable untouched."""
    spec = {
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        "analysis": {
            "interval": "3s",
            "failureLimit": 2,
            "inconclusiveLimit": 20,
            "metrics": [{"name": "accuracy", "template": "accuracy", "threshold": 0.8}],
        },
    }
    cluster.apply(_md("iris", **spec), ns)
    stable_template = wait_for(
        lambda: len(t := _stable_templates(cluster, ns)) == 1 and t, timeout=60, what="the stable rollout to settle"
    )
    # A new champion that passes its (absent) gates but guesses: its live accuracy will be about 1/3.
    cluster.apply(_run_manifest("iris-guess", "sklearn.dummy.DummyClassifier", {"strategy": "uniform"}), ns)
    wait_for(
        lambda: (_status(cluster, ns).get("canary") or {}).get("version") == "iris-guess",
        timeout=180,
        what="the canary of iris-guess",
    )
    cluster_ip = cluster.get("service", "iris", ns)["spec"]["clusterIP"]
    stop = threading.Event()
    traffic = threading.Thread(target=_labelled_traffic, args=(cluster_ip, stop), daemon=True)
    traffic.start()
    try:
        status = wait_for(
            lambda: (s := _status(cluster, ns)).get("degraded") and s,
            timeout=180,
            what="a rollback on accuracy",
        )
    finally:
        stop.set()
        traffic.join(timeout=10)
    assert status["degraded"]["reason"] == "AnalysisFailed" and "accuracy" in status["degraded"]["message"]
    assert status["stable"]["version"] == "iris-logreg" and status.get("canary") is None
    assert "iris-guess" in status["failedVersions"] and status["history"][0]["outcome"] == "RolledBack"
    md = cluster.get("modeldeployment", "iris", ns)
    assert condition(md, "Degraded")["status"] == "True" and md["status"]["phase"] == "Degraded"
    assert _stable_templates(cluster, ns) <= stable_template, "the stable version's pods were not replaced"
    wait_for(
        lambda: cluster.get("deployment", "iris-canary", ns)["status"].get("replicas", 0) == 0,
        timeout=30,
        what="the canary scaled to 0",
    )


def _stable_templates(cluster: Kubectl, ns: str) -> set[str]:
    """The pod templates (ReplicaSets) of the running stable pods: scaling keeps it, a new version changes it."""
    pods = cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=iris,mlops.dev/variant=stable")
    return {
        p["metadata"]["labels"]["pod-template-hash"]
        for p in pods["items"]
        if not p["metadata"].get("deletionTimestamp")
    }


def _run_manifest(name: str, estimator: str, params: dict) -> str:
    model = {"name": "iris", "estimator": estimator, "params": params}
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {"datasetRef": {"name": "iris"}, "model": model},
    }
    return json.dumps(body)


def _labelled_traffic(cluster_ip: str, stop: threading.Event) -> None:
    """Requests through the Service, each followed by its ground-truth labels (with the answer's receipt)."""
    truth = [0, 1, 2]
    while not stop.is_set():
        try:
            body = json.dumps({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]})
            request = urllib.request.Request(
                f"http://{cluster_ip}/v2/models/iris/infer",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.load(response)
            feedback = json.dumps({"receipt": answer["parameters"]["receipt"], "labels": truth})
            request = urllib.request.Request(
                f"http://{cluster_ip}/v2/models/iris/feedback",
                data=feedback.encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=5).close()
        except OSError:
            pass
        stop.wait(0.05)  # about 20 labelled requests a second


@pytest.mark.parametrize(
    ("name", "steps"),
    [
        ("blind", [{"setWeight": 50}, {"analysis": {}}]),
        # No analysis step (background measurements only): the pause ends long before the limit.
        ("blind-pause", [{"setWeight": 50}, {"pause": {"duration": "1s"}}]),
    ],
)
def test_prometheus_down_pauses_and_never_promotes(cluster: Kubectl, ns: str, name: str, steps: list) -> None:
    spec = {
        "strategy": {"canary": {"steps": steps}},
        "analysis": {"interval": "2s", "inconclusiveLimit": 3},
        "prometheusUrl": UNREACHABLE_PROMETHEUS,
    }
    cluster.apply(_md(name, run="iris-baseline", **spec), ns)
    wait_for(lambda: _status(cluster, ns, name).get("phase") == "Healthy", timeout=120, what=f"{name} serving")
    cluster.run(
        "patch",
        "modeldeployment",
        name,
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"model":{"trainingRun":"iris-logreg"}}}',
    )
    status = wait_for(
        lambda: (s := _status(cluster, ns, name)).get("pauseReason") == "InconclusiveAnalysis" and s,
        timeout=120,
        what="the rollout paused on inconclusive analysis",
    )
    assert status["stable"]["version"] == "iris-baseline" and status["canary"]["version"] == "iris-logreg"
    assert status["canary"]["stepIndex"] == 1 and status["canary"]["successes"] == 0, status["canary"]
    assert not any(h["outcome"] == "Promoted" for h in status.get("history") or []), status["history"]
    assert any("Prometheus query failed" in r["message"] for r in status["lastAnalysis"])
    assert status["phase"] == "Paused"


def test_a_version_that_does_not_predict_as_in_training_is_never_served_and_is_rolled_back(
    cluster: Kubectl, ns: str
) -> None:
    """A version whose golden rows (held-out rows with what the model predicted in training) are no longer
    predicted the same: here its stored golden set says otherwise, with a manifest and recorded sha256 that
    match, as if the libraries had changed what the model predicts. Its server refuses to serve it
    (ModelNotReproducible, in the pod's termination message), the canary is rolled back for that reason and
    stable serves."""
    cluster.apply(
        _run_manifest("iris-drifted", "sklearn.linear_model.LogisticRegression", {"max_iter": 300}).replace(
            '"datasetRef"', '"promotion": {"policy": "manual"}, "datasetRef"'
        ),
        ns,
    )
    model = wait_phase(cluster, "trainingrun", "iris-drifted", ns, ("Succeeded",), timeout=180)["status"]["model"]
    # Rewritten through the S3 API (the server's checksums stay consistent), in the writer's directory.
    directory, bucket, root = artifact_path(ns, model["uri"]), s3_env()["MLOPS_S3_BUCKET"], s3_client()
    key = str(directory.relative_to(STATE / "s3" / "data" / bucket))
    golden = json.loads((directory / "golden.json").read_text())
    golden["predictions"][0] = (golden["predictions"][0] + 1) % 3
    changed = json.dumps(golden).encode()
    files = json.loads((directory / "MANIFEST.json").read_text())["files"]
    files["golden.json"] = hashlib.sha256(changed).hexdigest()
    manifest = json.dumps({"manifestVersion": 1, "files": files}, indent=1).encode()
    root.put_object(Bucket=bucket, Key=f"{key}/golden.json", Body=changed)
    root.put_object(Bucket=bucket, Key=f"{key}/MANIFEST.json", Body=manifest)
    sha256 = hashlib.sha256(manifest).hexdigest()
    cluster.run(
        "patch",
        "trainingrun",
        "iris-drifted",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"model": {"sha256": sha256}}}),
    )
    cluster.apply(
        _md(
            "strict",
            run="iris-baseline",
            progressDeadlineSeconds=60,  # time for the refusal: the server must have started and stopped
            strategy={"canary": {"steps": [{"setWeight": 50}]}},
        ),
        ns,
    )
    wait_for(lambda: _status(cluster, ns, "strict").get("phase") == "Healthy", timeout=120, what="strict serving")
    cluster.run(
        "patch",
        "modeldeployment",
        "strict",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"model":{"trainingRun":"iris-drifted"}}}',
    )

    def refused() -> str | None:
        pods = cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=strict,mlops.dev/version=iris-drifted")
        for pod in pods["items"]:
            for container in pod["status"].get("containerStatuses") or []:
                for state in (container.get("lastState") or {}, container.get("state") or {}):
                    message = (state.get("terminated") or {}).get("message") or ""
                    if "ModelNotReproducible" in message:
                        return message
        return None

    message = wait_for(refused, timeout=120, what="the canary's server refusing the version as not reproducible")
    assert "the golden rows are predicted differently: row 0: predicted" in message, message
    status = wait_for(
        lambda: (s := _status(cluster, ns, "strict")).get("degraded") and s,
        timeout=120,
        what="a rollback after the progress deadline",
    )
    # The rollback names the cause its servers gave, read from the canary's own pods.
    assert status["degraded"]["reason"] == "ModelNotReproducible", status["degraded"]
    assert "the golden rows are predicted differently: row 0: predicted" in status["degraded"]["message"]
    assert status["stable"]["version"] == "iris-baseline" and "iris-drifted" in status["failedVersions"]
    differs = next(c for c in status["conditions"] if c["type"] == "EnvironmentDiffers")
    assert (differs["status"], differs["reason"]) == ("False", "SameEnvironment"), "trained on the servers' image"


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_gateway_api_routing_sets_only_our_weights(cluster: Kubectl, ns: str) -> None:
    """Weights on a user's HTTPRoute (Gateway API CRDs only: no gateway runs here, so no traffic flows and
    the canary is judged on an always-passing query)."""
    made = subprocess.run(
        ["python3", str(REPO / "hack/localcluster/cluster.py"), "gateway-api-crds"], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "iris-route"},
        "spec": {
            "parentRefs": [{"name": "some-gateway"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                    "backendRefs": [{"name": "other", "port": 80, "weight": 5}],
                },
                {
                    "backendRefs": [
                        {"name": "routed-stable", "port": 80, "weight": 100},
                        {"name": "routed-canary", "port": 80, "weight": 0},
                    ]
                },
            ],
        },
    }
    cluster.apply(json.dumps(route), ns)
    foreign_rule = cluster.get("httproute", "iris-route", ns)["spec"]["rules"][0]  # as the API server defaulted it
    spec = {
        "strategy": {"canary": {"steps": [{"setWeight": 30}, {"pause": {"duration": "8s"}}]}},
        "trafficRouting": {"mode": "GatewayAPI", "gatewayAPI": {"httpRoute": "iris-route"}},
        **PASSING,
    }
    cluster.apply(_md("routed", run="iris-baseline", **spec), ns)
    wait_for(lambda: _status(cluster, ns, "routed").get("phase") == "Healthy", timeout=120, what="routed serving")
    cluster.run(
        "patch",
        "modeldeployment",
        "routed",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"model":{"trainingRun":"iris-logreg"}}}',
    )

    def weights() -> list[int] | None:
        route = cluster.get("httproute", "iris-route", ns)
        return [ref.get("weight") for ref in route["spec"]["rules"][1]["backendRefs"]] if route else None

    # The canary's pod must be ready first (a minute or more while the other modules load both cores).
    try:
        wait_for(lambda: weights() == [70, 30], timeout=240, what="70/30 on the route during the canary")
    except AssertionError as timed_out:
        pods = cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=routed")["items"]
        seen = [(p["metadata"]["name"], p["status"].get("phase"), p["status"].get("conditions")) for p in pods]
        found = f"weights {weights()}\nstatus {_status(cluster, ns, 'routed')}\npods {seen}"
        raise AssertionError(f"{timed_out}\n{found}") from None
    status = _status(cluster, ns, "routed")
    assert status["canary"]["weight"] == 30 and "70% routed-stable, 30% routed-canary" in status["routing"]
    wait_for(
        lambda: _status(cluster, ns, "routed")["stable"]["version"] == "iris-logreg", timeout=120, what="promotion"
    )
    wait_for(lambda: weights() == [100, 0], timeout=30, what="100/0 after promotion")
    rules = cluster.get("httproute", "iris-route", ns)["spec"]["rules"]
    assert rules[0] == foreign_rule, "a rule that is not ours is untouched"
    for variant in ("stable", "canary"):
        assert cluster.get("service", f"routed-{variant}", ns)["spec"]["selector"]["mlops.dev/variant"] == variant
