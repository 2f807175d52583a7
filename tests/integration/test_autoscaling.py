"""Serving that scales: the scale subresource (`kubectl scale`), the metrics APIs of the local cluster
(`kubectl top`, metrics-server; the request rate, prometheus-adapter), the HorizontalPodAutoscaler the
operator owns scaling a ModelDeployment out under load and in once it stops, and a canary whose share
holds while the total moves, rolled back to the stable version at the current total."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from support import Kubectl, answers, condition, two_iris_versions, wait_for

pytestmark = pytest.mark.usefixtures("operator")
ROWS = [[5.1, 3.5, 1.4, 0.2]]
INFER = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS}]}).encode()
PASSING = {"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}
SERVER_PODS = "app.kubernetes.io/name=mlops-server,mlops.dev/deployment="


@pytest.fixture(scope="module")
def runs(cluster: Kubectl, ns: str) -> tuple[str, str]:
    return two_iris_versions(cluster, ns, "scale")


def deployment(name: str, run: str, **spec) -> str:
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"trainingRun": run},
            "postPromotion": {"enabled": False},
            "analysis": {"interval": "1h", "metrics": [PASSING]},
            **spec,
        },
    }
    return json.dumps(body)


def status(cluster: Kubectl, ns: str, name: str) -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def replicas(cluster: Kubectl, ns: str, name: str) -> tuple[int, int]:
    """(stable, canary) replicas of the server Deployments, as applied."""
    found = [
        (cluster.get("deployment", f"{name}-{v}", ns) or {}).get("spec", {}).get("replicas") or 0
        for v in ("stable", "canary")
    ]
    return found[0], found[1]


def serving(cluster: Kubectl, ns: str, name: str, pods: int, version: str) -> dict:
    """Wait until `version` alone serves on `pods` ready pods, and the scale subresource says so."""

    def settled():
        s = status(cluster, ns, name)
        stable = s.get("stable") or {}
        ok = (
            not s.get("canary")
            and stable.get("version") == version
            and stable.get("readyReplicas") == pods
            and replicas(cluster, ns, name) == (pods, 0)
            and s.get("replicas") == pods
        )
        return s if ok else None

    return wait_for(settled, timeout=180, what=f"{name}: {version} alone on {pods} ready pods")


def scale(cluster: Kubectl, ns: str, name: str, to: int) -> None:
    cluster.run("scale", "modeldeployment", name, "-n", ns, f"--replicas={to}")


def test_kubectl_scale_moves_the_pods(cluster: Kubectl, ns: str, runs) -> None:
    a, _ = runs
    cluster.apply(deployment("scaled", a, replicas=2), ns)
    serving(cluster, ns, "scaled", 2, a)
    scale(cluster, ns, "scaled", 4)
    serving(cluster, ns, "scaled", 4, a)
    subresource = cluster.json("get", "modeldeployment", "scaled", "-n", ns, "--subresource=scale")
    assert subresource["kind"] == "Scale" and subresource["spec"]["replicas"] == 4, subresource
    assert subresource["status"]["replicas"] == 4 and subresource["status"]["selector"] == SERVER_PODS + "scaled"
    pods = cluster.json("get", "pods", "-n", ns, "-l", subresource["status"]["selector"])["items"]
    assert len(pods) == 4, [p["metadata"]["name"] for p in pods]
    scale(cluster, ns, "scaled", 1)
    serving(cluster, ns, "scaled", 1, a)


def test_kubectl_top_shows_the_server_pods(cluster: Kubectl, ns: str, runs) -> None:
    """metrics-server behind the aggregation layer: resource metrics of the pods, read from the kubelet."""
    a, _ = runs
    cluster.apply(deployment("top", a, replicas=1), ns)
    serving(cluster, ns, "top", 1, a)

    def listed():
        result = cluster.run("top", "pods", "-n", ns, "-l", SERVER_PODS + "top", "--no-headers", check=False)
        return result.stdout if result.returncode == 0 and result.stdout.strip() else None

    lines = wait_for(listed, timeout=120, what="kubectl top pods to list the server pod").splitlines()
    name, cpu, memory = lines[0].split()
    assert name.startswith("top-stable-") and cpu.endswith("m") and memory.endswith("Mi"), lines


def test_a_cpu_target_reads_the_resource_metrics(cluster: Kubectl, ns: str, runs) -> None:
    """An autoscaler on CPU gets its metric (ScalingActive) through metrics-server; the operator reports it."""
    a, _ = runs
    spec = {
        "replicas": 1,
        "server": {"resources": {"requests": {"cpu": "50m"}}},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "cpuUtilization": 80},
    }
    cluster.apply(deployment("cpu", a, **spec), ns)

    def active():
        hpa = cluster.get("horizontalpodautoscaler", "cpu", ns)
        scaling = condition(hpa, "ScalingActive")
        return hpa if scaling and scaling["status"] == "True" and hpa["status"].get("currentMetrics") else None

    hpa = wait_for(active, timeout=180, what="the CPU autoscaler to read the pods' CPU (ScalingActive=True)")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "cpu",
    }
    assert hpa["status"]["currentMetrics"][0]["resource"]["name"] == "cpu"
    assert hpa["metadata"]["ownerReferences"][0]["name"] == "cpu"
    wait_for(
        lambda: "HorizontalPodAutoscaler cpu:" in (status(cluster, ns, "cpu").get("autoscaler") or ""),
        timeout=30,
        what="the autoscaler's report in status.autoscaler",
    )
    # Without spec.autoscaling, the operator's autoscaler goes, and the replicas stay where they are.
    cluster.run(
        "patch",
        "modeldeployment",
        "cpu",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/autoscaling"}]',
    )
    wait_for(
        lambda: cluster.get("horizontalpodautoscaler", "cpu", ns) is None,
        timeout=30,
        what="the autoscaler deleted once spec.autoscaling is removed",
    )
    wait_for(lambda: "autoscaler" not in status(cluster, ns, "cpu"), timeout=30, what="status.autoscaler cleared")


class Load:
    """Requests through the Service from a few threads, until stopped; bounded, loopback only."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url, self.sent, self.failed = url, 0, 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url, data=INFER), timeout=5) as response:
                    response.read()
                self.sent += 1
            except OSError:
                self.failed += 1
            self.stop.wait(0.02)  # about 40 requests a second per thread, far under what one pod takes

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def test_the_autoscaler_scales_out_under_load_and_in_once_it_stops(cluster: Kubectl, ns: str, runs) -> None:
    a, _ = runs
    spec = {"replicas": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "requestsPerSecond": 20}}
    cluster.apply(deployment("rate", a, **spec), ns)
    serving(cluster, ns, "rate", 1, a)
    hpa = wait_for(lambda: cluster.get("horizontalpodautoscaler", "rate", ns), timeout=30, what="the autoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "mlops_requests_per_second"
    url = f"http://{cluster.get('service', 'rate', ns)['spec']['clusterIP']}/v2/models/iris/infer"
    wait_for(lambda: answers(url, INFER), timeout=60, what="kube-proxy to program the new Service")
    with Load(url) as load:
        wait_for(lambda: load.sent > 50, timeout=60, what="traffic through the Service")

        def scaled_out():
            s = status(cluster, ns, "rate")
            return s if (s.get("stable") or {}).get("readyReplicas", 0) >= 3 else None

        out = wait_for(scaled_out, timeout=240, what="the autoscaler to scale out to 3+ ready pods under load")
        assert out["stable"]["version"] == a and out["replicas"] >= 3
        spec_replicas = cluster.get("modeldeployment", "rate", ns)["spec"]["replicas"]
        assert 3 <= spec_replicas <= 4, "the autoscaler sets spec.replicas within its bounds"
    assert load.failed == 0, f"{load.failed} of {load.sent + load.failed} requests failed while scaling out"
    # Scale-down is stabilised for 5 minutes by default (no flapping under load); the test shortens it now.
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 5,
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 5}],
        }
    }
    cluster.run(
        "patch",
        "modeldeployment",
        "rate",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"autoscaling": {"behavior": behavior}}}),
    )
    serving(cluster, ns, "rate", 1, a)  # load gone: back to minReplicas
    assert "HorizontalPodAutoscaler rate:" in status(cluster, ns, "rate")["autoscaler"]


