"""Cluster DNS: CoreDNS (hack/localcluster/coredns: its kubernetes, forward and cache plugins) on the node, behind
the Service `kube-dns` (CLUSTER_DNS_IP, the kubelets' clusterDNS), so that pods resolve Services by name; and
the Service `prometheus` in `monitoring`, so that pods reach the local Prometheus as http://prometheus.monitoring:9090.

Both run on the node as processes, like the metrics add-ons (addons.py): their Services have no selector and
one endpoint, the process's port on the node IP (an Endpoints object, which kube-controller-manager mirrors
into an EndpointSlice, which kube-proxy programs). CoreDNS reads the API with the admin kubeconfig and forwards
other names to the host's own resolvers."""

from __future__ import annotations

import json
import pathlib
import subprocess

from node import write_if_changed
from processes import Component, _http_ok
from settings import BINARY, CLUSTER_DNS_IP, KUBECONFIG, PROMETHEUS_PORT, STATE, versions

COREDNS = STATE / "coredns"
COREDNS_PORT = 10053  # DNS, UDP and TCP, on the node IP: the Service's port 53 targets it
COREDNS_METRICS_PORT = 19153  # on the node IP: the Service's port 9153 targets it
COREDNS_HEALTH_PORT = 18053  # on loopback: only this host looks
COREDNS_READY_PORT = 18181  # on loopback: the readiness check
PROMETHEUS_SERVICE_PORT = 9090  # Prometheus's own port, as pods see it
BINARY["coredns"] = f"coredns-{versions()['COREDNS_VERSION']}"

# As kubeadm's Corefile, less its lameduck (nothing drains here; `down` would wait for it) and with the
# Service and pod records read through the admin kubeconfig, since CoreDNS runs outside the cluster.
# Answers for cluster.local are not cached: a Service is found as soon as it exists. The plugins are those
# hack/localcluster/coredns builds in (`log` too: add it here to log every query).
COREFILE = """.:{port} {{
    bind {ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    prometheus {ip}:{metrics_port}
    forward . /etc/resolv.conf
    cache 30 {{
        disable success cluster.local
        disable denial cluster.local
    }}
    loop
    reload
    loadbalance
}}
"""


def write_dns_config(ip: str) -> None:
    """CoreDNS's Corefile, rewritten only when it changes: its `reload` plugin restarts the server on every change."""
    COREDNS.mkdir(parents=True, exist_ok=True)
    write_if_changed(
        COREDNS / "Corefile",
        COREFILE.format(
            ip=ip,
            port=COREDNS_PORT,
            health_port=COREDNS_HEALTH_PORT,
            ready_port=COREDNS_READY_PORT,
            metrics_port=COREDNS_METRICS_PORT,
            kubeconfig=KUBECONFIG,
        ),
    )


def dns(ip: str) -> list[Component]:
    """CoreDNS, ready once its kubernetes plugin has synced with the API, then registered as `kube-dns`."""
    return [
        Component(
            name="coredns",
            argv=lambda b: [str(b / BINARY["coredns"]), "-conf", str(COREDNS / "Corefile")],
            ready=lambda: _http_ok(f"http://127.0.0.1:{COREDNS_READY_PORT}/ready"),
            ready_timeout=30,
            ports=[COREDNS_HEALTH_PORT, COREDNS_READY_PORT],
            after_ready=lambda b: register_dns_service(ip, b),
        ),
    ]


def register_dns_service(ip: str, binaries: pathlib.Path) -> None:
    """The Service `kube-dns` at CLUSTER_DNS_IP (no selector) and its one endpoint, CoreDNS on the node, labelled
    as in clusters that kubeadm sets up."""
    meta = {
        "name": "kube-dns",
        "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
    }
    ports = [
        ("dns", "UDP", 53, COREDNS_PORT),
        ("dns-tcp", "TCP", 53, COREDNS_PORT),
        ("metrics", "TCP", 9153, COREDNS_METRICS_PORT),
    ]
    _apply(
        binaries,
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {
                    "clusterIP": CLUSTER_DNS_IP,
                    "ports": [
                        {"name": n, "protocol": p, "port": port, "targetPort": target} for n, p, port, target in ports
                    ],
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": meta,
                "subsets": [
                    {
                        "addresses": [{"ip": ip}],
                        "ports": [{"name": n, "protocol": p, "port": target} for n, p, _, target in ports],
                    }
                ],
            },
        ],
    )


def register_prometheus_service(ip: str, binaries: pathlib.Path) -> None:
    """The namespace `monitoring` and its Service `prometheus` (no selector), whose one endpoint is the local
    Prometheus on the node: the address pods use, http://prometheus.monitoring:9090, as in clusters that run
    it in-cluster."""
    meta = {"name": "prometheus", "namespace": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}}
    _apply(
        binaries,
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {"ports": [{"name": "http", "port": PROMETHEUS_SERVICE_PORT, "targetPort": PROMETHEUS_PORT}]},
            },
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": meta,
                "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "http", "port": PROMETHEUS_PORT}]}],
            },
        ],
    )


def _apply(binaries: pathlib.Path, objects: list[dict]) -> None:
    """`kubectl apply` of `objects`, in order (a namespace before what it holds); v1 Endpoints' deprecation
    warning is expected."""
    kubectl = [str(binaries / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
    result = subprocess.run(
        [*kubectl, "apply", "--warnings-as-errors=false", "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        text=True,
        capture_output=True,
    )
    if result.returncode:
        raise SystemExit(f"kubectl apply failed: {result.stderr.strip()}")
