"""The Helm chart on the local cluster: what it renders is accepted by the API server; it installs,
upgrades and uninstalls without losing CRDs, user objects or stored models; of two replicas, the one
holding the Lease is the only one active, and the other takes over when it goes; a stuck reconcile
fails liveness and the kubelet restarts the operator. Each release watches its own namespace, so this
runs beside the other modules; `prometheus.allowRawQueries=false`, which redeploys the shared operator,
is in test_disruptions.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from support import REPO, Kubectl, helm, install_ha_release, lease_holder, operator_pods, wait_for

CHART = str(REPO / "charts/mlops-operator")
pytestmark = pytest.mark.usefixtures("operator")


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "ha.enabled=true", "--set", "replicas=2"],
        ["--set", "watchNamespaces={NS}", "--set", "ha.enabled=true", "--set", "replicas=2"],
        ["--set", "artifacts.namespaces={NS}", "--set", "prometheus.url=http://prometheus:9090"],
    ],
    ids=["defaults", "ha", "namespaced-ha", "artifacts"],
)
def test_rendered_chart_is_accepted_by_the_api_server(cluster: Kubectl, namespace: str, values) -> None:
    values = [v.replace("NS", namespace) for v in values]
    rendered = helm(cluster, "template", f"dry-{namespace}", CHART, "-n", namespace, *values).stdout
    applied = cluster.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered)
    kinds = {line.split("/")[0] for line in applied.stdout.splitlines()}
    assert {"deployment.apps", "serviceaccount"} <= kinds, applied.stdout


def _deployment(cluster: Kubectl, release: str, namespace: str) -> dict:
    return cluster.get("deployment", release, namespace) or {}


def _available(cluster: Kubectl, release: str, namespace: str, generation_at_least: int = 1) -> bool:
    deployment = _deployment(cluster, release, namespace)
    status = deployment.get("status", {})
    return (
        status.get("observedGeneration", 0) >= generation_at_least
        and status.get("updatedReplicas") == deployment["spec"]["replicas"]
        and status.get("availableReplicas") == deployment["spec"]["replicas"]
        and not status.get("unavailableReplicas")
    )


def test_install_upgrade_uninstall_keeps_crds_user_objects_and_models(cluster: Kubectl, namespace: str) -> None:
    ns, release = namespace, f"lc-{namespace[-6:]}"
    fullname = f"{release}-mlops-operator"
    common = [
        "-n",
        ns,
        "--values",
        str(REPO / "hack/localcluster/values-local.yaml"),
        "--set",
        f"watchNamespaces={{{ns}}}",
        "--set",
        f"artifacts.namespaces={{{ns}}}",
    ]
    # No --wait: it would also wait for the claim to bind, and the local cluster has no provisioner.
    helm(cluster, "install", release, CHART, *common)
    wait_for(lambda: _available(cluster, fullname, ns), timeout=120, what="the installed operator available")
    pod_spec = _deployment(cluster, fullname, ns)["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == fullname
    assert pod_spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    dataset = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "kept"},
        "spec": {"source": {"builtin": {"name": "iris"}}, "target": "target"},
    }
    cluster.apply(json.dumps(dataset), ns)

    generation = _deployment(cluster, fullname, ns)["metadata"]["generation"]
    helm(cluster, "upgrade", release, CHART, *common, "--set", "resources.limits.memory=600Mi")
    wait_for(lambda: _available(cluster, fullname, ns, generation + 1), timeout=120, what="the upgraded operator")
    limits = _deployment(cluster, fullname, ns)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "600Mi"

    helm(cluster, "uninstall", release, "-n", ns, "--wait", "--timeout", "2m")
    assert cluster.get("deployment", fullname, ns) is None
    assert cluster.run("get", "serviceaccount", fullname, "-n", ns, check=False).returncode != 0
    assert cluster.run("get", "clusterrole", fullname, check=False).returncode != 0
    for crd in ("datasets.mlops.dev", "trainingruns.mlops.dev", "modeldeployments.mlops.dev"):
        assert cluster.run("get", "crd", crd, check=False).returncode == 0, f"{crd} was removed by uninstall"
    assert cluster.get("dataset", "kept", ns) is not None, "a user's Dataset was removed by uninstall"
    assert cluster.get("persistentvolumeclaim", "mlops-artifacts", ns) is not None, "the artifact claim was removed"


def test_two_replicas_elect_one_leader_and_the_standby_takes_over(cluster: Kubectl, namespace: str) -> None:
    ns, release = namespace, f"ha-{namespace[-6:]}"
    try:
        pods = install_ha_release(cluster, release, ns)
        names = [p["metadata"]["name"] for p in pods]

        active = wait_for(lambda: lease_holder(cluster, release, ns), timeout=90, what="one replica to hold the Lease")
        [standby] = [n for n in names if n != active]
        ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}

        def reconciles(pod: str) -> float:
            """Dataset reconciles the replica ran: its own counter, as Prometheus scrapes it (the release
            watches only this namespace, so they are reconciles of this test's Datasets)."""
            with urllib.request.urlopen(f"http://{ips[pod]}:9100/metrics", timeout=5) as response:
                lines = response.read().decode().splitlines()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith("mlops_reconciles_total{") and 'kind="datasets"' in line
            )

        def reconciled(dataset: str) -> bool:
            obj = cluster.get("dataset", dataset, ns) or {}
            return (obj.get("status") or {}).get("observedGeneration") == 1

        dataset = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "first"},
            "spec": {"source": {"builtin": {"name": "iris"}}, "target": "target"},
        }
        cluster.apply(json.dumps(dataset), ns)
        wait_for(
            lambda: reconciled("first") and reconciles(active) > 0,
            timeout=60,
            what=f"the active replica {active} to reconcile",
        )
        assert reconciles(standby) == 0, f"the standby {standby} reconciled too"

        # The active replica goes, and none replaces it (a replacement could outrank the standby): the
        # ReplicaSet removes the pod with the lowest deletion cost first.
        cluster.run("annotate", "pod", active, "-n", ns, "controller.kubernetes.io/pod-deletion-cost=-1000")
        instance = f"app.kubernetes.io/instance={release}"
        [deployment] = cluster.json("get", "deployments", "-n", ns, "-l", instance)["items"]
        cluster.run("scale", "deployment", deployment["metadata"]["name"], "-n", ns, "--replicas=1")
        wait_for(
            lambda: [p["metadata"]["name"] for p in operator_pods(cluster, release, ns)] == [standby],
            timeout=90,
            what=f"only {standby} left",
        )
        # A graceful stop releases the Lease at once; otherwise it runs out after 15 s unrenewed.
        # The standby, the only replica left, reconciles what is created from now on.
        before = reconciles(standby)
        cluster.apply(json.dumps({**dataset, "metadata": {"name": "second"}}), ns)
        wait_for(
            lambda: reconciled("second") and reconciles(standby) > before,
            timeout=90,
            what=f"{standby} to take over and reconcile",
        )
    finally:
        helm(cluster, "uninstall", release, "-n", ns, "--wait", "--timeout", "2m", check=False)


