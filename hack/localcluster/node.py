"""The nodes: each one's containerd, kubelet and kube-proxy, their configuration, its network and the pod
sandbox image.

Node 1 (`mlops-node`) runs in the host's network namespace, its state directly in STATE, as the single
node always did. Node N > 1 (`mlops-node-N`, `make cluster-up NODES=2`) is a machine of its own as far
as the network goes: its own network namespace, joined to the host by a veth pair (host side
10.250.N.1, the node's IP 10.250.N.2), where its kubelet, containerd, kube-proxy and pods' bridge live,
so its ports, bridge and iptables rules are its own. It shares the host's kernel, disk, mounts and
cgroup tree (its pods under the cgroup root /mlops-node-N), and its state lives in STATE/node-N.

Pod CIDRs are the controller-manager's (`--allocate-node-cidrs`): each node's CNI configuration is
written once its Node object has one, with a host route to it through the node's IP, as a CNI plugin
of a real cluster does.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from processes import Component, _http_ok
from settings import (
    APISERVER_PORT,
    BINARY,
    CLUSTER_DNS_IP,
    CNI_BRIDGE,
    CNI_NETWORK,
    NODE_NAME,
    NODES,
    PAUSE_IMAGE,
    PKI,
    POD_CIDR,
    STATE,
    log,
)

NETNS_DIR = pathlib.Path("/var/run/netns")
CGROUP_FS = pathlib.Path("/sys/fs/cgroup")
# What nodes N > 1 create on the host, by name pattern (Node's netns, link and cgroup_root): cleanup.py
# removes them and `leftovers` looks for them.
NODE_NETNS, NODE_LINKS, NODE_CGROUPS = "mlops-node-*", "mlops-n[0-9]*", "mlops-node-*"


@dataclass(frozen=True)
class Node:
    """Where node `index` keeps its state, what its components are called, and its addresses."""

    index: int

    @property
    def name(self) -> str:
        return NODE_NAME if self.index == 1 else f"{NODE_NAME}-{self.index}"

    @property
    def suffix(self) -> str:
        """Of its components' names (kubelet-2) and its certificates and kubeconfigs."""
        return "" if self.index == 1 else f"-{self.index}"

    @property
    def state(self) -> pathlib.Path:
        return STATE if self.index == 1 else STATE / f"node-{self.index}"

    @property
    def containerd(self) -> pathlib.Path:
        return self.state / "containerd"

    @property
    def socket(self) -> pathlib.Path:
        return self.containerd / "containerd.sock"

    @property
    def cni_conf_dir(self) -> pathlib.Path:
        return self.state / "cni" / "net.d"

    @property
    def netns(self) -> str | None:
        return None if self.index == 1 else f"mlops-node-{self.index}"

    @property
    def link(self) -> str:
        """The host's end of the veth pair to the node's network namespace."""
        return f"mlops-n{self.index}"

    @property
    def gateway(self) -> str:
        return f"10.250.{self.index}.1"

    @property
    def cgroup_root(self) -> str:
        return "/" if self.index == 1 else f"/mlops-node-{self.index}"

    def ip(self, host_ip: str) -> str:
        return host_ip if self.index == 1 else f"10.250.{self.index}.2"

    def own_address(self, host_ip: str) -> str:
        """Where its kube-proxy listens: node 1 on the host's loopback, another node on its own IP."""
        return "127.0.0.1" if self.index == 1 else self.ip(host_ip)

    def api_server(self, host_ip: str) -> str:
        """The API server as this node reaches it: loopback is the host's only for node 1."""
        return f"https://{'127.0.0.1' if self.index == 1 else host_ip}:{APISERVER_PORT}"

    def enter(self, argv: list[str]) -> list[str]:
        """`argv` run in the node's network namespace (only that: the mounts stay the host's, which
        kubelet and containerd must share)."""
        if self.netns is None:
            return argv
        return [shutil.which("nsenter") or "nsenter", f"--net={NETNS_DIR / self.netns}", "--", *argv]

    def components(self) -> tuple[str, str, str]:
        """Its containerd's, kubelet's and kube-proxy's names (each known by its executable's name)."""
        names = (f"containerd{self.suffix}", f"kubelet{self.suffix}", f"kube-proxy{self.suffix}")
        BINARY.update(zip(names, ("containerd", "kubelet", "kube-proxy"), strict=True))
        return names


def nodes() -> list[Node]:
    """The nodes `up` starts and `down`, `status` know: LOCALCLUSTER_NODES, or as many as have state."""
    existing = 1 + len(list(STATE.glob("node-[0-9]*"))) if STATE.exists() else 1
    return [Node(i) for i in range(1, max(NODES, existing) + 1)]


def _ctr(node: Node) -> list[str]:
    return [shutil.which("ctr") or "ctr", "--address", str(node.socket), "-n", "k8s.io"]


