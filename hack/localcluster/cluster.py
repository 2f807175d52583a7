#!/usr/bin/env python3
"""A real Kubernetes cluster on this machine, without Docker (one node, or more: `make cluster-up NODES=2`):
`up`, `down`, `status`, `node-stop`/`node-start`.

Binaries come from hack/localcluster/build.sh (Go modules → a cache keyed by version). State lives
in `.localcluster/` (override with LOCALCLUSTER_DIR): pki/, etcd data, logs/, pids/ and the admin
`kubeconfig`. Every process is started in its own session and recorded by PID, so `down` stops
exactly what `up` started. `up` is idempotent: running components are kept, missing ones started.

Components are a list of `Component`s started in order, each with a readiness check; each node
(containerd, kubelet, kube-proxy) plugs in as more entries of that list.

The parts live next to this file, which holds the commands (`up`, `down`, `status`, ...) and the CLI:
  settings.py      paths, addresses, ports and versions; log(), bin_dir(), node_ip()
  pki.py           the cluster CA, certificates and kubeconfigs
  processes.py     `Component`, and starting, awaiting and stopping its process by PID file
  controlplane.py  etcd, kube-apiserver, kube-controller-manager, kube-scheduler
  node.py          the nodes: containerd, kubelet, kube-proxy, their configuration and network
  dns.py           CoreDNS behind the Service kube-dns; the Service prometheus.monitoring
  addons.py        Prometheus and its pod discovery; the S3 server (VersityGW) and .localcluster/s3.env;
                   metrics-server and prometheus-adapter behind the aggregation layer
  argocd.py        Argo CD (Redis, repo server, application controller), started only by `make argocd`;
                   `down`, `status`, `start`/`stop` and `leftovers` here cover it
  cleanup.py       removing what the node leaves behind; `leftovers`
  objects.py       hostPath volumes (`volume`) and the Gateway API CRDs (`gateway-api-crds`)

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from addons import (  # noqa: E402
    addons,
    discover_pods,
    metrics_addons_built,
    prometheus_url,
    s3_url,
    write_prometheus_config,
    write_s3_config,
)
from argocd import NAMES as ARGOCD_NAMES  # noqa: E402
from argocd import components as argocd_components  # noqa: E402
from cleanup import _mounts_under, clean_node_leftovers, leftovers, remove_containers  # noqa: E402
from controlplane import control_plane  # noqa: E402
from dns import dns, register_prometheus_service, write_dns_config  # noqa: E402
from node import Node, node, nodes, write_node_config  # noqa: E402
from objects import gateway_api_crds, volume  # noqa: E402
from pki import ensure_node_pki, ensure_pki, write_kubeconfig  # noqa: E402
from processes import Component, _pid_of, bring_up, report, stop  # noqa: E402
from settings import (  # noqa: E402
    APISERVER_PORT,
    ARGOCD,
    BINARY,
    KUBECONFIG,
    LOGS,
    PIDS,
    REPO,  # noqa: F401  re-exported: image.py reads cluster.REPO
    S3_ENV,
    STATE,
    WITH_NODE,
    bin_dir,
    log,
    node_ip,
)


def components(ip: str) -> list[Component]:
    if not WITH_NODE:
        return control_plane(ip)
    return control_plane(ip) + [c for n in nodes() for c in node(ip, n)] + addons(ip) + dns(ip)


# --------------------------------------------------------------------------------------- commands


def up() -> None:
    binaries = bin_dir()
    wanted = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    wanted += (
        [
            "kubelet",
            "kube-proxy",
            "pause",
            BINARY["s3"],
            BINARY["coredns"],
        ]
        if WITH_NODE
        else []
    )
    missing = [c for c in wanted if not (binaries / c).exists()]
    if missing:
        raise SystemExit(f"binaries missing in {binaries}: {missing}; run hack/localcluster/build.sh (make binaries)")
    for directory in (STATE, LOGS, PIDS):
        directory.mkdir(parents=True, exist_ok=True)
    ip = node_ip()
    ensure_pki(ip)
    server = f"https://127.0.0.1:{APISERVER_PORT}"
    write_kubeconfig(KUBECONFIG, cert="admin", server=server)
    for name in ("controller-manager", "scheduler"):
        write_kubeconfig(STATE / f"{name}.kubeconfig", cert=name, server=server)
    if WITH_NODE:
        for n in nodes():
            ensure_node_pki(n.name, n.suffix, n.ip(ip))
            server_of_node = n.api_server(ip)
            write_kubeconfig(STATE / f"kubelet{n.suffix}.kubeconfig", cert=f"kubelet{n.suffix}", server=server_of_node)
            # One kube-proxy identity for every node, as kubeadm's.
            write_kubeconfig(STATE / f"kube-proxy{n.suffix}.kubeconfig", cert="kube-proxy", server=server_of_node)
            write_node_config(n, ip)
        write_prometheus_config()
        write_s3_config(ip)
        write_dns_config(ip)
    for component in components(ip):
        bring_up(component, binaries)
    if WITH_NODE:
        register_prometheus_service(ip, binaries)
    addons_at = f"; Prometheus: {prometheus_url(ip)}; S3: {s3_url(ip)} ({S3_ENV})" if WITH_NODE else ""
    log(f"cluster is up; kubeconfig: {KUBECONFIG}{addons_at}")


def down() -> None:
    if not STATE.exists():
        log("no local cluster state; nothing to do")
        return
    for name in reversed(ARGOCD_NAMES):  # Argo CD, if `make argocd` started it: before the API server goes
        stop(name)
    sockets = {f"containerd{n.suffix}": n.socket for n in nodes()}
    for name in reversed([c.name for c in components(node_ip())]):
        if name in sockets and _pid_of(name):
            remove_containers(sockets[name])
        stop(name)
    for leftover in PIDS.glob("*.pid") if PIDS.exists() else []:
        stop(leftover.stem)
    if WITH_NODE:
        clean_node_leftovers()
    remaining = _mounts_under(STATE)
    if remaining:
        raise SystemExit(f"not removing {STATE}: still mounted: {remaining[:5]}")
    shutil.rmtree(STATE)
    log(f"removed {STATE}")


def restart_component(name: str, *, stopped: bool) -> None:
    """Stop one running component (`stop NAME`), or start it again and wait until it is ready (`start NAME`):
    how tests take an add-on (the S3 server) away from a running cluster and give it back."""
    component = next((c for c in components(node_ip()) + argocd_components() if c.name == name), None)
    if component is None:
        raise SystemExit(f"no component {name!r}; see `status`")
    if stopped:
        stop(name)
        return
    bring_up(component, bin_dir())


def stop_node(n: Node) -> None:
    """Node `n` goes away as a crashed machine would: its kubelet, its containers, containerd and
    kube-proxy stop (their pods' network namespaces stay, so their addresses refuse connections)."""
    containerd, kubelet, proxy = n.components()
    stop(kubelet)
    if _pid_of(containerd):
        remove_containers(n.socket)
    stop(containerd)
    stop(proxy)
    log(f"node {n.name} stopped")


def start_node(n: Node) -> None:
    """Node `n` back after stop_node: containerd, the kubelet (its pods are started again) and kube-proxy."""
    ip, binaries = node_ip(), bin_dir()
    for component in node(ip, n):
        bring_up(component, binaries)
    log(f"node {n.name} is back")


def _node_named(name: str) -> Node:
    found = next((n for n in nodes() if name in (n.name, str(n.index))), None)
    if found is None:
        raise SystemExit(f"no node {name!r}: the nodes are {[n.name for n in nodes()]}")
    return found


def status() -> int:
    # Argo CD is listed once `make argocd` ran, but is not the cluster: `argocd.py status` exits 1 when it is down.
    started_argocd = argocd_components() if ARGOCD.exists() else []
    code = report(components(node_ip()) + started_argocd, optional=started_argocd)
    if WITH_NODE and not metrics_addons_built():
        print(f"{'metrics-server, prometheus-adapter':29} not built: `make metrics-addons` (or `make test`) builds and")
        print(f"{'':29} starts them; `kubectl top` and the autoscaling examples need them")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=[
            "up",
            "down",
            "status",
            "leftovers",
            "volume",
            "gateway-api-crds",
            "discover-pods",
            "prometheus-url",
            "start",
            "stop",
            "node-stop",
            "node-start",
        ],
    )
    parser.add_argument(
        "args",
        nargs="*",
        help="volume: NAMESPACE CLAIM; discover-pods: TARGETS_FILE; start, stop: COMPONENT; "
        "node-stop, node-start: NODE (its name or number)",
    )
    args = parser.parse_args()
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    elif args.command == "volume":
        volume(*args.args)
    elif args.command == "gateway-api-crds":
        gateway_api_crds()
    elif args.command == "discover-pods":
        discover_pods(pathlib.Path(args.args[0]))
    elif args.command in ("start", "stop"):
        restart_component(args.args[0], stopped=args.command == "stop")
    elif args.command in ("node-stop", "node-start"):
        (stop_node if args.command == "node-stop" else start_node)(_node_named(args.args[0]))
    elif args.command == "prometheus-url":
        print(prometheus_url(node_ip()))
    elif args.command == "leftovers":
        found = leftovers()
        print("\n".join(found) or "nothing left")
        return 1 if found else 0
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
