"""A `Component` (one long-running process of the cluster) and how it is started, awaited and stopped by PID file."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from settings import BINARY, LOGS, PIDS, PKI, STATE, log


@dataclass
class Component:
    """One long-running process of the cluster and how to tell it is ready."""

    name: str
    argv: Callable[[pathlib.Path], list[str]]  # bin dir → command line
    ready: Callable[[], bool]
    ready_timeout: float = 60.0
    ports: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    after_start: Callable[[], None] | None = None  # before it can be ready (a kubelet's pod network)
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
    # nsenter (a node's components in its network namespace) becomes the component when it execs it.
    return pid if exe.removesuffix(" (deleted)") in (BINARY.get(name, name), "nsenter") else None


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


def bring_up(component: Component, binaries: pathlib.Path) -> None:
    """Start `component` unless it runs, and wait until it is ready and what follows its readiness is done."""
    start(component, binaries)
    if component.after_start:
        component.after_start()
    wait_ready(component)
    if component.after_ready:
        component.after_ready(binaries)


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


def report(components: list[Component], *, optional: Sequence[Component] = ()) -> int:
    """Print each component's state (ready or down, its pid); 1 if one that is not optional is down."""
    code = 0
    for component in components:
        pid = _pid_of(component.name)
        ok = bool(pid) and component.ready()
        code |= 0 if ok or component in optional else 1
        print(f"{component.name:29} {'ready' if ok else 'down':6} {pid or ''}")
    return code
