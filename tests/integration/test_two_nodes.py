"""Two nodes (the session's cluster has two: hack/pytest.sh starts it with LOCALCLUSTER_NODES=2): a
ModelDeployment spread over both serves through one Service, and survives losing a node mid-canary;
the operator's HA replicas run on different nodes, and the standby takes over when the active one's
node stops.

A node is stopped as a crashed machine would stop (`cluster.py node-stop`): its kubelet, containerd
and every container on it are killed at once, and it is started again afterwards (`node-start`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from support import (
    CLUSTER,
    Background,
    Kubectl,
    helm,
    install_ha_release,
    lease_holder,
    two_iris_versions,
    wait_for,
)

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.serial]

NODE_1, NODE_2 = "mlops-node", "mlops-node-2"
HOSTNAME = "kubernetes.io/hostname"
# What a serving team writes to fail over fast: without it, Kubernetes' DefaultTolerationSeconds
# admission keeps a dead node's pods bound to it for 300 s before they are recreated elsewhere.
FAST_FAILOVER = [
    {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    for taint in ("unreachable", "not-ready")
]
# One pod of each version on each node; a node that is gone (tainted) is no domain to balance against.
SPREAD = [{"maxSkew": 1, "topologyKey": HOSTNAME, "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor"}]


def _ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


@contextlib.contextmanager
def stopped_node(cluster: Kubectl, name: str, operator) -> Iterator[float]:
    """Node `name` stopped (yields when, on the monotonic clock), then started again and Ready; the
    restarts of the session's operator its return causes are no crash of the operator's."""
    on_it = any(p["spec"].get("nodeName") == name for p in operator.pods())
    before = operator._restarts()
    subprocess.run([*CLUSTER, "node-stop", name], check=True, capture_output=True)
    try:
        yield time.monotonic()
    finally:
        subprocess.run([*CLUSTER, "node-start", name], check=True, capture_output=True)
        wait_for(lambda: _ready(cluster.json("get", "node", name)), timeout=90, what=f"{name} Ready again")
        if on_it:  # its container died with the node: the kubelet's restart is counted once it reports it
            wait_for(
                lambda: operator._restarts() > before,
                timeout=90,
                what=f"the session operator's restart on {name} reported",
            )
        operator.wait_ready()
        operator.tolerate_restarts()


def _server_pods(cluster: Kubectl, ns: str) -> list[dict]:
    pods = cluster.json("get", "pods", "-n", ns, "-l", "app.kubernetes.io/name=mlops-server")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def _placement(pods: list[dict]) -> dict[tuple[str, str], int]:
    """(version, node) → ready pods."""
    counts: dict[tuple[str, str], int] = {}
    for pod in pods:
        if _pod_ready(pod):
            key = (pod["metadata"]["labels"].get("mlops.dev/version", "?"), pod["spec"]["nodeName"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def _wait_for_placement(cluster: Kubectl, ns: str, want: dict, *, timeout: float, what: str) -> None:
    """Wait until the ready server pods are placed as `want` says; the failure names the last placement."""
    seen: list[dict] = [{}]

    def placed() -> bool:
        seen[0] = _placement(_server_pods(cluster, ns))
        return seen[0] == want

    try:
        wait_for(placed, timeout=timeout, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}; ready pods (version, node) → count: {seen[0]}") from None


class SteadyTraffic(Background):
    """Predictions through the Service, one after the other, as a client that retries a connection
    refused (no server saw the request, so that is always safe — Envoy's `connect-failure`) does.
    Anything else that fails (reset, timeout, an error status) is a lost request."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.answered, self.refused, self.lost = url, {}, 0, []

    def _once(self, body: bytes) -> str:
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)["model_version"]

    def _run(self) -> None:
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        body = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows}]}).encode()
        while not self.stop.is_set():
            for _ in range(50):
                try:
                    version = self._once(body)
                    self.answered[version] = self.answered.get(version, 0) + 1
                    break
                except urllib.error.URLError as error:
                    if isinstance(error.reason, ConnectionRefusedError):
                        self.refused += 1
                        continue
                    self.lost.append(f"{time.monotonic():.1f}: {error}")
                    break
                except OSError as error:  # reset or timed out once connected: the request was in flight
                    self.lost.append(f"{time.monotonic():.1f}: {error!r}")
                    break
            self.stop.wait(0.02)


def test_both_nodes_are_ready_with_their_own_pod_network(cluster: Kubectl) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.json("get", "nodes")["items"]}
    assert set(nodes) == {NODE_1, NODE_2}, f"the session's cluster has two nodes: {sorted(nodes)}"
    assert all(_ready(n) for n in nodes.values()), {k: n["status"]["conditions"] for k, n in nodes.items()}
    cidrs = {n["spec"]["podCIDR"] for n in nodes.values()}
    addresses = {a["address"] for n in nodes.values() for a in n["status"]["addresses"] if a["type"] == "InternalIP"}
    assert len(cidrs) == 2 and len(addresses) == 2, "each node has its own pod CIDR and IP"


