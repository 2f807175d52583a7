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
import shlex
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
GATEWAY_API_VERSION = "v1.4.1"  # CRDs only: no gateway implementation runs here
NODE_POD_CIDR = "10.244.0.0/24"  # the first /24 the controller-manager hands out
PAUSE_IMAGE = "localhost/mlops-pause:1.0"
CONTAINERD = STATE / "containerd"
CONTAINERD_SOCKET = CONTAINERD / "containerd.sock"
KUBELET_DIR = STATE / "kubelet"
CNI_CONF_DIR = STATE / "cni" / "net.d"
CNI_BRIDGE = "mlops0"
CNI_NETWORK = "mlops-pods"
WITH_NODE = os.environ.get("LOCALCLUSTER_NODE", "1") != "0"
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
    _issue_cert("kubelet", subject=f"/O=system:nodes/CN=system:node:{NODE_NAME}", usage="clientAuth")
    _issue_cert(
        "kubelet-serving",
        subject=f"/O=system:nodes/CN=system:node:{NODE_NAME}",
        usage="serverAuth",
        sans=[f"DNS:{NODE_NAME}", "DNS:localhost", "IP:127.0.0.1", f"IP:{ip}"],
    )
    _issue_cert("kube-proxy", subject="/CN=system:kube-proxy", usage="clientAuth")
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
    after_ready: Callable[[pathlib.Path], None] | None = None  # bin dir → None


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


def _containerd_ready() -> bool:
    ctr = shutil.which("ctr")
    if not ctr or not CONTAINERD_SOCKET.exists():
        return False
    return subprocess.run([ctr, "--address", str(CONTAINERD_SOCKET), "version"], capture_output=True).returncode == 0


def _node_ready() -> bool:
    """The Node object exists and its Ready condition is True."""
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    url = f"https://127.0.0.1:{APISERVER_PORT}/api/v1/nodes/{NODE_NAME}"
    try:
        with urllib.request.urlopen(url, context=context, timeout=3) as response:
            node = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def node(ip: str) -> list[Component]:
    """containerd, kubelet and kube-proxy: a real node whose pods run in containers on this host."""
    return [
        Component(
            name="containerd",
            argv=lambda b: [shutil.which("containerd") or "containerd", "--config", str(CONTAINERD / "config.toml")],
            ready=_containerd_ready,
            ready_timeout=30,
            after_ready=import_pause_image,
        ),
        Component(
            name="kubelet",
            argv=lambda b: [
                str(b / "kubelet"),
                f"--config={STATE / 'kubelet-config.json'}",
                f"--kubeconfig={STATE / 'kubelet.kubeconfig'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={ip}",
                f"--root-dir={KUBELET_DIR}",
                "--v=1",
            ],  # fmt: skip
            ready=_node_ready,
            ready_timeout=90,
            ports=[10250],
        ),
        Component(
            name="kube-proxy",
            argv=lambda b: [str(b / "kube-proxy"), f"--config={STATE / 'kube-proxy-config.json'}", "--v=1"],
            ready=lambda: _http_ok("http://127.0.0.1:10256/healthz"),
            ready_timeout=30,
            ports=[10256],
        ),
    ]


PROMETHEUS = STATE / "prometheus"
PROMETHEUS_PORT = 19090
# Debian's prometheus is built without kubernetes_sd_configs (its Kubernetes client libraries are not
# packaged), so a small process discovers the pods from the API into a file_sd target file, with the
# labels kubernetes_sd relabelling would give: the pod IP and `prometheus.io/port`, namespace and pod.
PROMETHEUS_CONFIG = """
global: {{scrape_interval: 2s, evaluation_interval: 2s}}
scrape_configs:
  - job_name: mlops-pods
    honor_labels: true  # the operator's gauges carry their own `namespace` label
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: 1s
"""
BINARY["pod-discovery"] = pathlib.Path(os.path.realpath(sys.executable)).name


def prometheus_url(ip: str) -> str:
    """Where the local Prometheus answers: the node IP, so pods (the operator) reach it as well as the host."""
    return f"http://{ip}:{PROMETHEUS_PORT}"


