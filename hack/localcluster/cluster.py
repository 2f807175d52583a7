#!/usr/bin/env python3
"""A real single-node Kubernetes control plane on this machine, without Docker: `up`, `down`, `status`.

Binaries come from hack/localcluster/build.sh (Go modules → a cache keyed by version). State lives
in `.localcluster/` (override with LOCALCLUSTER_DIR): pki/, etcd data, logs/, pids/ and the admin
`kubeconfig`. Every process is started in its own session and recorded by PID, so `down` stops
exactly what `up` started. `up` is idempotent: running components are kept, missing ones started.

Components are a list of `Component`s started in order, each with a readiness check; the node
(containerd, kubelet, kube-proxy) plugs in as more entries of that list.

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE = pathlib.Path(os.environ.get("LOCALCLUSTER_DIR", REPO / ".localcluster")).resolve()
PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
APISERVER_PORT = int(os.environ.get("LOCALCLUSTER_APISERVER_PORT", "6443"))
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
NODE_NAME = "mlops-node"
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


def node_ip() -> str:
    """The host's primary IPv4 address: what the apiserver advertises so that pods can reach it."""
    if os.environ.get("LOCALCLUSTER_NODE_IP"):
        return os.environ["LOCALCLUSTER_NODE_IP"]
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True)
    words = out.stdout.split()
    if "src" in words:
        return words[words.index("src") + 1]
    raise SystemExit("cannot find this host's IPv4 address (set LOCALCLUSTER_NODE_IP)")


# ---------------------------------------------------------------------------------------------- pki


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ec_key(path: pathlib.Path) -> None:
    if not path.exists():
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        path.chmod(0o600)


def _issue_cert(name: str, *, subject: str, usage: str, sans: list[str] | None = None) -> None:
    """A key and a certificate signed by the cluster CA, unless both exist."""
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    if key.exists() and crt.exists():
        return
    _ec_key(key)
    ext = PKI / f"{name}.ext"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    csr = PKI / f"{name}.csr"
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(PKI / "ca.crt"), "-CAkey", str(PKI / "ca.key"),
        "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(crt),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def ensure_pki(ip: str) -> None:
    PKI.mkdir(parents=True, exist_ok=True)
    if not (PKI / "ca.crt").exists():
        _ec_key(PKI / "ca.key")
        _openssl(
            "req", "-x509", "-new", "-key", str(PKI / "ca.key"), "-subj", "/CN=mlops-localcluster-ca",
            "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", str(PKI / "ca.crt"),
        )  # fmt: skip
    sans = [
        "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local", "DNS:localhost",
        "IP:127.0.0.1", f"IP:{KUBERNETES_SERVICE_IP}", f"IP:{ip}",
    ]  # fmt: skip
    _issue_cert("apiserver", subject="/CN=kube-apiserver", usage="serverAuth", sans=sans)
    _issue_cert("admin", subject="/O=system:masters/CN=mlops-admin", usage="clientAuth")
    _issue_cert("controller-manager", subject="/CN=system:kube-controller-manager", usage="clientAuth")
    _issue_cert("scheduler", subject="/CN=system:kube-scheduler", usage="clientAuth")
    _issue_cert(
        "apiserver-kubelet-client",
        subject="/O=system:masters/CN=kube-apiserver-kubelet-client",
        usage="clientAuth",
    )
    _ec_key(PKI / "sa.key")
    if not (PKI / "sa.pub").exists():
        _openssl("pkey", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))


