"""Version switches lose no request: steady traffic through the Service while a canary is promoted
from 50 % to 100 % and becomes stable, a canary at 50 % or 100 % is aborted, a canary at 100 % is rolled back
by a failing analysis, a promoted version is rolled back by the post-promotion guard, and the pinned
TrainingRun changes. Every request is counted: a non-2xx answer
or a transport error is a failure, and there must be none."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

import pytest

from support import Kubectl, answers, two_iris_versions, wait_for

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.serial]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5]]
INFER = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]}).encode()
STEPS = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}, {"pause": {}}]
FAILING = {"name": "always-fails", "query": "vector(1)", "successCondition": "result < 0"}
# The judging is not what these tests are about: one measurement when the canary's pod is ready, and it
# passes (a setWeight step waits while the latest measurement is inconclusive, as a fresh pod's would be).
PASSING = {"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}


@dataclass
class Traffic:
    """Requests through the Service, one after another, about 40 a second; failures kept with their cause."""

    url: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            request = urllib.request.Request(self.url, data=INFER, headers={"Content-Type": "application/json"})
            self.sent += 1
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
            except urllib.error.HTTPError as error:
                self.failures.append(f"HTTP {error.code} at request {self.sent}")
            except OSError as error:
                self.failures.append(f"{type(error).__name__}: {error} at request {self.sent}")
            self.stop.wait(0.025)


@pytest.fixture(scope="module")
def runs(cluster: Kubectl, ns: str) -> tuple[str, str]:
    return two_iris_versions(cluster, ns, "logreg")


def deployment(name: str, run: str, **spec) -> str:
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"trainingRun": run},
            "replicas": 2,
            "postPromotion": {"enabled": False},
            "strategy": {"canary": {"steps": STEPS}},
            "analysis": {"interval": "1h", "metrics": [PASSING]},
            **spec,
        },
    }
    return json.dumps(body)


def status(cluster: Kubectl, ns: str, name: str) -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def command(cluster: Kubectl, ns: str, name: str, verb: str) -> None:
    cluster.run("annotate", "--overwrite", "modeldeployment", name, "-n", ns, f"mlops.dev/{verb}={uuid.uuid4().hex}")


def at_weight(cluster: Kubectl, ns: str, name: str, weight: int) -> dict:
    """Wait until the canary is at `weight` with every pod it needs ready, and the stable one at its share."""

    def reached():
        s = status(cluster, ns, name)
        canary = s.get("canary") or {}
        ok = canary.get("weight") == weight and canary.get("readyReplicas") == canary.get("replicas")
        return s if ok and (s.get("stable") or {}).get("readyReplicas") == s["stable"].get("replicas") else None

    return wait_for(reached, timeout=180, what=f"{name}'s canary at {weight}% with its pods ready")


def at_gate(cluster: Kubectl, ns: str, name: str, step_index: int) -> dict:
    """Wait until the canary waits at the manual pause `step_index` (a promote completes exactly that one)."""

    def waiting():
        s = status(cluster, ns, name)
        at = (s.get("canary") or {}).get("stepIndex") == step_index and s.get("pauseReason") == "PauseStep"
        return s if at else None

    return wait_for(waiting, timeout=120, what=f"{name}'s canary waiting at the manual pause {step_index}")


def settled_on(cluster: Kubectl, ns: str, name: str, version: str) -> dict:
    """Wait until `version` is stable, Healthy, and no canary pod is left."""

    def settled():
        s = status(cluster, ns, name)
        canary = cluster.get("deployment", f"{name}-canary", ns) or {}
        gone = not (canary.get("status") or {}).get("replicas")
        return s if s.get("phase") == "Healthy" and s["stable"]["version"] == version and gone else None

    return wait_for(settled, timeout=180, what=f"{name} settled on {version} with no canary pod left")


def with_traffic(cluster: Kubectl, ns: str, name: str) -> tuple[Traffic, threading.Thread]:
    cluster_ip = cluster.get("service", name, ns)["spec"]["clusterIP"]
    traffic = Traffic(url=f"http://{cluster_ip}/v2/models/iris/infer")
    wait_for(lambda: answers(traffic.url, INFER), timeout=60, what="kube-proxy to program the new Service")
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    wait_for(lambda: traffic.sent > 20, timeout=30, what="traffic to flow")
    return traffic, thread


def finish(traffic: Traffic, thread: threading.Thread) -> None:
    traffic.stop.set()
    thread.join(timeout=10)
    assert traffic.sent > 100, f"only {traffic.sent} requests were sent"
    assert traffic.failures == [], f"{len(traffic.failures)} of {traffic.sent} requests failed: {traffic.failures[:5]}"


def test_promotion_from_50_to_100_percent_and_to_stable_loses_no_request(cluster, ns, runs) -> None:
    a, b = runs
    cluster.apply(deployment("promote", a), ns)
    settled_on(cluster, ns, "promote", a)
    traffic, thread = with_traffic(cluster, ns, "promote")
    try:
        cluster.apply(deployment("promote", b), ns)  # a change of the pinned TrainingRun
        at_weight(cluster, ns, "promote", 50)
        at_gate(cluster, ns, "promote", 1)
        command(cluster, ns, "promote", "promote")  # past the pause
        at_weight(cluster, ns, "promote", 100)
        at_gate(cluster, ns, "promote", 3)
        # The stable Deployment has no pod now: the canary alone serves, until the stable one runs b.
        command(cluster, ns, "promote", "promote")  # past the last pause: becomes stable
        settled_on(cluster, ns, "promote", b)
    finally:
        finish(traffic, thread)


@pytest.mark.parametrize("weight", [50, 100])
def test_abort_loses_no_request(cluster, ns, runs, weight: int) -> None:
    """At 100 % the stable Deployment has no pod: it must be whole again before the canary's pods go."""
    a, b = runs
    name = f"abort-{weight}"
    cluster.apply(deployment(name, a), ns)
    settled_on(cluster, ns, name, a)
    traffic, thread = with_traffic(cluster, ns, name)
    try:
        cluster.apply(deployment(name, b), ns)
        at_weight(cluster, ns, name, 50)
        at_gate(cluster, ns, name, 1)
        if weight == 100:
            command(cluster, ns, name, "promote")
            at_weight(cluster, ns, name, 100)
        command(cluster, ns, name, "abort")
        settled = wait_for(
            lambda: (s := status(cluster, ns, name)).get("degraded") and s, timeout=30, what="the abort to be recorded"
        )
        assert settled["degraded"]["reason"] == "Aborted" and settled["stable"]["version"] == a
        wait_for(
            lambda: not (cluster.get("deployment", f"{name}-canary", ns)["status"].get("replicas")),
            timeout=120,
            what="the aborted canary's pods gone once stable is whole",
        )
    finally:
        finish(traffic, thread)


