"""Session fixtures: the local cluster (reused if running), the CRDs, and the operator as a process.

If the control plane cannot start, every integration test errors with the launcher's own message:
nothing is skipped. hack/integration.sh runs the modules in parallel (pytest-xdist, one module per
worker), then the `serial` ones alone: every worker builds the same session fixtures, one at a time
(`one_at_a_time`), and finds the cluster, the image and the operator already there after the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from mlops_operator.config import STORE_ANNOTATION
from support import (
    CLUSTER,
    KUBECONFIG,
    REPO,
    SERVER_CREDENTIALS_SECRET,
    Kubectl,
    add_artifact_volume,
    add_s3_credentials,
    allowed_test_prometheus_urls,
    one_at_a_time,
    wait_for,
)

# The longest modules first (measured: docs/benchmarks.md, "The test suite"): with one module per worker,
# the run ends when its last module does, so none of these may start last.
LONGEST_FIRST = (
    "test_autoscaling",
    "test_serving",
    "test_retraining",
    "test_demo",
    "test_evidence",
    "test_training",
    "test_gitops",
    "test_object_store",
    "test_live_quality",
    "test_plugin",
    "test_operator_skeleton",
    "test_chart",
    "test_capture",
    "test_tenancy",
    "test_dataset_checks",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the modules longest first, each module's tests in their own order (a module tells a story)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


def _cluster_was_running() -> bool:
    """Whether the cluster ran before this test run (then it is left running): hack/integration.sh, which
    runs pytest twice, says so for both runs; a plain pytest asks the cluster."""
    told = os.environ.get("MLOPS_CLUSTER_WAS_RUNNING")
    if told is not None:
        return told == "1"
    return subprocess.run([*CLUSTER, "status"], capture_output=True, text=True).returncode == 0


@pytest.fixture(scope="session")
def cluster() -> Iterator[Kubectl]:
    running = _cluster_was_running()
    # `up` is idempotent: it starts what is missing, such as the second node of a cluster started with one.
    nodes = os.environ.get("LOCALCLUSTER_NODES") or "2"
    with one_at_a_time("cluster"):
        up = subprocess.run(
            [*CLUSTER, "up"], capture_output=True, text=True, env={**os.environ, "LOCALCLUSTER_NODES": nodes}
        )
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
    with one_at_a_time("image"):
        load = subprocess.run(
            [sys.executable, str(REPO / "hack/localcluster/image.py"), "load"], capture_output=True, text=True
        )
    if load.returncode != 0:
        pytest.fail(f"the project image could not be built or loaded:\n{load.stdout}\n{load.stderr}", pytrace=False)
    return "mlops-operator:dev"


@pytest.fixture(scope="session")
def crds(cluster: Kubectl) -> Kubectl:
    with one_at_a_time("crds"):
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
def prometheus(cluster: Kubectl) -> str:
    """The local cluster's Prometheus (Debian's package), scraping the annotated pods: model servers, the operator.
    It is one of the cluster's components: `cluster.py up` and `status` already waited for it to be ready."""
    return subprocess.run([*CLUSTER, "prometheus-url"], capture_output=True, text=True, check=True).stdout.strip()