def test_a_model_spread_over_both_nodes_survives_losing_one_mid_canary(cluster: Kubectl, ns: str, operator) -> None:
    a, b = two_iris_versions(cluster, ns, "tn")
    md = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {"trainingRun": a},
            "replicas": 4,
            "server": {"topologySpreadConstraints": SPREAD, "tolerations": FAST_FAILOVER},
            # The node goes during the pause; the rollout goes on to 100 % with the pods recreated.
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "40s"}}]}},
            "analysis": {
                "interval": "1h",
                "metrics": [{"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}],
            },
            "postPromotion": {"enabled": False},
        },
    }
    cluster.apply(json.dumps(md), ns)
    _wait_for_placement(
        cluster, ns, {(a, NODE_1): 2, (a, NODE_2): 2}, timeout=180, what=f"two ready pods of {a} on each node"
    )
    service = cluster.get("service", "iris", ns)
    url = f"http://{service['spec']['clusterIP']}/v2/models/iris/infer"
    with SteadyTraffic(url) as traffic:
        wait_for(lambda: traffic.answered.get(a, 0) >= 20, timeout=30, what=f"{a} answering through the Service")
        md["spec"]["model"] = {"trainingRun": b}
        cluster.apply(json.dumps(md), ns)
        placed = {(a, NODE_1): 1, (a, NODE_2): 1, (b, NODE_1): 1, (b, NODE_2): 1}
        _wait_for_placement(
            cluster, ns, placed, timeout=120, what="the canary at 50 %: one pod of each version on each node"
        )
        slices = cluster.json("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=iris")["items"]
        serving_nodes = {e.get("nodeName") for s in slices for e in s.get("endpoints") or []}
        assert serving_nodes == {NODE_1, NODE_2}, "one Service in front of the pods of both nodes"
        wait_for(lambda: traffic.answered.get(b, 0) >= 5, timeout=30, what=f"the canary {b} answering")
        on_stopped_node = sum(p["spec"]["nodeName"] == NODE_2 for p in _server_pods(cluster, ns))
        with stopped_node(cluster, NODE_2, operator) as stopped_at:
            # Replaced on the surviving node once the node controller saw it go (20 s) and the
            # tolerations ran out (5 s): both versions, two pods each, all on node 1.
            _wait_for_placement(
                cluster,
                ns,
                {(a, NODE_1): 2, (b, NODE_1): 2},
                timeout=120,
                what=f"the pods of {NODE_2} recreated on {NODE_1}",
            )
            recovered_after = time.monotonic() - stopped_at
            status = cluster.get("modeldeployment", "iris", ns)["status"]
            assert status.get("degraded") is None, f"losing a node is no reason to roll back: {status}"
            final = wait_for(
                lambda: (
                    (s := cluster.get("modeldeployment", "iris", ns)["status"])["stable"]["version"] == b
                    and s["phase"] == "Healthy"
                    and s
                ),
                timeout=120,
                what=f"{b} promoted after the pause, with {NODE_2} still down",
            )
            # The stable Deployment rolls its four pods to the promoted version on the one node left,
            # a pod at a time, each loading and replaying its model first.
            _wait_for_placement(cluster, ns, {(b, NODE_1): 4}, timeout=180, what=f"the four pods of {b} on {NODE_1}")
            refused_while_down = traffic.refused
            answered_while_down = dict(traffic.answered)
    assert final["history"][0]["version"] == b and final["history"][0]["outcome"] == "Promoted"
    # Lost: at most the request in flight on each pod of the node when it died (one client, one request at
    # a time; the node's containers die one after the other, so the next request can reach a pod not yet
    # dead); requests the dead pods' addresses refused until the node controller took them out of the
    # Service were retried and answered.
    assert len(traffic.lost) <= on_stopped_node, f"requests lost beyond one in flight per dead pod: {traffic.lost}"
    assert sum(answered_while_down.values()) > 100, answered_while_down
    print(
        f"node loss: pods recreated after {recovered_after:.0f}s; {refused_while_down} connections refused and "
        f"retried; lost {traffic.lost}"
    )


def test_the_standby_takes_over_when_the_active_replicas_node_stops(cluster: Kubectl, namespace: str, operator) -> None:
    ns, release = namespace, f"ha-{namespace[-6:]}"
    try:
        pods = install_ha_release(cluster, release, ns)
        node_of = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
        assert set(node_of.values()) == {NODE_1, NODE_2}, f"the chart spreads its HA replicas over nodes: {node_of}"

        active = wait_for(lambda: lease_holder(cluster, release, ns), timeout=90, what="one replica to hold the Lease")
        [standby] = [n for n in node_of if n != active]
        standby_ip = next(p["status"]["podIP"] for p in pods if p["metadata"]["name"] == standby)

        def reconciles() -> float:
            with urllib.request.urlopen(f"http://{standby_ip}:9100/metrics", timeout=5) as response:
                lines = response.read().decode().splitlines()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith("mlops_reconciles_total{") and 'kind="datasets"' in line
            )

        assert reconciles() == 0, "the standby works only once the active replica is gone"
        dataset = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "after"},
            "spec": {"source": {"builtin": {"name": "iris"}}, "target": "target"},
        }
        with stopped_node(cluster, node_of[active], operator) as stopped_at:
            cluster.apply(json.dumps(dataset), ns)
            wait_for(
                lambda: reconciles() > 0, timeout=60, what=f"the standby {standby} on {node_of[standby]} to take over"
            )
            took = time.monotonic() - stopped_at
    finally:
        helm(cluster, "uninstall", release, "-n", ns, "--wait", "--timeout", "2m", check=False)
    # The standby takes the Lease once it has seen it unrenewed for 15 s (it looks every 2 s), then starts
    # the operator (a few seconds to list what it watches).
    assert took < 15 + 15, f"the standby took over {took:.0f}s after the active replica's node stopped"
    print(f"HA: the standby on {node_of[standby]} took over {took:.1f}s after {node_of[active]} stopped")
