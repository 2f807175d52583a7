"""Real pods on the local node: the project image runs, Jobs complete, Services split real traffic.

Every namespace here enforces the `restricted` Pod Security Standard, so these also prove that the
image and the pod specs the project uses are admitted there.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import urllib.request

from support import RESTRICTED_CONTAINER, RESTRICTED_POD, Kubectl, wait_for


def _phase(kubectl: Kubectl, namespace: str, pod: str) -> str | None:
    obj = kubectl.get("pod", pod, namespace)
    return obj and obj["status"].get("phase")


def test_the_nodes_are_ready(cluster: Kubectl) -> None:
    for node in cluster.json("get", "nodes")["items"]:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", (node["metadata"]["name"], ready)
        assert node["spec"]["podCIDR"]


def _run_pod(cluster: Kubectl, namespace: str, name: str, container: dict, **spec) -> tuple[str, str]:
    """Run one restricted pod of the project image to its end: (phase, logs)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**RESTRICTED_POD, "restartPolicy": "Never", "containers": [{"name": "main", **container}], **spec},
    }
    cluster.apply(json.dumps(pod), namespace)
    phase = wait_for(
        lambda: _phase(cluster, namespace, name) in ("Succeeded", "Failed") and _phase(cluster, namespace, name),
        timeout=60,
        what=f"the {name} pod to finish",
    )
    return phase, cluster.run("logs", name, "-n", namespace).stdout


def test_pod_runs_the_project_image(cluster: Kubectl, image: str, namespace: str) -> None:
    phase, logs = _run_pod(
        cluster, namespace, "version", {"image": image, "args": ["--version"], **RESTRICTED_CONTAINER}
    )
    assert phase == "Succeeded", logs
    assert logs.strip() == "mlops-operator 0.1.0"


def test_the_image_runs_as_its_own_non_root_user(cluster: Kubectl, image: str, namespace: str) -> None:
    """The pod sets no runAsUser: the user is the image's own (USER 10001:10001 in operator/Dockerfile)."""
    whoami = "import os, pwd; print(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name)"
    container = {"image": image, "command": ["python3", "-c", whoami], **RESTRICTED_CONTAINER}
    phase, logs = _run_pod(cluster, namespace, "whoami", container)
    assert phase == "Succeeded", logs
    assert logs.split() == ["10001", "10001", "mlops"], logs


def test_job_runs_to_completion(cluster: Kubectl, image: str, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "count"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **RESTRICTED_POD,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "command": ["python3", "-c", "print(sum(range(101)))"],
                            **RESTRICTED_CONTAINER,
                        }
                    ],
                }
            },
        },
    }
    cluster.apply(json.dumps(job), namespace)
    cluster.run("wait", "--for=condition=Complete", "job/count", "-n", namespace, "--timeout=90s")
    assert cluster.run("logs", "job/count", "-n", namespace).stdout.strip() == "5050"


def _mount_points() -> dict[str, str]:
    """Mount point → propagation fields, from the host's mount table."""
    points = {}
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")[0].split()
        points[fields[4]] = " ".join(fields[6:])
    return points


def test_a_running_pods_network_namespace_stays_deletable(cluster: Kubectl, image: str, namespace: str) -> None:
    """Each pod sandbox's namespace is mounted at /run/netns/cni-…; that directory is its own shared
    mount point from the start (as `ip netns add` of a second node makes it), so no sandbox mount is
    ever hidden under it — a hidden one can never be unmounted, and its pod hangs in Terminating."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper"},
        "spec": {
            **RESTRICTED_POD,
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": {"kubernetes.io/hostname": "mlops-node"},
            "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"], **RESTRICTED_CONTAINER}],
        },
    }
    cluster.apply(json.dumps(pod), namespace)
    wait_for(lambda: _phase(cluster, namespace, "sleeper") == "Running", timeout=60, what="the sleeper pod running")
    points, netns = _mount_points(), pathlib.Path("/run/netns")
    assert "shared:" in points.get(str(netns), ""), f"{netns} is not a shared mount point: {points.get(str(netns))}"
    sandboxes = sorted(netns.glob("cni-*"))
    assert sandboxes, "no pod sandbox namespace under /run/netns"
    hidden = [str(s) for s in sandboxes if not os.path.ismount(s)]
    assert not hidden, f"sandbox namespaces hidden under the {netns} mount: {hidden}"
    cluster.run("delete", "pod", "sleeper", "-n", namespace, "--wait=false")
    wait_for(lambda: cluster.get("pod", "sleeper", namespace) is None, timeout=60, what="the sleeper pod deleted")


# A tiny HTTP server answering with the pod's variant label (from the downward API).
SERVER = """
import http.server, os
variant = os.environ["VARIANT"]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = variant.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""


