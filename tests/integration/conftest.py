"""Session fixtures: the local cluster (reused if running), the CRDs, and the operator as a process.

If the control plane cannot start, every integration test errors with the launcher's own message:
nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from support import KUBECONFIG, REPO, STATE, Kubectl, add_artifact_volume, wait_for

CLUSTER = [sys.executable, str(REPO / "hack/localcluster/cluster.py")]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Kubectl]:
    running = subprocess.run([*CLUSTER, "status"], capture_output=True, text=True).returncode == 0
    if not running:
        up = subprocess.run([*CLUSTER, "up"], capture_output=True, text=True)
        if up.returncode != 0:
            pytest.fail(f"the local cluster could not start:\n{up.stdout}\n{up.stderr}", pytrace=False)
    yield Kubectl(KUBECONFIG)
    if not running and os.environ.get("KEEP_CLUSTER") != "1":
        subprocess.run([*CLUSTER, "down"], check=False)
        # `down` must leave nothing behind: processes, mounts, netns, iptables chains, cgroups, state.
        left = subprocess.run([*CLUSTER, "leftovers"], capture_output=True, text=True)
        assert left.returncode == 0, f"make cluster-down left this behind:\n{left.stdout}"


@pytest.fixture(scope="session")
def image(cluster: Kubectl) -> str:
    """The project image, built from operator/Dockerfile and loaded into the node."""
    load = subprocess.run(
        [sys.executable, str(REPO / "hack/localcluster/image.py"), "load"], capture_output=True, text=True
    )
    if load.returncode != 0:
        pytest.fail(f"the project image could not be built or loaded:\n{load.stdout}\n{load.stderr}", pytrace=False)
    return "mlops-operator:dev"


@pytest.fixture(scope="session")
def crds(cluster: Kubectl) -> Kubectl:
    cluster.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    # The OpenAPI document that `kubectl explain` reads is published a moment after Established.
    for kind in ("dataset", "trainingrun", "modeldeployment"):
        wait_for(
            lambda kind=kind: cluster.run("explain", f"{kind}.spec", check=False).returncode == 0,
            timeout=60,
            what=f"the OpenAPI schema of {kind} to be published",
        )
    return cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


PROMETHEUS_PORT = 19090
# Debian's prometheus package is built without kubernetes_sd_configs (its Kubernetes client libraries
# are not packaged), so the pods are discovered here, from the API, into a file_sd target file with
# the same relabelling kubernetes_sd would give: the pod IP and port annotation, namespace and pod.
PROMETHEUS_CONFIG = """
global: {{scrape_interval: 2s, evaluation_interval: 2s}}
scrape_configs:
  - job_name: mlops-servers
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: 1s
"""


def _discover_pods(cluster: Kubectl, targets: pathlib.Path, stop: threading.Event) -> None:
    while not stop.is_set():
        result = cluster.run("get", "pods", "-A", "-o", "json", check=False)
        if result.returncode == 0:
            groups = []
            for pod in json.loads(result.stdout)["items"]:
                annotations = pod["metadata"].get("annotations") or {}
                ip = pod.get("status", {}).get("podIP")
                if annotations.get("prometheus.io/scrape") == "true" and ip and pod["status"].get("phase") == "Running":
                    groups.append({
                        "targets": [f"{ip}:{annotations.get('prometheus.io/port', '8080')}"],
                        "labels": {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]},
                    })  # fmt: skip
            tmp = targets.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            tmp.replace(targets)
        stop.wait(1)


@pytest.fixture(scope="session")
def prometheus(cluster: Kubectl) -> Iterator[str]:
    """Debian's Prometheus, scraping the model server pods of the local cluster."""
    home = STATE / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    targets = home / "pods.json"
    targets.write_text("[]")
    (home / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(targets=targets))
    stop = threading.Event()
    discovery = threading.Thread(target=_discover_pods, args=(cluster, targets, stop), daemon=True)
    discovery.start()
    with open(STATE / "logs" / "prometheus.log", "ab") as log:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
             f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return process.poll() is not None

    try:
        wait_for(ready, timeout=60, what="Prometheus /-/ready")
        if process.poll() is not None:
            pytest.fail(
                f"Prometheus exited with {process.returncode}; see {STATE / 'logs/prometheus.log'}", pytrace=False
            )
        yield url
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=30)


class OperatorProcess:
    """`mlops-operator run` as a separate process with the admin kubeconfig; restartable."""

    def __init__(self, prometheus_url: str) -> None:
        self.port = _free_port()
        self.log_path = STATE / "logs" / "operator-tests.log"
        self.env = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "MLOPS_IMAGE_PULL_POLICY": "Never",
                    "MLOPS_PROMETHEUS_URL": prometheus_url}  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # Jobs and servers run the image `make image` loaded into the node; it is never pulled.
            self.process = subprocess.Popen(
                [str(REPO / ".venv/bin/mlops-operator"), "run", "--liveness-port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(lambda: _healthy(self.port) or self.process.poll() is not None, timeout=60,
                 what=f"the operator's /healthz (log: {self.log_path})")  # fmt: skip
        if self.process.poll() is not None:
            pytest.fail(f"the operator exited with {self.process.returncode}; see {self.log_path}", pytrace=False)

    def stop(self, *, kill: bool = False) -> int | None:
        if self.process is None:
            return None
        self.process.kill() if kill else self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll() if self.process else None


@pytest.fixture(scope="session")
def operator(crds: Kubectl, image: str, prometheus: str) -> Iterator[OperatorProcess]:
    process = OperatorProcess(prometheus)
    process.start()
    yield process
    code = process.stop()
    assert code in (0, -15), f"the operator ended with {code}; see {process.log_path}"


@contextlib.contextmanager
def restricted_namespace(cluster: Kubectl, prefix: str, *, artifacts: bool) -> Iterator[str]:
    """A fresh namespace enforcing the `restricted` Pod Security Standard, optionally with an artifact store."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.run("create", "namespace", name)
    cluster.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    if artifacts:
        add_artifact_volume(name)
    try:
        yield name
    finally:
        cluster.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Kubectl) -> Iterator[str]:
    """A namespace of its own for one test (no artifact store)."""
    with restricted_namespace(cluster, "t", artifacts=False) as name:
        yield name


@pytest.fixture(scope="module")
def ns(cluster: Kubectl, image: str) -> Iterator[str]:
    """One namespace with an artifact store for a whole test module: its tests tell one story in order."""
    with restricted_namespace(cluster, "ml", artifacts=True) as name:
        yield name
