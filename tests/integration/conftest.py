"""Session fixtures: the local cluster (reused if running), the CRDs, and the operator as a process.

If the control plane cannot start, every integration test errors with the launcher's own message:
nothing is skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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


@pytest.fixture(scope="session")
def operator(crds: Kubectl, image: str) -> Iterator[subprocess.Popen]:
    """`mlops-operator run` as a separate process with the admin kubeconfig; its log goes to .localcluster/logs."""
    port = _free_port()
    log_path = STATE / "logs" / "operator-tests.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(REPO / ".venv/bin/mlops-operator"), "run", "--liveness-port", str(port)],
            # Jobs run the image `make image` loaded into the node; it is never pulled.
            env={**os.environ, "KUBECONFIG": str(KUBECONFIG), "MLOPS_IMAGE_PULL_POLICY": "Never"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: _healthy(port) or process.poll() is not None,
            timeout=60,
            what=f"the operator's /healthz (log: {log_path})",
        )
        if process.poll() is not None:
            pytest.fail(f"the operator exited with {process.returncode}; see {log_path}", pytrace=False)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode in (0, -15), f"the operator ended with {process.returncode}; see {log_path}"


@pytest.fixture
def namespace(cluster: Kubectl) -> Iterator[str]:
    """A fresh namespace that enforces the `restricted` Pod Security Standard, as production ones should."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.run("create", "namespace", name)
    cluster.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    cluster.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def ml_namespace(namespace: str) -> str:
    """A restricted namespace with an artifact store."""
    add_artifact_volume(namespace)
    return namespace
