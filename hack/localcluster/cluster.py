#!/usr/bin/env python3
"""A real single-node Kubernetes control plane on this machine, without Docker: `up`, `down`, `status`.

Binaries come from hack/localcluster/build.sh (Go modules → a cache keyed by version). State lives
in `.localcluster/` (override with LOCALCLUSTER_DIR): pki/, etcd data, logs/, pids/ and the admin
`kubeconfig`. Every process is started in its own session and recorded by PID, so `down` stops
exactly what `up` started. `up` is idempotent: running components are kept, missing ones started.

Components are a list of `Component`s started in order, each with a readiness check; the node
(containerd, kubelet, kube-proxy) plugs in as more entries of that list.

The parts live next to this file, which holds the commands (`up`, `down`, `status`, ...) and the CLI:
  settings.py      paths, addresses, ports and versions; log(), bin_dir(), node_ip()
  pki.py           the cluster CA, certificates and kubeconfigs
  processes.py     `Component`, and starting, awaiting and stopping its process by PID file
  controlplane.py  etcd, kube-apiserver, kube-controller-manager, kube-scheduler
  node.py          containerd, kubelet, kube-proxy and their configuration
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

from addons import addons, discover_pods, prometheus_url, s3_url, write_prometheus_config, write_s3_config  # noqa: E402
from argocd import NAMES as ARGOCD_NAMES  # noqa: E402
from argocd import components as argocd_components  # noqa: E402
from cleanup import _mounts_under, clean_node_leftovers, leftovers, remove_containers  # noqa: E402
from controlplane import control_plane  # noqa: E402
from node import node, write_node_config  # noqa: E402
from objects import gateway_api_crds, volume  # noqa: E402
from pki import ensure_pki, write_kubeconfig  # noqa: E402
from processes import Component, _pid_of, report, start, stop, wait_ready  # noqa: E402
from settings import (  # noqa: E402
    APISERVER_PORT,
    ARGOCD,
    BINARY,
    CONTAINERD_SOCKET,  # noqa: F401  re-exported: image.py reads cluster.CONTAINERD_SOCKET
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
    return control_plane(ip) + (node(ip) + addons(ip) if WITH_NODE else [])


# --------------------------------------------------------------------------------------- commands


def up() -> None:
    binaries = bin_dir()
    wanted = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    wanted += ["kubelet", "kube-proxy", "pause", BINARY["s3"], BINARY["metrics-server"],
               BINARY["prometheus-adapter"]] if WITH_NODE else []  # fmt: skip
    missing = [c for c in wanted if not (binaries / c).exists()]
    if missing:
        raise SystemExit(f"binaries missing in {binaries}: {missing}; run hack/localcluster/build.sh (make binaries)")
    for directory in (STATE, LOGS, PIDS):
        directory.mkdir(parents=True, exist_ok=True)
    ip = node_ip()
    ensure_pki(ip)
    server = f"https://127.0.0.1:{APISERVER_PORT}"
    write_kubeconfig(KUBECONFIG, cert="admin", server=server)
    for name in ("controller-manager", "scheduler", "kubelet", "kube-proxy"):
        write_kubeconfig(STATE / f"{name}.kubeconfig", cert=name, server=server)
    if WITH_NODE:
        write_node_config(ip, binaries)
        write_prometheus_config()
        write_s3_config(ip)
    for component in components(ip):
        start(component, binaries)
        wait_ready(component)
        if component.after_ready:
            component.after_ready(binaries)
    addons_at = f"; Prometheus: {prometheus_url(ip)}; S3: {s3_url(ip)} ({S3_ENV})" if WITH_NODE else ""
    log(f"cluster is up; kubeconfig: {KUBECONFIG}{addons_at}")


def down() -> None:
    if not STATE.exists():
        log("no local cluster state; nothing to do")
        return
    for name in reversed(ARGOCD_NAMES):  # Argo CD, if `make argocd` started it: before the API server goes
        stop(name)
    names = [c.name for c in components(node_ip())]
    for name in reversed(names):
        if name == "containerd" and _pid_of("containerd"):
            remove_containers()
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
    start(component, bin_dir())
    wait_ready(component)


def status() -> int:
    # Argo CD is listed once `make argocd` ran, but is not the cluster: `argocd.py status` exits 1 when it is down.
    started_argocd = argocd_components() if ARGOCD.exists() else []
    return report(components(node_ip()) + started_argocd, optional=started_argocd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "command", choices=["up", "down", "status", "leftovers", "volume", "gateway-api-crds", "discover-pods",
                            "prometheus-url", "start", "stop"],
    )  # fmt: skip
    parser.add_argument(
        "args", nargs="*", help="volume: NAMESPACE CLAIM; discover-pods: TARGETS_FILE; start, stop: COMPONENT"
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