def addons(ip: str) -> list[Component]:
    """Prometheus, scraping every pod annotated `prometheus.io/scrape: "true"` (model servers, the operator)."""
    targets = PROMETHEUS / "pods.json"
    return [
        Component(
            name="pod-discovery",
            argv=lambda b: [sys.executable, str(pathlib.Path(__file__).resolve()), "discover-pods", str(targets)],
            ready=lambda: True,
        ),
        Component(
            name="prometheus",
            argv=lambda b: [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={PROMETHEUS / 'prometheus.yml'}",
                f"--storage.tsdb.path={PROMETHEUS / 'data'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address={ip}:{PROMETHEUS_PORT}",
            ],  # fmt: skip
            ready=lambda: _http_ok(f"{prometheus_url(ip)}/-/ready"),
            ready_timeout=60,
        ),
    ]


def write_prometheus_config() -> None:
    PROMETHEUS.mkdir(parents=True, exist_ok=True)
    targets = PROMETHEUS / "pods.json"
    if not targets.exists():
        targets.write_text("[]")
    (PROMETHEUS / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(targets=targets))


def discover_pods(targets: pathlib.Path) -> None:
    """Forever: write the scrape targets of annotated, running pods (file_sd format), every second."""
    kubectl = [str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", "get", "pods", "-A", "-o", "json"]
    while True:
        result = subprocess.run(kubectl, capture_output=True, text=True)
        if result.returncode == 0:
            groups = []
            for pod in json.loads(result.stdout)["items"]:
                annotations, status = pod["metadata"].get("annotations") or {}, pod.get("status") or {}
                if annotations.get("prometheus.io/scrape") == "true" and status.get("podIP") and \
                        status.get("phase") == "Running":  # fmt: skip
                    groups.append({
                        "targets": [f"{status['podIP']}:{annotations.get('prometheus.io/port', '8080')}"],
                        "labels": {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]},
                    })  # fmt: skip
            tmp = targets.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            tmp.replace(targets)
        time.sleep(1)


def components(ip: str) -> list[Component]:
    return control_plane(ip) + (node(ip) + addons(ip) if WITH_NODE else [])


# ------------------------------------------------------------------------------------ node config


def write_node_config(ip: str, binaries: pathlib.Path) -> None:
    for directory in (CONTAINERD, KUBELET_DIR, CNI_CONF_DIR, STATE / "pod-logs"):
        directory.mkdir(parents=True, exist_ok=True)
    (CONTAINERD / "config.toml").write_text(
        f"""version = 2
root = "{CONTAINERD / "root"}"
state = "{CONTAINERD / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{CONTAINERD_SOCKET}"
[ttrpc]
  address = "{CONTAINERD / "containerd.sock.ttrpc"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{CONTAINERD / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj below the runtime's own.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{CNI_CONF_DIR}"
"""
    )
    cni = {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": NODE_POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(STATE / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (CNI_CONF_DIR / "10-mlops.conflist").write_text(json.dumps(cni, indent=2) + "\n")
    resolv = STATE / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions ndots:1\n")
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {
            "x509": {"clientCAFile": str(PKI / "ca.crt")},
            "webhook": {"enabled": True},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(PKI / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(PKI / "kubelet-serving.key"),
        "podLogsDir": str(STATE / "pod-logs"),
        "resolvConf": str(resolv),
        "clusterDomain": "cluster.local",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "registerNode": True,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "maxPods": 110,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "localStorageCapacityIsolation": True,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
    }
    (STATE / "kubelet-config.json").write_text(json.dumps(kubelet, indent=2) + "\n")
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(STATE / "kube-proxy.kubeconfig")},
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"masqueradeAll": False, "syncPeriod": "10s", "minSyncPeriod": "0s"},
    }
    (STATE / "kube-proxy-config.json").write_text(json.dumps(proxy, indent=2) + "\n")
    for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
        path = pathlib.Path("/proc/sys") / key
        if path.exists() and path.read_text().strip() != value:
            path.write_text(value)


