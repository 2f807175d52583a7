#!/usr/bin/env python3
"""Measures the two rollout budgets on the local cluster (run by hand, not in CI).

    make cluster-up image && .venv/bin/python bench/rollout_timing.py [--rollouts 5]

1. Step advance: a canary `pause: {duration: 3s}` ends at `status.canary.pauseStartedAt` + 3 s (the
   time the state machine itself uses); the figure is how long after that the status shows the next
   step (budget: within 1 s). The canary is judged on an always-passing query (`vector(0)`), measured
   once when its pod is ready: a step waits while the latest measurement is inconclusive, and the
   promotion needs a Successful one, so the figure is the step timing alone.
2. Rollback: an analysis whose query always fails (`vector(1)`, `result < 0`), `failureLimit: 2`,
   `interval: 5s`. From the status showing the limit reached (the failing measurement and the
   rollback are one status write): to 100 % of traffic on stable (no ready endpoint of the Service is
   a canary pod), and to the stable version back at full capacity (all its pods available, the
   canary at 0). Budget: within one analysis interval.

It installs the operator as `make deploy` does (in the cluster, judging on the cluster's Prometheus)
and works in a namespace of its own with an artifact store; the status is polled every 50 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import pathlib
import statistics
import sys
import time

import kubernetes

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import KUBECONFIG, Kubectl, deployed_operator_namespace, wait_for, wait_phase  # noqa: E402

PAUSE_SECONDS, INTERVAL_SECONDS, POLL = 3, 5, 0.05
VERSIONS = ("base", "next")  # two model versions the deployments alternate between


def _run(name: str, estimator: str) -> str:
    return json.dumps({
        "apiVersion": "mlops.dev/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name},
        "spec": {"datasetRef": {"name": "iris"}, "promotion": {"policy": "manual"},
                 "model": {"name": "bench", "estimator": estimator}},
    })  # fmt: skip


def _deployment(name: str, run: str, spec: dict) -> str:
    return json.dumps({
        "apiVersion": "mlops.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"model": {"trainingRun": run}, "replicas": 2, "postPromotion": {"enabled": False}, **spec},
    })  # fmt: skip


@functools.cache
def _api() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(KUBECONFIG)))


def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Deployment:
    def __init__(self, kubectl: Kubectl, ns: str, name: str) -> None:
        self.kubectl, self.ns, self.name = kubectl, ns, name

    def status(self) -> dict:
        """Read with the API client, not a kubectl process per poll: the measurement must not load the machine."""
        found = _api().get_namespaced_custom_object("mlops.dev", "v1alpha1", self.ns, "modeldeployments", self.name)
        return found.get("status") or {}

    def serve(self, run: str) -> None:
        self.kubectl.run("patch", "modeldeployment", self.name, "-n", self.ns, "--type=merge", "-p",
                         json.dumps({"spec": {"model": {"trainingRun": run}}}))  # fmt: skip

    def settled_on(self, run: str) -> bool:
        status = self.status()
        return status.get("phase") in ("Healthy", "Degraded") and status["stable"]["version"] == run


def step_advances(kubectl: Kubectl, ns: str, rollouts: int) -> list[float]:
    """Seconds from each pause's end (pauseStartedAt + duration) to the status showing the next step."""
    steps = [{"setWeight": 30}, {"pause": {"duration": f"{PAUSE_SECONDS}s"}},
             {"setWeight": 60}, {"pause": {"duration": f"{PAUSE_SECONDS}s"}}]  # fmt: skip
    passing = {"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}
    spec = {"strategy": {"canary": {"steps": steps}}, "analysis": {"interval": "1h", "metrics": [passing]}}
    md = Deployment(kubectl, ns, "pauses")
    kubectl.apply(_deployment(md.name, VERSIONS[0], spec), ns)
    wait_for(lambda: md.settled_on(VERSIONS[0]), timeout=120, what="the first version serving")
    figures = []
    for i in range(rollouts):
        target = VERSIONS[(i + 1) % 2]
        md.serve(target)
        pause_end, index = None, None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, seen = md.status(), time.time()
            canary = status.get("canary")
            if pause_end is not None and (canary is None or canary["stepIndex"] != index):
                figures.append(seen - pause_end)
                print(f"rollout {i}: step {index} → {canary['stepIndex'] if canary else 'promoted'} "
                      f"{figures[-1]:+.2f}s after its pause ended")  # fmt: skip
                pause_end = None
                if canary is None:
                    break
            if pause_end is None and canary and canary.get("pauseStartedAt"):
                pause_end, index = _timestamp(canary["pauseStartedAt"]) + PAUSE_SECONDS, canary["stepIndex"]
            time.sleep(POLL)  # sampling period of the measurement
        wait_for(lambda t=target: md.settled_on(t), timeout=60, what=f"{target} promoted")
    return figures


def _no_traffic_to_canary(kubectl: Kubectl, ns: str, name: str) -> bool:
    """No ready endpoint of the Service is a canary pod: every new request goes to the stable version."""
    slices = kubectl.json("get", "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={name}")["items"]
    canary_ips = {
        pod["status"].get("podIP")
        for pod in kubectl.json("get", "pods", "-n", ns, "-l", f"mlops.dev/deployment={name},mlops.dev/variant=canary")[
            "items"
        ]
    }
    ready = {
        a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready") for a in e["addresses"]
    }
    return not (ready & canary_ips)


def _stable_at_full(kubectl: Kubectl, ns: str, name: str) -> bool:
    stable, canary = (kubectl.get("deployment", f"{name}-{v}", ns) or {} for v in ("stable", "canary"))
    replicas = stable.get("spec", {}).get("replicas", 0)
    available = stable.get("status", {}).get("availableReplicas", 0)
    return replicas == 2 and available == 2 and canary.get("status", {}).get("replicas", 0) == 0


def rollbacks(kubectl: Kubectl, ns: str, rollouts: int) -> list[tuple[float, float]]:
    """(limit reached → no traffic to the canary, limit reached → stable at full capacity) per rollback."""
    failing = {"name": "always-fails", "query": "vector(1)", "successCondition": "result < 0"}
    spec = {"strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
            "analysis": {"interval": f"{INTERVAL_SECONDS}s", "failureLimit": 2, "metrics": [failing]}}  # fmt: skip
    figures = []
    for i in range(rollouts):
        md = Deployment(kubectl, ns, f"failing-{i}")
        kubectl.apply(_deployment(md.name, VERSIONS[0], spec), ns)
        wait_for(lambda m=md: m.settled_on(VERSIONS[0]), timeout=120, what="the stable version serving")
        md.serve(VERSIONS[1])
        wait_for(lambda m=md: (m.status().get("canary") or {}).get("readyReplicas"), timeout=120,
                 what="the canary pods ready")  # fmt: skip
        limit_seen = wait_for(lambda m=md: m.status().get("degraded") and time.time(), timeout=120,
                              what="the failure limit reached", interval=POLL)  # fmt: skip
        traffic = wait_for(lambda m=md: _no_traffic_to_canary(kubectl, ns, m.name) and time.time(), timeout=60,
                           what="no traffic to the canary", interval=POLL)  # fmt: skip
        full = wait_for(lambda m=md: _stable_at_full(kubectl, ns, m.name) and time.time(), timeout=60,
                        what="the stable version at full capacity", interval=POLL)  # fmt: skip
        status = md.status()
        figures.append((traffic - limit_seen, full - limit_seen))
        print(f"rollback {i}: {status['degraded']['message']!r}; after the status showed the limit reached: "
              f"100 % of traffic on stable {traffic - limit_seen:.2f}s later, "
              f"stable back at full capacity {full - limit_seen:.2f}s later")  # fmt: skip
        kubectl.run("delete", "modeldeployment", md.name, "-n", ns, "--wait=false")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=5)
    args = parser.parse_args()
    kubectl = Kubectl(KUBECONFIG)
    with deployed_operator_namespace(kubectl, "bench") as ns:
        kubectl.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
        kubectl.apply(_run(VERSIONS[0], "sklearn.dummy.DummyClassifier"), ns)
        kubectl.apply(_run(VERSIONS[1], "sklearn.linear_model.LogisticRegression"), ns)
        for run in VERSIONS:
            wait_phase(kubectl, "trainingrun", run, ns, ("Succeeded",), timeout=300)
        advances = step_advances(kubectl, ns, args.rollouts)
        backs = rollbacks(kubectl, ns, args.rollouts)
        print(f"\nstep advance after the pause ended: median {statistics.median(advances):.2f}s, "
              f"max {max(advances):.2f}s over {len(advances)} pauses (budget: 1 s)")  # fmt: skip
        for what, values in (("100 % of traffic on stable", [a for a, _ in backs]),
                             ("stable at full capacity", [b for _, b in backs])):  # fmt: skip
            print(f"rollback, limit reached → {what}: median {statistics.median(values):.2f}s, max {max(values):.2f}s "
                  f"over {len(backs)} rollbacks (budget: one interval, {INTERVAL_SECONDS} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