def test_a_stuck_reconcile_fails_liveness_and_the_kubelet_restarts_the_operator(cluster, namespace, tmp_path) -> None:
    """A reconcile that never returns (fault injection: MLOPS_TEST_HANG_RECONCILE) holds one reconcile
    thread: the other objects are still reconciled, /healthz answers 500 once it has run past the bound
    (the log names the stuck object), and the kubelet's liveness probe restarts the container."""
    ns, release = namespace, f"stuck-{namespace[-6:]}"
    values = tmp_path / "values.json"
    values.write_text(
        json.dumps(
            {
                "watchNamespaces": [ns],
                "extraEnv": [
                    {"name": "MLOPS_STUCK_RECONCILE_SECONDS", "value": "5"},
                    {"name": "MLOPS_TEST_HANG_RECONCILE", "value": f"{ns}/stuck"},
                ],
            }
        )
    )
    helm(
        cluster,
        "install",
        release,
        CHART,
        "-n",
        ns,
        "--values",
        str(REPO / "hack/localcluster/values-local.yaml"),
        "--values",
        str(values),
        "--wait",
        "--timeout",
        "3m",
    )
    try:
        [pod] = wait_for(
            lambda: len(p := operator_pods(cluster, release, ns)) == 1 and p,
            timeout=120,
            what="the operator pod running",
        )
        ip = pod["status"]["podIP"]

        def health() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://{ip}:8081/healthz", timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        def reconciles() -> float:
            with urllib.request.urlopen(f"http://{ip}:9100/metrics", timeout=5) as response:
                lines = response.read().decode().splitlines()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith("mlops_reconciles_total{") and 'kind="datasets"' in line
            )

        assert health()[0] == 200, f"/healthz of a fresh operator: {health()}"
        dataset = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "stuck"},
            "spec": {"source": {"builtin": {"name": "iris"}}, "target": "target"},
        }
        cluster.apply(json.dumps(dataset), ns)
        wait_for(
            lambda: health()[0] == 500,
            timeout=60,
            what="/healthz to fail once the reconcile of 'stuck' has run past 5 s",
        )
        log = cluster.run("logs", pod["metadata"]["name"], "-n", ns).stdout  # the probe's failure, in words
        assert f"the reconcile of datasets {ns}/stuck has run for" in log, f"the log says:\n{log[-2000:]}"
        before = reconciles()
        cluster.apply(json.dumps({**dataset, "metadata": {"name": "other"}}), ns)
        wait_for(lambda: reconciles() > before, timeout=30, what="the other Dataset reconciled beside the stuck one")

        def restarted() -> int:
            live = [p for p in operator_pods(cluster, release, ns) if p["metadata"]["name"] == pod["metadata"]["name"]]
            return live and sum(s.get("restartCount", 0) for s in live[0]["status"].get("containerStatuses", []))

        wait_for(restarted, timeout=180, what="the kubelet to restart the operator on its failing liveness probe")
        events = cluster.json(
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            f"involvedObject.name={pod['metadata']['name']},reason=Unhealthy",
        )["items"]
        assert any("Liveness probe failed" in e.get("message", "") for e in events), [e["message"] for e in events]
    finally:
        helm(cluster, "uninstall", release, "-n", ns, "--wait", "--timeout", "2m", check=False)