def _containerd_ready(node: Node) -> bool:
    if not shutil.which("ctr") or not node.socket.exists():
        return False
    return subprocess.run([*_ctr(node)[:3], "version"], capture_output=True).returncode == 0


def _get_node(name: str) -> dict | None:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    url = f"https://127.0.0.1:{APISERVER_PORT}/api/v1/nodes/{name}"
    try:
        with urllib.request.urlopen(url, context=context, timeout=3) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _node_ready(name: str) -> bool:
    """The Node object exists and its Ready condition is True."""
    node = _get_node(name) or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def node(host_ip: str, n: Node = Node(1)) -> list[Component]:
    """containerd, kubelet and kube-proxy: a real node whose pods run in containers on this host."""
    containerd, kubelet, proxy = n.components()
    ip = n.ip(host_ip)
    return [
        Component(
            name=containerd,
            argv=lambda b: n.enter(
                [shutil.which("containerd") or "containerd", "--config", str(n.containerd / "config.toml")]
            ),
            ready=lambda: _containerd_ready(n),
            ready_timeout=30,
            after_ready=lambda b: import_pause_image(b, n),
        ),
        Component(
            name=kubelet,
            argv=lambda b: n.enter(
                [
                    str(b / "kubelet"),
                    f"--config={n.state / 'kubelet-config.json'}",
                    f"--kubeconfig={STATE / f'kubelet{n.suffix}.kubeconfig'}",
                    f"--hostname-override={n.name}",
                    f"--node-ip={ip}",
                    f"--root-dir={n.state / 'kubelet'}",
                    "--v=1",
                ]
            ),
            after_start=lambda: connect_pod_network(n, host_ip),
            ready=lambda: _node_ready(n.name),
            ready_timeout=90,
            ports=[10250] if n.index == 1 else [],
        ),
        Component(
            name=proxy,
            argv=lambda b: n.enter([str(b / "kube-proxy"), f"--config={n.state / 'kube-proxy-config.json'}", "--v=1"]),
            ready=lambda: _http_ok(f"http://{n.own_address(host_ip)}:10256/healthz"),
            ready_timeout=30,
            ports=[10256] if n.index == 1 else [],
        ),
    ]


# ------------------------------------------------------------------------------------ node config


def write_if_changed(path: pathlib.Path, text: str) -> None:
    """Rewriting an unchanged file would still restart what watches it (kube-proxy exits when its
    configuration file is written, and `cluster.py up` on a running cluster writes them all)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_node_config(n: Node, host_ip: str) -> None:
    """containerd's, the kubelet's and kube-proxy's configuration of node `n` (its CNI configuration
    waits for its pod CIDR: connect_pod_network), and its network namespace and cgroup root."""
    for directory in (n.containerd, n.state / "kubelet", n.cni_conf_dir, n.state / "pod-logs"):
        directory.mkdir(parents=True, exist_ok=True)
    share_netns_dir()
    if n.netns:
        create_network(n, host_ip)
        create_cgroup_root(n.cgroup_root)
    write_if_changed(
        n.containerd / "config.toml",
        f"""version = 2
root = "{n.containerd / "root"}"
state = "{n.containerd / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{n.socket}"
[ttrpc]
  address = "{n.containerd / "containerd.sock.ttrpc"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{n.containerd / "opt"}"
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
    conf_dir = "{n.cni_conf_dir}"
