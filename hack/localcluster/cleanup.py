"""What the node leaves behind once its processes are gone, its removal, and `leftovers` to find any of it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shlex
import shutil
import signal
import subprocess

from settings import ARGOCD, CNI_BRIDGE, CONTAINERD, CONTAINERD_SOCKET, PROMETHEUS, STATE, bin_dir, log


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
            or str(ARGOCD) in cmdline  # Argo CD's Redis (its configuration file)
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