def import_pause_image(binaries: pathlib.Path) -> None:
    """Our own pod sandbox image, from the static `pause` binary: no registry needed."""
    import ociimage

    ctr = [shutil.which("ctr") or "ctr", "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io"]
    listed = subprocess.run([*ctr, "images", "list", "-q"], capture_output=True, text=True, check=True).stdout
    if PAUSE_IMAGE in listed.split():
        return
    archive = binaries / "pause.oci.tar"
    if not archive.exists():
        layer = ociimage.layer_from_files({"pause": ((binaries / "pause").read_bytes(), 0o755)})
        ociimage.write_archive(archive, name=PAUSE_IMAGE, layers=[layer], config={"Entrypoint": ["/pause"]})
    subprocess.run([*ctr, "images", "import", "--no-unpack=false", str(archive)], capture_output=True, check=True)
    subprocess.run([*ctr, "images", "label", PAUSE_IMAGE, "io.cri-containerd.pinned=pinned"], capture_output=True)
    log(f"imported {PAUSE_IMAGE}")


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
    wanted = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    wanted += ["kubelet", "kube-proxy", "pause"] if WITH_NODE else []
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
    for component in components(ip):
        start(component, binaries)
        wait_ready(component)
        if component.after_ready:
            component.after_ready(binaries)
    log(f"cluster is up; kubeconfig: {KUBECONFIG}" + (f"; Prometheus: {prometheus_url(ip)}" if WITH_NODE else ""))


def down() -> None:
    if not STATE.exists():
        log("no local cluster state; nothing to do")
        return
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


# ------------------------------------------------------------------------------------ node cleanup


def _ctr(*args: str) -> subprocess.CompletedProcess[str]:
    command = [shutil.which("ctr") or "ctr", "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io", *args]
    return subprocess.run(command, capture_output=True, text=True)


def remove_containers() -> None:
    """Kill and delete every container of the node while containerd still runs."""
    tasks = [line.split()[0] for line in _ctr("tasks", "list", "-q").stdout.splitlines() if line.strip()]
    for task in tasks:
        _ctr("tasks", "kill", "-a", "-s", "SIGKILL", task)
    for task in tasks:
        _ctr("tasks", "delete", "-f", task)
    containers = [c for c in _ctr("containers", "list", "-q").stdout.split() if c]
    for container in containers:
        _ctr("containers", "delete", container)
    if tasks or containers:
        log(f"removed {len(tasks)} task(s) and {len(containers)} container(s)")


def _mounts_under(root: pathlib.Path) -> list[str]:
    mounts = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(f"{root}/"):
            mounts.append(point)
    return sorted(set(mounts), key=len, reverse=True)


def _iptables_chains(table: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("-N ")]


