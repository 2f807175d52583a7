"""Where the local cluster keeps its state, its addresses, ports and versions, and helpers every part uses."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE = pathlib.Path(os.environ.get("LOCALCLUSTER_DIR", REPO / ".localcluster")).resolve()
PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_DNS_IP = "10.96.0.10"  # the Service kube-dns, in front of CoreDNS (dns.py); the kubelets' clusterDNS
POD_CIDR = "10.244.0.0/16"
APISERVER_PORT = int(os.environ.get("LOCALCLUSTER_APISERVER_PORT", "6443"))
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
NODE_NAME = "mlops-node"  # node 1; node N > 1 is mlops-node-N
GATEWAY_API_VERSION = "v1.4.1"  # CRDs only: no gateway implementation runs here
PAUSE_IMAGE = "localhost/mlops-pause:1.0"
# Node 1 keeps its state here and runs in the host's network namespace; node N > 1 under STATE/node-N,
# in a network namespace of its own (see node.py).
CONTAINERD = STATE / "containerd"
CONTAINERD_SOCKET = CONTAINERD / "containerd.sock"
CNI_BRIDGE = "mlops0"  # every node's pod bridge, each in its own network namespace
CNI_NETWORK = "mlops-pods"
PROMETHEUS = STATE / "prometheus"
PROMETHEUS_PORT = 19090
S3 = STATE / "s3"  # VersityGW: its posix backend (one directory per bucket) and its credentials
S3_PORT = 19000
S3_ENV = STATE / "s3.env"  # endpoint, credentials and bucket for tools and tests (shell KEY=value lines)
S3_BUCKET = "mlops"
# The metrics APIs' servers (add-ons behind the aggregation layer), by name, with their ports on the node IP.
METRICS_ADDONS = {"metrics-server": 19443, "prometheus-adapter": 19444}
# Argo CD (`make argocd`, argocd.py): its state (Redis's configuration and data, the repo server's clones and
# sockets), its namespace, and its processes' ports on loopback (the controller's metrics listen on every address).
ARGOCD = STATE / "argocd"
ARGOCD_NAMESPACE = "argocd"
ARGOCD_REDIS_PORT = 16379
ARGOCD_REPO_SERVER_PORT = 18081
ARGOCD_REPO_SERVER_METRICS_PORT = 18084
ARGOCD_CONTROLLER_METRICS_PORT = 18082
WITH_NODE = os.environ.get("LOCALCLUSTER_NODE", "1") != "0"
# How many nodes `up` starts (`make cluster-up NODES=2`); `up` never removes one. Unset: as many as
# the cluster has (see node.py), at least one.
NODES = int(os.environ.get("LOCALCLUSTER_NODES") or 0)
# Component name → executable name, where they differ.
BINARY: dict[str, str] = {}

_started = time.monotonic()


def log(message: str) -> None:
    print(f"[localcluster {time.monotonic() - _started:5.1f}s] {message}", file=sys.stderr, flush=True)


def bin_dir() -> pathlib.Path:
    out = subprocess.run(
        ["bash", str(HERE / "build.sh")],
        env={**os.environ, "BIN_ONLY": "1"},
        check=True,
        capture_output=True,
        text=True,
    )
    return pathlib.Path(out.stdout.strip())


def versions() -> dict[str, str]:
    """The KEY=value lines of versions.sh (the versions the binaries are built at)."""
    pairs = {}
    for line in (HERE / "versions.sh").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.isidentifier() and key.isupper() and value and not value.startswith('"'):
            pairs[key] = value.split("#")[0].strip()
    return pairs


def node_ip() -> str:
    """The host's primary IPv4 address: what the apiserver advertises so that pods can reach it."""
    if os.environ.get("LOCALCLUSTER_NODE_IP"):
        return os.environ["LOCALCLUSTER_NODE_IP"]
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True)
    words = out.stdout.split()
    if "src" in words:
        return words[words.index("src") + 1]
    raise SystemExit("cannot find this host's IPv4 address (set LOCALCLUSTER_NODE_IP)")
