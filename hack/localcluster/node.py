"""The node's components (containerd, kubelet, kube-proxy), their configuration and the pod sandbox image."""

from __future__ import annotations

import json
import pathlib
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

from processes import Component, _http_ok
from settings import (
    APISERVER_PORT,
    CNI_BRIDGE,
    CNI_CONF_DIR,
    CNI_NETWORK,
    CONTAINERD,
    CONTAINERD_SOCKET,
    KUBELET_DIR,
    NODE_NAME,
    NODE_POD_CIDR,
    PAUSE_IMAGE,
    PKI,
    POD_CIDR,
    STATE,
    log,
)


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


# ------------------------------------------------------------------------------------ node config


def write_if_changed(path: pathlib.Path, text: str) -> None:
    """Rewriting an unchanged file would still restart what watches it (kube-proxy exits when its
    configuration file is written, and `cluster.py up` on a running cluster writes them all)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_node_config(ip: str, binaries: pathlib.Path) -> None:
    for directory in (CONTAINERD, KUBELET_DIR, CNI_CONF_DIR, STATE / "pod-logs"):
        directory.mkdir(parents=True, exist_ok=True)
    write_if_changed(
        CONTAINERD / "config.toml",
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
""",
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
    write_if_changed(CNI_CONF_DIR / "10-mlops.conflist", json.dumps(cni, indent=2) + "\n")
    resolv = STATE / "resolv.conf"
    write_if_changed(resolv, "nameserver 127.0.0.1\noptions ndots:1\n")
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
    write_if_changed(STATE / "kubelet-config.json", json.dumps(kubelet, indent=2) + "\n")
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
    write_if_changed(STATE / "kube-proxy-config.json", json.dumps(proxy, indent=2) + "\n")
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