class DeployedOperator:
    """The operator as users run it: the chart installed by `make deploy` (hack/deploy.sh), in its own
    namespace, under its own least-privilege ServiceAccount — never the admin credentials of the tests."""

    namespace, release = "mlops-system", "mlops-operator"

    # On node 1: the tests that stop node 2 need the operator that rolls their models out to stay up.
    placement = ("--set", "nodeSelector.kubernetes\\.io/hostname=mlops-node")

    def __init__(self, cluster: Kubectl, prometheus: str) -> None:
        self.cluster = cluster
        self.tolerated_restarts = 0
        # The Prometheus servers tests name in spec.prometheusUrl: none answers, or each answers badly.
        self.allowed_prometheus = json.dumps(allowed_test_prometheus_urls(urllib.parse.urlparse(prometheus).hostname))

    def deploy(self, *helm_args: str) -> None:
        allowed = ("--set-json", f"prometheus.allowedUrls={self.allowed_prometheus}")
        # The servers' keys of their own (read models, write captures): add_s3_credentials gives each test
        # namespace both Secrets; scoped_store_keys gives one namespace keys scoped to its prefixes.
        servers = ("--set", f"artifacts.s3.serverCredentialsSecret={SERVER_CREDENTIALS_SECRET}")
        with one_at_a_time("operator"):
            done = subprocess.run(
                [str(REPO / "hack/deploy.sh"), *self.placement, *allowed, *servers, *helm_args],
                capture_output=True,
                text=True,
            )
        if done.returncode != 0:
            pytest.fail(f"make deploy failed:\n{done.stdout}\n{done.stderr}", pytrace=False)

    def pods(self) -> list[dict]:
        selector = f"app.kubernetes.io/instance={self.release}"
        items = self.cluster.json("get", "pods", "-n", self.namespace, "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready_pod(self) -> dict | None:
        for pod in self.pods():
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return pod
        return None

    def restarts(self) -> int:
        """Restarts of the operator's container, but those a test caused by stopping its node."""
        return self._restarts() - self.tolerated_restarts

    def _restarts(self) -> int:
        return sum(s.get("restartCount", 0) for p in self.pods() for s in p["status"].get("containerStatuses", []))

    def tolerate_restarts(self) -> None:
        """The restarts so far came from a node stopped under the operator (a test's), not from a crash."""
        self.tolerated_restarts = self._restarts()

    def kill(self) -> str:
        """Kill the running operator pod at once (no graceful stop); return its name."""
        name = self.ready_pod()["metadata"]["name"]
        self.cluster.run("delete", "pod", name, "-n", self.namespace, "--grace-period=0", "--force", "--wait=false")
        return name

    def wait_ready(self, *, not_named: str = "") -> dict:
        return wait_for(
            lambda: (pod := self.ready_pod()) and pod["metadata"]["name"] != not_named and pod,
            timeout=120,
            what=f"a ready operator pod in {self.namespace}",
        )

    def logs(self) -> str:
        pod = self.ready_pod() or (self.pods() or [None])[0]
        if pod is None:
            return ""
        return self.cluster.run("logs", pod["metadata"]["name"], "-n", self.namespace, check=False).stdout


@pytest.fixture(scope="session")
def operator(crds: Kubectl, image: str, prometheus: str) -> Iterator[DeployedOperator]:
    deployed = DeployedOperator(crds, prometheus)
    deployed.deploy()
    deployed.wait_ready()
    yield deployed
    assert deployed.restarts() == 0, f"the operator restarted; its log:\n{deployed.logs()[-3000:]}"


@contextlib.contextmanager
def restricted_namespace(cluster: Kubectl, prefix: str, *, store: str) -> Iterator[str]:
    """A fresh namespace enforcing the `restricted` Pod Security Standard. Its artifact store: "s3" the
    operator's (the cluster's S3 server), with the credentials Secret its pods need; "none" the same
    without the Secret; "pvc" the claim `mlops-artifacts` (namespace annotation), created; "no-pvc"
    that claim, missing."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.run("create", "namespace", name)
    cluster.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    if store == "s3":
        add_s3_credentials(cluster, name)
    elif store in ("pvc", "no-pvc"):
        cluster.run("annotate", "namespace", name, f"{STORE_ANNOTATION}=pvc://mlops-artifacts")
    if store == "pvc":
        add_artifact_volume(name)
    try:
        yield name
    finally:
        cluster.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Kubectl) -> Iterator[str]:
    """A namespace of its own for one test, without an artifact store (its claim does not exist)."""
    with restricted_namespace(cluster, "t", store="no-pvc") as name:
        yield name


@pytest.fixture
def store_namespace(cluster: Kubectl):
    """`with store_namespace(store) as name:` a fresh namespace with that artifact store (see restricted_namespace)."""
    return lambda store: restricted_namespace(cluster, "st", store=store)


@pytest.fixture(scope="module")
def ns(cluster: Kubectl, image: str) -> Iterator[str]:
    """One namespace with an artifact store (the cluster's S3 server) for a whole test module: its tests
    tell one story in order."""
    with restricted_namespace(cluster, "ml", store="s3") as name:
        yield name