def clean_node_leftovers() -> None:
    """What the node leaves behind once its processes are gone: shims, mounts, netns, iptables, cgroups."""
    for pid_dir in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "containerd-shim" in cmdline and str(CONTAINERD_SOCKET) in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid_dir.name), signal.SIGKILL)
    for point in _mounts_under(STATE):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    for netns in pathlib.Path("/var/run/netns").glob("cni-*"):
        subprocess.run(["ip", "netns", "delete", netns.name], capture_output=True)
    subprocess.run(["ip", "link", "delete", CNI_BRIDGE], capture_output=True)
    binaries = bin_dir()
    if (binaries / "kube-proxy").exists():
        subprocess.run([str(binaries / "kube-proxy"), "--cleanup"], capture_output=True)
    for table in ("nat", "filter", "mangle"):
        ours = [c for c in _iptables_chains(table) if c.startswith(("CNI-", "KUBE-"))]
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines()
        for rule in rules:
            words = shlex.split(rule)
            if rule.startswith("-A ") and "-j" in words and words[words.index("-j") + 1] in ours:
                subprocess.run(["iptables", "-t", table, "-D", *words[1:]], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
    for controller in pathlib.Path("/sys/fs/cgroup").iterdir():
        top = controller / "kubepods"
        if top.is_dir():
            for directory in sorted(top.rglob("*"), key=lambda d: len(d.parts), reverse=True):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
    log("removed the node's containers, mounts, network namespaces, iptables chains and cgroups")


def volume(namespace: str, claim: str, size: str = "5Gi") -> None:
    """A PersistentVolumeClaim `claim` in `namespace`, bound to a hostPath volume under .localcluster/volumes.

    The local cluster has no storage provisioner; this stands in for one (ReadWriteMany, like NFS would).
    The directory belongs to the image's user (10001), so restricted pods can write to it.
    """
    directory = STATE / "volumes" / namespace / claim
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, 10001, 10001)
    pv_name = f"local-{namespace}-{claim}"[:253]
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": {"mlops.dev/local-volume": "true"}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": size}},
            },
        },
    ]
    kubectl = [str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
    for manifest in manifests:
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(manifest), text=True, check=True,
                       capture_output=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = subprocess.run([*kubectl, "get", "pvc", claim, "-n", namespace, "-o", "jsonpath={.status.phase}"],
                               capture_output=True, text=True).stdout  # fmt: skip
        if phase == "Bound":
            log(f"PersistentVolumeClaim {namespace}/{claim} → {directory}")
            return
        time.sleep(0.5)
    raise SystemExit(f"PersistentVolumeClaim {namespace}/{claim} did not become Bound within 60s")


def gateway_api_crds() -> None:
    """Install the Gateway API CRDs (standard channel) from the sigs.k8s.io/gateway-api Go module."""
    out = subprocess.run(["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}"],
                         capture_output=True, text=True, env={**os.environ, "GOFLAGS": "-mod=mod"})  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"cannot download sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}: {out.stderr or out.stdout}")
    crds = pathlib.Path(json.loads(out.stdout)["Dir"]) / "config" / "crd" / "standard"
    kubectl = [str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
    for name in ("gateway.networking.k8s.io_gatewayclasses.yaml", "gateway.networking.k8s.io_gateways.yaml",
                 "gateway.networking.k8s.io_httproutes.yaml"):  # fmt: skip
        subprocess.run([*kubectl, "apply", "--server-side", "-f", str(crds / name)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    established = '{.status.conditions[?(@.type=="Established")].status}'
    while time.monotonic() < deadline:
        state = subprocess.run([*kubectl, "get", "crd", "httproutes.gateway.networking.k8s.io", "-o",
                                f"jsonpath={established}"], capture_output=True, text=True).stdout  # fmt: skip
        if state == "True":
            log(f"Gateway API {GATEWAY_API_VERSION} CRDs installed")
            return
        time.sleep(0.5)
    raise SystemExit("the HTTPRoute CRD did not become Established within 60s")


def leftovers() -> list[str]:
    """Anything of a cluster still on this host: what `down` must have removed."""
    found = []
    binaries = str(bin_dir())
    for pid_dir in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (
            cmdline.startswith(binaries)
            or str(CONTAINERD_SOCKET) in cmdline
            or str(CONTAINERD / "config.toml") in cmdline
            or str(PROMETHEUS) in cmdline
        ):
            found.append(f"process {pid_dir.name}: {cmdline[:100]}")
    found += [f"mount {m}" for m in _mounts_under(STATE)]
    found += [f"netns {n.name}" for n in pathlib.Path("/var/run/netns").glob("cni-*")]
    if pathlib.Path(f"/sys/class/net/{CNI_BRIDGE}").exists():
        found.append(f"link {CNI_BRIDGE}")
    for table in ("nat", "filter", "mangle"):
        found += [f"iptables -t {table} chain {c}" for c in _iptables_chains(table) if c.startswith(("CNI-", "KUBE-"))]
    found += [f"cgroup {d}" for d in pathlib.Path("/sys/fs/cgroup").glob("*/kubepods")]
    if STATE.exists():
        found.append(f"state directory {STATE}")
    return found


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
    parser.add_argument(
        "command", choices=["up", "down", "status", "leftovers", "volume", "gateway-api-crds", "discover-pods",
                            "prometheus-url"],
    )  # fmt: skip
    parser.add_argument("args", nargs="*", help="volume: NAMESPACE CLAIM; discover-pods: TARGETS_FILE")
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