def test_a_canary_keeps_its_share_while_the_total_scales_and_rolls_back_to_the_current_total(
    cluster: Kubectl, ns: str, runs
) -> None:
    a, b = runs
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]
    cluster.apply(deployment("split", a, replicas=4, strategy={"canary": {"steps": steps}}), ns)
    serving(cluster, ns, "split", 4, a)
    cluster.run(
        "patch",
        "modeldeployment",
        "split",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"model": {"trainingRun": b}}}),
    )

    def at_pause(total: int):
        s = status(cluster, ns, "split")
        canary = s.get("canary") or {}
        stable_replicas, canary_replicas = replicas(cluster, ns, "split")
        held = canary.get("stepIndex") == 1 and s.get("pauseReason") == "PauseStep"
        whole = canary.get("readyReplicas") == canary.get("replicas") == canary_replicas
        # The status read before the Deployments may still describe the total before the scale.
        current = (s.get("stable") or {}).get("replicas") == stable_replicas
        return s if held and whole and current and stable_replicas + canary_replicas == total else None

    # 3 pods after 4: 1 canary pod is 33 %; the next total is split by the step's 25 %, not by that.
    for total, canary_pods in ((4, 1), (3, 1), (8, 2)):
        if total != 4:
            scale(cluster, ns, "split", total)
        s = wait_for(
            lambda total=total: at_pause(total),
            timeout=180,
            what=f"the canary at its manual pause with its share of {total} pods",
        )
        stable_replicas, canary_replicas = replicas(cluster, ns, "split")
        assert canary_replicas == canary_pods and abs(canary_replicas - total * 0.25) <= 1, (total, canary_replicas)
        assert s["canary"]["weight"] == round(100 * canary_pods / total)  # the share achieved, as status says
        assert s["canary"]["version"] == b and s["stable"]["version"] == a
        assert "degraded" not in s, "scaling is no reason to roll back"
    # A rollback in the middle of a scale-out: the stable version ends at the total as it is then.
    scale(cluster, ns, "split", 6)
    cluster.run("annotate", "--overwrite", "modeldeployment", "split", "-n", ns, "mlops.dev/abort=scaling")
    rolled = serving(cluster, ns, "split", 6, a)
    assert rolled["degraded"]["reason"] == "Aborted" and rolled["history"][0]["version"] == b