def test_automatic_rollback_at_100_percent_loses_no_request(cluster, ns, runs) -> None:
    a, b = runs
    spec = {
        "strategy": {"canary": {"steps": [{"setWeight": 100}, {"analysis": {}}]}},
        "analysis": {"interval": "5s", "failureLimit": 2, "metrics": [FAILING]},
    }
    cluster.apply(deployment("rollback", a, **spec), ns)
    settled_on(cluster, ns, "rollback", a)
    traffic, thread = with_traffic(cluster, ns, "rollback")
    try:
        cluster.apply(deployment("rollback", b, **spec), ns)
        rolled = wait_for(
            lambda: (s := status(cluster, ns, "rollback")).get("degraded") and s,
            timeout=180,
            what="the rollback on the failing analysis",
        )
        assert rolled["degraded"]["reason"] == "AnalysisFailed" and rolled["stable"]["version"] == a
        wait_for(
            lambda: not (cluster.get("deployment", "rollback-canary", ns)["status"].get("replicas")),
            timeout=120,
            what="the rolled back canary's pods gone once stable is whole",
        )
    finally:
        finish(traffic, thread)


def test_post_promotion_rollback_loses_no_request(cluster, ns, runs) -> None:
    """The promoted version's live accuracy collapses (its labels come back wrong): the guard rolls the
    stable Deployment back to the last good version, a rolling update under steady traffic."""
    a, b = runs
    accuracy = {"name": "accuracy", "template": "accuracy", "threshold": 0.9}
    spec = {
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        "analysis": {"interval": "5s", "failureLimit": 2, "metrics": [accuracy]},
        "postPromotion": {"enabled": True, "window": "10m"},
    }
    cluster.apply(deployment("guarded", a, **spec), ns)
    settled_on(cluster, ns, "guarded", a)
    traffic, thread = with_traffic(cluster, ns, "guarded")
    wrong = WrongLabels(url=traffic.url.replace("/infer", "/feedback"), infer=traffic.url)
    labeller = threading.Thread(target=wrong.run, daemon=True)
    try:
        cluster.apply(deployment("guarded", b, **spec), ns)
        at_weight(cluster, ns, "guarded", 50)
        at_gate(cluster, ns, "guarded", 1)
        command(cluster, ns, "guarded", "promote")  # no label yet: only a command promotes
        promoted = settled_on(cluster, ns, "guarded", b)
        assert promoted["lastGood"]["version"] == a, f"the guard has no version to go back to: {promoted}"
        labeller.start()
        rolled = wait_for(
            lambda: (s := status(cluster, ns, "guarded")).get("degraded") and s,
            timeout=120,
            what="the post-promotion guard to roll back on the wrong labels",
        )
        assert rolled["degraded"]["reason"] == "PostPromotionAnalysisFailed", rolled["degraded"]
        assert rolled["stable"]["version"] == a, f"rolled back to {rolled['stable']['version']}, not {a}"
        wrong.stop.set()
        wait_for(
            lambda: served_versions(cluster, ns, "guarded") == {a},
            timeout=180,
            what=f"every stable pod serving {a} again",
        )
        assert wrong.posted > 0, f"no wrong label was accepted: {wrong.refusals[:3]}"
    finally:
        wrong.stop.set()
        finish(traffic, thread)


@dataclass
class WrongLabels:
    """Feedback through the Service that says every prediction was wrong, a few times a second: a client
    labelling real predictions it received (with their receipts) wrongly, which receipts cannot prevent —
    they prove the prediction, not the label. Any pod scores it under the version that predicted."""

    url: str
    infer: str
    posted: int = 0
    refusals: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(urllib.request.Request(self.infer, data=INFER), timeout=5) as response:
                    answer = json.loads(response.read())
                predicted = answer["outputs"][0]["data"]
                feedback = {"receipt": answer["parameters"]["receipt"], "labels": [f"not-{p}" for p in predicted]}
                with urllib.request.urlopen(
                    urllib.request.Request(self.url, data=json.dumps(feedback).encode()), timeout=5
                ) as response:
                    response.read()
                self.posted += 1
            except (OSError, KeyError) as error:  # a pod going away during the switch
                self.refusals.append(f"{type(error).__name__}: {error}")
            self.stop.wait(0.2)


def served_versions(cluster: Kubectl, ns: str, name: str) -> set[str]:
    """The versions the ModelDeployment's running pods serve, by their version label."""
    pods = cluster.json("get", "pods", "-n", ns, "-l", f"mlops.dev/deployment={name}")["items"]
    return {
        p["metadata"]["labels"].get("mlops.dev/version", "") for p in pods if not p["metadata"].get("deletionTimestamp")
    }
