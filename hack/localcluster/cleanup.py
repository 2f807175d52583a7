"""What the node leaves behind once its processes are gone, its removal, and `leftovers` to find any of it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shlex
import shutil
import signal
import subprocess

from node import CGROUP_FS, NETNS_DIR, NODE_CGROUPS, NODE_LINKS, NODE_NETNS, nodes
from settings import ARGOCD, CNI_BRIDGE, PROMETHEUS, STATE, bin_dir, log


def remove_containers(socket: pathlib.Path) -> None:
    """Kill and delete every container of the node whose containerd listens on `socket`, while it runs."""

    def ctr(*args: str) -> subprocess.CompletedProcess[str]:
        command = [shutil.which("ctr") or "ctr", "--address", str(socket), "-n", "k8s.io", *args]
        return subprocess.run(command, capture_output=True, text=True)

    tasks = [line.split()[0] for line in ctr("tasks", "list", "-q").stdout.splitlines() if line.strip()]
    for task in tasks:
        ctr("tasks", "kill", "-a", "-s", "SIGKILL", task)
    for task in tasks:
        ctr("tasks", "delete", "-f", task)
    containers = [c for c in ctr("containers", "list", "-q").stdout.split() if c]
    for container in containers:
        ctr("containers", "delete", container)
    if tasks or containers:
        log(f"removed {len(tasks)} task(s) and {len(containers)} container(s) via {socket}")


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
    """What the nodes leave behind once their processes are gone: shims, mounts, netns, iptables, cgroups."""
    sockets = [str(n.socket) for n in nodes()]
    for pid_dir in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "containerd-shim" in cmdline and any(socket in cmdline for socket in sockets):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid_dir.name), signal.SIGKILL)
    for point in _mounts_under(STATE):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    # A node's own namespace takes its bridge, its end of the veth pair and its iptables rules with it.
    for attempt in range(2):
        for pattern in ("cni-*", NODE_NETNS):
            for netns in NETNS_DIR.glob(pattern):
                subprocess.run(["ip", "netns", "delete", netns.name], capture_output=True)
        if attempt == 0 and any(NETNS_DIR.glob("cni-*")):
            # Sandboxes mounted before the directory became a mount point are hidden under it (see
            # node.share_netns_dir): uncover them (refused while anything is still mounted in it).
            subprocess.run(["umount", str(NETNS_DIR.resolve())], capture_output=True)
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
    for controller in CGROUP_FS.iterdir():
        for top in [controller / "kubepods", *controller.glob(NODE_CGROUPS)]:
            if top.is_dir():
                for directory in sorted(top.rglob("*"), key=lambda d: len(d.parts), reverse=True):
                    if directory.is_dir():
                        with contextlib.suppress(OSError):
                            directory.rmdir()
                with contextlib.suppress(OSError):
                    top.rmdir()
    log("removed the node's containers, mounts, network namespaces, iptables chains and cgroups")


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
            or ("containerd" in cmdline and str(STATE) in cmdline)  # any node's containerd and its shims
            or str(PROMETHEUS) in cmdline
            or str(ARGOCD) in cmdline  # Argo CD's Redis (its configuration file)
        ):
            found.append(f"process {pid_dir.name}: {cmdline[:100]}")
    found += [f"mount {m}" for m in _mounts_under(STATE)]
    found += [f"netns {n.name}" for pattern in ("cni-*", NODE_NETNS) for n in NETNS_DIR.glob(pattern)]
    found += [
        f"link {link.name}"
        for pattern in (CNI_BRIDGE, NODE_LINKS)
        for link in pathlib.Path("/sys/class/net").glob(pattern)
    ]
    for table in ("nat", "filter", "mangle"):
        found += [f"iptables -t {table} chain {c}" for c in _iptables_chains(table) if c.startswith(("CNI-", "KUBE-"))]
    found += [f"cgroup {d}" for pattern in ("*/kubepods", f"*/{NODE_CGROUPS}") for d in CGROUP_FS.glob(pattern)]
    if STATE.exists():
        found.append(f"state directory {STATE}")
    return found