def write_kubeconfig(path: pathlib.Path, *, cert: str, server: str) -> None:
    """A kubeconfig authenticating with a client certificate of the cluster CA (YAML is JSON's superset)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlops-local",
                "cluster": {"server": server, "certificate-authority": str(PKI / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": cert,
                "user": {
                    "client-certificate": str(PKI / f"{cert}.crt"),
                    "client-key": str(PKI / f"{cert}.key"),
                },
            }
        ],
        "contexts": [{"name": "mlops-local", "context": {"cluster": "mlops-local", "user": cert}}],
        "current-context": "mlops-local",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


# --------------------------------------------------------------------------------------- components


@dataclass
class Component:
    """One long-running process of the cluster and how to tell it is ready."""

    name: str
    argv: Callable[[pathlib.Path], list[str]]  # bin dir → command line
    ready: Callable[[], bool]
    ready_timeout: float = 60.0
    ports: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _https_ok(url: str, *, cert: str | None = None) -> bool:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    if cert:
        context.load_cert_chain(str(PKI / f"{cert}.crt"), str(PKI / f"{cert}.key"))
    if "127.0.0.1:1025" in url:  # controller-manager and scheduler serve self-signed certificates
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=context, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def control_plane(ip: str) -> list[Component]:
    apiserver_url = f"https://127.0.0.1:{APISERVER_PORT}"
    kubeconfigs = {name: STATE / f"{name}.kubeconfig" for name in ("controller-manager", "scheduler")}
    return [
        Component(
            name="etcd",
            argv=lambda b: [
                str(b / "etcd"),
                "--name=mlops-local",
                f"--data-dir={STATE / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-cluster=mlops-local=http://127.0.0.1:{ETCD_PEER_PORT}",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
                "--unsafe-no-fsync",
            ],  # fmt: skip
            ready=lambda: _http_ok("http://127.0.0.1:2381/health"),
            ready_timeout=30,
            ports=[ETCD_CLIENT_PORT, ETCD_PEER_PORT],
        ),
        Component(
            name="kube-apiserver",
            argv=lambda b: [
                str(b / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                "--bind-address=0.0.0.0",
                f"--secure-port={APISERVER_PORT}",
                f"--advertise-address={ip}",
                f"--tls-cert-file={PKI / 'apiserver.crt'}",
                f"--tls-private-key-file={PKI / 'apiserver.key'}",
                f"--client-ca-file={PKI / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={PKI / 'sa.pub'}",
                f"--service-account-signing-key-file={PKI / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={PKI / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={PKI / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],  # fmt: skip
            ready=lambda: _https_ok(f"{apiserver_url}/readyz", cert="admin"),
            ready_timeout=120,
            ports=[APISERVER_PORT],
        ),
        Component(
            name="kube-controller-manager",
            argv=lambda b: [
                str(b / "kube-controller-manager"),
                f"--kubeconfig={kubeconfigs['controller-manager']}",
                f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
                f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
                "--bind-address=127.0.0.1",
                "--secure-port=10257",
                f"--service-account-private-key-file={PKI / 'sa.key'}",
                f"--root-ca-file={PKI / 'ca.crt'}",
                f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
                f"--cluster-signing-key-file={PKI / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--controllers=*,bootstrapsigner,tokencleaner",
                "--allocate-node-cidrs=true",
                f"--cluster-cidr={POD_CIDR}",
                "--node-cidr-mask-size=24",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--v=1",
            ],  # fmt: skip
            ready=lambda: _https_ok("https://127.0.0.1:10257/healthz"),
            ports=[10257],
        ),
        Component(
            name="kube-scheduler",
            argv=lambda b: [
                str(b / "kube-scheduler"),
                f"--kubeconfig={kubeconfigs['scheduler']}",
                f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
                f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--leader-elect=false",
                "--v=1",
            ],  # fmt: skip
            ready=lambda: _https_ok("https://127.0.0.1:10259/healthz"),
            ports=[10259],
        ),
    ]


def components(ip: str) -> list[Component]:
    return control_plane(ip)


# ------------------------------------------------------------------------------------- processes


def _pid_of(name: str) -> int | None:
    """The PID recorded for a component, if that process is still alive and still ours."""
    pidfile = PIDS / f"{name}.pid"
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().strip())
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        exe = pathlib.Path(os.readlink(f"/proc/{pid}/exe")).name
    except (ValueError, OSError):
        return None
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return pid if exe.removesuffix(" (deleted)") == BINARY.get(name, name) else None


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(component: Component, binaries: pathlib.Path) -> None:
    if _pid_of(component.name):
        log(f"{component.name} already running")
        return
    busy = [p for p in component.ports if _port_busy(p)]
    if busy:
        raise SystemExit(f"cannot start {component.name}: port(s) {busy} already in use by another process")
    argv = component.argv(binaries)
    with open(LOGS / f"{component.name}.log", "ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=STATE,
            env={**os.environ, **component.env},
        )
    (PIDS / f"{component.name}.pid").write_text(f"{process.pid}\n")
    log(f"started {component.name} (pid {process.pid})")


def wait_ready(component: Component) -> None:
    deadline = time.monotonic() + component.ready_timeout
    while time.monotonic() < deadline:
        if component.ready():
            log(f"{component.name} is ready")
            return
        if not _pid_of(component.name):
            break
        time.sleep(0.25)
    tail = (LOGS / f"{component.name}.log").read_text(errors="replace").splitlines()[-25:]
    state = "exited" if not _pid_of(component.name) else f"not ready after {component.ready_timeout:.0f}s"
    raise SystemExit(f"{component.name} {state}; last lines of {LOGS / component.name}.log:\n" + "\n".join(tail))


def stop(name: str) -> None:
    pid = _pid_of(name)
    if pid is None:
        (PIDS / f"{name}.pid").unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _pid_of(name):
        time.sleep(0.1)
    if _pid_of(name):
        os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)
    log(f"stopped {name} (pid {pid})")


# --------------------------------------------------------------------------------------- commands


def up() -> None:
    binaries = bin_dir()
    missing = [c for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
               if not (binaries / c).exists()]  # fmt: skip
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
    for component in components(ip):
        start(component, binaries)
        wait_ready(component)
    log(f"cluster is up; kubeconfig: {KUBECONFIG}")


def down() -> None:
    if not STATE.exists():
        log("no local cluster state; nothing to do")
        return
    names = [c.name for c in components(node_ip())]
    for name in reversed(names):
        stop(name)
    for leftover in PIDS.glob("*.pid") if PIDS.exists() else []:
        stop(leftover.stem)
    shutil.rmtree(STATE)
    log(f"removed {STATE}")


def status() -> int:
    code = 0
    for component in components(node_ip()):
        pid = _pid_of(component.name)
        ok = bool(pid) and component.ready()
        code |= 0 if ok else 1
        print(f"{component.name:26} {'ready' if ok else 'down':6} {pid or ''}")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args()
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