""",
    )
    resolv = STATE / "resolv.conf"
    write_if_changed(resolv, "nameserver 127.0.0.1\noptions ndots:1\n")
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{n.socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": n.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {
            "x509": {"clientCAFile": str(PKI / "ca.crt")},
            "webhook": {"enabled": True},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(PKI / f"kubelet-serving{n.suffix}.crt"),
        "tlsPrivateKeyFile": str(PKI / f"kubelet-serving{n.suffix}.key"),
        "podLogsDir": str(n.state / "pod-logs"),
        "resolvConf": str(resolv),
        "clusterDomain": "cluster.local",
        "clusterDNS": [CLUSTER_DNS_IP],
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
        # Renewed every 5 s (a quarter of it): the controller-manager's grace period is 20 s.
        "nodeLeaseDurationSeconds": 20,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
    }
    write_if_changed(n.state / "kubelet-config.json", json.dumps(kubelet, indent=2) + "\n")
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(STATE / f"kube-proxy{n.suffix}.kubeconfig")},
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": n.name,
        "bindAddress": n.own_address(host_ip),
        "healthzBindAddress": f"{n.own_address(host_ip)}:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"masqueradeAll": False, "syncPeriod": "10s", "minSyncPeriod": "0s"},
    }
    write_if_changed(n.state / "kube-proxy-config.json", json.dumps(proxy, indent=2) + "\n")
    for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
        _sysctl(n, key, value)


def _sysctl(n: Node, key: str, value: str) -> None:
    """Set a network sysctl in the node's network namespace (they are per namespace)."""
    script = f'test "$(cat /proc/sys/{key})" = {value} || echo {value} > /proc/sys/{key}'
    subprocess.run(n.enter(["sh", "-c", script]), check=True, capture_output=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def share_netns_dir() -> None:
    """The directory of named network namespaces as its own shared mount point, as `ip netns add` makes
    it, before any pod sandbox's namespace is mounted in it. Made later (by the first `ip netns add` of
    a node N > 1 on a cluster that already runs pods) it would cover the sandboxes' mounts there: their
    pods could never be deleted (containerd: "unlinkat /run/netns/cni-…: device or resource busy")."""
    directory = NETNS_DIR.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    mounted = (line.split()[4] for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines())
    if str(directory) not in mounted:  # a bind mount of its own file system: os.path.ismount cannot tell
        subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    subprocess.run(["mount", "--make-shared", str(directory)], check=True)


def create_network(n: Node, host_ip: str) -> None:
    """Node `n`'s network namespace and its veth pair to the host: the node's IP inside, the host's end
    its gateway (to the API server, the add-ons on the host's IP and the other nodes' pods)."""
    assert n.netns
    if not (NETNS_DIR / n.netns).exists():
        _ip("netns", "add", n.netns)
    if not pathlib.Path(f"/sys/class/net/{n.link}").exists():
        _ip("link", "add", n.link, "type", "veth", "peer", "name", "eth0", "netns", n.netns)
    _ip("addr", "replace", f"{n.gateway}/24", "dev", n.link)
    _ip("link", "set", n.link, "up")
    _ip("-n", n.netns, "link", "set", "lo", "up")
    _ip("-n", n.netns, "addr", "replace", f"{n.ip(host_ip)}/24", "dev", "eth0")
    _ip("-n", n.netns, "link", "set", "eth0", "up")
    _ip("-n", n.netns, "route", "replace", "default", "via", n.gateway)


def create_cgroup_root(root: str) -> None:
    """The node's own cgroup root in every hierarchy (the kubelet refuses a root that does not exist);
    a new cpuset takes its parent's CPUs and memory nodes, as the kubelet needs them set."""
    for hierarchy in CGROUP_FS.iterdir():
        directory = hierarchy / root.strip("/")
        if hierarchy.is_dir() and not directory.exists():
            directory.mkdir()
            if hierarchy.name == "cpuset":
                for key in ("cpuset.cpus", "cpuset.mems"):
                    (directory / key).write_text((hierarchy / key).read_text())


def pod_cidr(name: str, timeout: float = 60) -> str:
    """The pod CIDR the controller-manager gave node `name`, once it has registered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cidr = ((_get_node(name) or {}).get("spec") or {}).get("podCIDR")
        if cidr:
            return cidr
        time.sleep(0.25)
    raise SystemExit(f"node {name} has no pod CIDR after {timeout:.0f}s (is kube-controller-manager running?)")


def connect_pod_network(n: Node, host_ip: str) -> None:
    """Node `n`'s pod network, once its Node has a pod CIDR: the bridge configuration its containerd
    reads (the kubelet reports the node Ready after it), and for a node in its own namespace the
    host's route to its pods (the node routes everything else through the host)."""
    cidr = pod_cidr(n.name)
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
                    "ranges": [[{"subnet": cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(n.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    write_if_changed(n.cni_conf_dir / "10-mlops.conflist", json.dumps(cni, indent=2) + "\n")
    if n.netns:
        _ip("route", "replace", cidr, "via", n.ip(host_ip))


def import_pause_image(binaries: pathlib.Path, n: Node) -> None:
    """Our own pod sandbox image, from the static `pause` binary: no registry needed."""
    import ociimage

    ctr = _ctr(n)
    listed = subprocess.run([*ctr, "images", "list", "-q"], capture_output=True, text=True, check=True).stdout
    if PAUSE_IMAGE in listed.split():
        return
    archive = binaries / "pause.oci.tar"
    if not archive.exists():
        layer = ociimage.layer_from_files({"pause": ((binaries / "pause").read_bytes(), 0o755)})
        ociimage.write_archive(archive, name=PAUSE_IMAGE, layers=[layer], config={"Entrypoint": ["/pause"]})
    subprocess.run([*ctr, "images", "import", "--no-unpack=false", str(archive)], capture_output=True, check=True)
    subprocess.run([*ctr, "images", "label", PAUSE_IMAGE, "io.cri-containerd.pinned=pinned"], capture_output=True)
    log(f"imported {PAUSE_IMAGE} into {n.name}")