def _deployment(name: str, *, variant: str, replicas: int, image: str) -> dict:
    labels = {"app": "split", "variant": variant}
    container = {
        "name": "server",
        "image": image,
        "command": ["python3", "-c", SERVER],
        "env": [{"name": "VARIANT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['variant']"}}}],
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        **RESTRICTED_CONTAINER,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {**RESTRICTED_POD, "containers": [container]}},
        },
    }


# Names a pod resolves through the cluster's DNS (CoreDNS behind the Service kube-dns), and what it fetches.
LOOKUPS = """
import socket, time, urllib.request
def fetch(url):  # a new Service is served once this node's kube-proxy has programmed it: poll for 30 s
    deadline = time.monotonic() + 30
    while True:
        try:
            return urllib.request.urlopen(url, timeout=10).read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
for name in ("kubernetes.default", "prometheus.monitoring", "web"):
    print(name, socket.gethostbyname(name))
for url in ("http://prometheus.monitoring:9090/-/ready", "http://web"):
    print(url, fetch(url))
"""


def test_pods_resolve_service_names_and_reach_pods_on_the_other_node(
    cluster: Kubectl, image: str, namespace: str
) -> None:
    """A server pod on each node behind the Service `web`; a pod on each node resolves Service names
    (its own namespace's, another's) and reaches Prometheus by its Service name and the other node's pod."""
    nodes = sorted(n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"])
    assert len(nodes) == 2, nodes
    for node in nodes:
        server = _deployment(f"web-{node}", variant=node, replicas=1, image=image)
        server["spec"]["template"]["metadata"]["labels"]["app"] = "web"
        server["spec"]["selector"]["matchLabels"]["app"] = "web"
        server["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
        cluster.apply(json.dumps(server), namespace)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    cluster.apply(json.dumps(service), namespace)
    for node in nodes:
        cluster.run("rollout", "status", f"deployment/web-{node}", "-n", namespace, "--timeout=90s")
    for node, other in zip(nodes, reversed(nodes), strict=True):
        [pod] = cluster.json("get", "pods", "-n", namespace, "-l", f"variant={other}")["items"]
        direct = f"http://{pod['status']['podIP']}:8080"  # the other node's server pod, by its IP
        script = LOOKUPS + f"print('direct', fetch({direct!r}))\n"
        container = {"image": image, "command": ["python3", "-c", script], **RESTRICTED_CONTAINER}
        phase, logs = _run_pod(
            cluster, namespace, f"dns-{node}", container, nodeSelector={"kubernetes.io/hostname": node}
        )
        assert phase == "Succeeded", logs
        lines = dict(line.split(" ", 1) for line in logs.splitlines())
        assert lines["kubernetes.default"] == "10.96.0.1", logs
        assert lines["http://prometheus.monitoring:9090/-/ready"] == "Prometheus Server is Ready.", logs
        assert lines["http://web"] in nodes and lines["direct"] == other, logs
    missing = [e for e in cluster.json("get", "events", "-n", namespace)["items"] if e["reason"] == "MissingClusterDNS"]
    assert not missing, f"pods without cluster DNS: {missing}"


def test_service_splits_traffic_by_replica_ratio(cluster: Kubectl, image: str, namespace: str) -> None:
    """4 ready pods behind one ClusterIP, 1 of them canary: about a quarter of 400 requests reach it."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "split"},
        "spec": {"selector": {"app": "split"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    for manifest in (
        service,
        _deployment("split-stable", variant="stable", replicas=3, image=image),
        _deployment("split-canary", variant="canary", replicas=1, image=image),
    ):
        cluster.apply(json.dumps(manifest), namespace)
    for name in ("split-stable", "split-canary"):
        cluster.run("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=120s")
    wait_for(
        lambda: (
            sum(
                len([e for e in s.get("endpoints", []) if e["conditions"].get("ready")])
                for s in cluster.json(
                    "get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=split"
                )["items"]
            )
            == 4
        ),
        timeout=60,
        what="4 ready endpoints behind the Service",
    )
    cluster_ip = cluster.get("service", "split", namespace)["spec"]["clusterIP"]

    def proxied_endpoints() -> int:
        """Endpoints kube-proxy has programmed for the Service (it follows the EndpointSlices a moment later)."""
        rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
        return sum(1 for line in rules.splitlines() if f'"{namespace}/split -> ' in line and "-j KUBE-SEP-" in line)

    wait_for(lambda: proxied_endpoints() == 4, timeout=60, what="kube-proxy to program the 4 endpoints")

    def reachable() -> bool:
        try:
            with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(reachable, timeout=30, what=f"the ClusterIP {cluster_ip} to answer from the host (kube-proxy rules)")
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(400):
        with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=5) as response:
            counts[response.read().decode()] += 1
    assert set(counts) == {"stable", "canary"}, counts
    share = counts["canary"] / 400
    # Binomial(400, 0.25) has a standard deviation of 2.2 %: ±8 % is over 3.5 sigma.
    assert 0.17 <= share <= 0.33, f"canary share {share:.1%} of 400 requests ({counts})"
