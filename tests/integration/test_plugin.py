"""`kubectl mlops` on the local cluster, run as a user runs it: the installed `kubectl-mlops` script, and
through kubectl's plugin discovery. One story in order: a served model, a canary held at manual gates
and promoted through them, a manually gated TrainingRun approved, its canary aborted, the history of it
all, the demo's run reproduced; then the kubeconfig's contexts and a user without permissions."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest
import yaml

from support import (
    REPO,
    Kubectl,
    champions,
    model_deployment_manifest,
    status_fields,
    training_run_manifest,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")

PLUGIN = REPO / ".venv/bin/kubectl-mlops"
# Two manual gates after 50 %; the one measurement, when the canary's pod is ready, passes (an
# always-passing query on the cluster's Prometheus): only the promote commands move the gates on. (With an
# unreachable Prometheus that one measurement is inconclusive, and the 50 % step waits for the next one,
# an interval later, if it came before the pod was counted ready: a race this story is not about.)
SPEC = {
    "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"pause": {}}]}},
    "analysis": {
        "interval": "1h",
        "metrics": [{"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}],
    },
}


def plugin(cluster: Kubectl, *args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed script, with an explicit --kubeconfig."""
    return subprocess.run(
        [str(PLUGIN), f"--kubeconfig={kubeconfig or cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def kubectl_plugin(cluster: Kubectl, *args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl with the venv's bin first on PATH, where it discovers kubectl-mlops; KUBECONFIG set."""
    env = {
        **os.environ,
        "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": kubeconfig or cluster.kubeconfig,
    }
    return subprocess.run([cluster.binary, *args], capture_output=True, text=True, timeout=60, env=env)


def kubectl_mlops(cluster: Kubectl, *args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    """`kubectl mlops …`, as a user with the venv's bin on PATH types it."""
    return kubectl_plugin(cluster, "mlops", *args, kubeconfig=kubeconfig)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command: exit 1, one line on stderr, no traceback."""
    assert result.returncode == 1, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    return result.stderr.strip()


def md_status(cluster: Kubectl, ns: str) -> dict:
    return (cluster.get("modeldeployment", "iris", ns) or {}).get("status") or {}


def held_at_gate(cluster: Kubectl, ns: str, version: str, step_index: int) -> dict | None:
    status = md_status(cluster, ns)
    canary = status.get("canary") or {}
    at_gate = canary.get("version") == version and canary.get("stepIndex") == step_index
    return status if at_gate and status.get("pauseReason") == "PauseStep" else None


def token_of(output: str, command: str) -> str:
    found = re.search(rf"mlops\.dev/{command}=([^)\s]+)\)", output)
    assert found, output
    return found.group(1)


def test_status_of_a_served_model(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply((REPO / "examples/trainingrun-iris-dummy.yaml").read_text(), ns)
    wait_phase(cluster, "trainingrun", "iris-baseline", ns, ("Succeeded",), timeout=180)
    cluster.apply(model_deployment_manifest("iris", **SPEC), ns)
    wait_phase(cluster, "modeldeployment", "iris", ns, ("Healthy",), timeout=120)
    for run in (plugin, kubectl_mlops):
        shown = status_fields(ok(run(cluster, "status", "iris", "-n", ns)))
        assert (shown["Name"], shown["Namespace"], shown["Phase"]) == ("iris", ns, "Healthy"), shown
        assert shown["Model"] == "iris (follows its champion)"
        assert shown["Stable"].split()[:3] == ["iris-baseline", "weight", "100%"], shown
        assert shown["Canary"] == "none: no rollout in progress"
        assert shown["Ready"].startswith("True, ServingStable")
    listed = kubectl_plugin(cluster, "plugin", "list")  # its exit code also reflects other plugins' warnings
    assert str(PLUGIN) in listed.stdout, listed.stdout + listed.stderr


def test_status_shows_stable_and_canary_and_promote_moves_the_manual_pauses_on(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/trainingrun-iris-logreg.yaml").read_text(), ns)
    wait_for(lambda: held_at_gate(cluster, ns, "iris-logreg", 1), timeout=240, what="iris-logreg at the first gate")
    shown = status_fields(ok(kubectl_mlops(cluster, "status", "iris", "-n", ns)))
    assert shown["Phase"] == "Paused"
    assert shown["Stable"].split()[:3] == ["iris-baseline", "weight", "50%"], shown
    assert shown["Canary"].split()[:5] == ["iris-logreg", "weight", "50%", "(desired", "50%)"], shown
    assert shown["Step"] == f"2/3 pause until promoted: waiting for `kubectl mlops promote iris -n {ns}`"
    refused = one_line_error(plugin(cluster, "resume", "iris", "-n", ns))
    assert "waits at a manual pause step, which resume does not move: use promote" in refused

    first = ok(kubectl_mlops(cluster, "promote", "iris", "-n", ns))
    token = token_of(first, "promote")
    assert "step 2/3 (pause until promoted) is skipped" in first and f"kubectl mlops status iris -n {ns}" in first
    annotations = cluster.get("modeldeployment", "iris", ns)["metadata"]["annotations"]
    assert annotations["mlops.dev/promote"] == token
    status = wait_for(lambda: held_at_gate(cluster, ns, "iris-logreg", 2), timeout=60, what="the second gate")
    assert status["handledCommands"]["promote"] == token
    assert status_fields(ok(plugin(cluster, "status", "md/iris", "-n", ns)))["Step"].startswith(
        "3/3 pause until promoted"
    )

    second = ok(plugin(cluster, "promote", "iris", "-n", ns))
    assert token_of(second, "promote") != token, "every request is a fresh token"
    assert "completes the rollout: iris-logreg becomes stable at 100%" in second
    promoted = wait_for(
        lambda: (s := md_status(cluster, ns)).get("stable", {}).get("version") == "iris-logreg" and s,
        timeout=60,
        what="iris-logreg promoted",
    )
    assert promoted.get("canary") is None and promoted["history"][0]["outcome"] == "Promoted"
    wait_for(
        lambda: status_fields(ok(plugin(cluster, "status", "iris", "-n", ns)))["Phase"] == "Healthy",
        timeout=120,
        what="the plugin to show iris-logreg Healthy",
    )


def test_approve_promotes_a_manual_gated_training_run(cluster: Kubectl, ns: str) -> None:
    cluster.apply(
        training_run_manifest(
            "iris-tree", "sklearn.tree.DecisionTreeClassifier", params={"max_depth": 3}, promotion={"policy": "manual"}
        ),
        ns,
    )
    wait_phase(cluster, "trainingrun", "iris-tree", ns, ("Succeeded",), timeout=180)
    wait_for(
        lambda: (
            (cluster.get("trainingrun", "iris-tree", ns)["status"].get("promotion") or {}).get("decision")
            == "PendingApproval"
        ),
        timeout=30,
        what="iris-tree waiting for approval",
    )
    assert champions(cluster, ns, "iris") == ["iris-logreg"]
    out = ok(kubectl_mlops(cluster, "approve", "tr/iris-tree", "-n", ns))
    assert "Approved TrainingRun iris-tree: it becomes the champion of model iris" in out
    assert cluster.get("trainingrun", "iris-tree", ns)["metadata"]["annotations"]["mlops.dev/approved"] == "true"
    wait_for(lambda: champions(cluster, ns, "iris") == ["iris-tree"], timeout=30, what="iris-tree the champion")
    assert cluster.get("trainingrun", "iris-tree", ns)["status"]["promotion"]["reason"] == "Approved"
    assert "already the champion of model iris" in ok(plugin(cluster, "approve", "iris-tree", "-n", ns))
    refused = one_line_error(plugin(cluster, "approve", "iris-baseline", "-n", ns))
    assert "superseded" in refused or "policy auto" in refused


def test_abort_rolls_the_canary_back(cluster: Kubectl, ns: str) -> None:
    wait_for(lambda: held_at_gate(cluster, ns, "iris-tree", 1), timeout=240, what="iris-tree at the first gate")
    shown = status_fields(ok(plugin(cluster, "status", "iris", "-n", ns)))
    assert shown["Stable"].startswith("iris-logreg") and shown["Canary"].startswith("iris-tree"), shown
    out = ok(kubectl_mlops(cluster, "abort", "iris", "-n", ns))
    assert "iris-tree is rolled back: iris-logreg takes all traffic" in out
    status = wait_for(lambda: (s := md_status(cluster, ns)).get("degraded") and s, timeout=60, what="the rollback")
    assert status["degraded"]["reason"] == "Aborted" and status["stable"]["version"] == "iris-logreg"
    assert "iris-tree" in status["failedVersions"] and status.get("canary") is None
    shown = status_fields(ok(plugin(cluster, "status", "iris", "-n", ns)))
    assert shown["Phase"] == "Degraded" and shown["Degraded"] == "Aborted: aborted by the user"
    assert shown["Failed versions"] == "iris-tree (not retried automatically)"
    assert shown["Canary"] == "none: no rollout in progress"
    refused = one_line_error(kubectl_mlops(cluster, "promote", "iris", "-n", ns))
    assert (
        refused == "error: iris has no rollout in progress (serving iris-logreg): nothing to promote "
        "(--force sets the annotation anyway)"
    )


def test_history_lists_the_decisions(cluster: Kubectl, ns: str) -> None:
    for run in (plugin, kubectl_mlops):
        rows = ok(run(cluster, "history", "iris", "-n", ns)).splitlines()
        assert rows[0].split() == ["TIME", "VERSION", "EVENT", "REASON"]
        assert [row.split()[1:4] for row in rows[1:3]] == [
            ["iris-tree", "Aborted", "Aborted:"],
            ["iris-logreg", "Promoted", "after"],
        ], rows
        assert rows[1].endswith("Aborted: aborted by the user") and rows[2].endswith("after 3 steps")


def test_reproduce_trains_the_demo_run_again_and_finds_it_identical(cluster: Kubectl, ns: str) -> None:
    """The demo's logistic regression trained again, on the dataset version and seed it was trained with:
    the same predictions on its golden rows and the same metrics; the copy competes for nothing."""
    before = champions(cluster, ns, "iris")
    original = cluster.get("trainingrun", "iris-logreg", ns)
    done = subprocess.run(
        [str(PLUGIN), f"--kubeconfig={cluster.kubeconfig}", "reproduce", "tr/iris-logreg", "-n", ns, "--timeout=300"],
        capture_output=True,
        text=True,
        timeout=360,
    )
    out = ok(done)
    assert "reproduces iris-logreg: identical" in out and "the same predictions on the same rows" in out, out
    assert "environment  the same libraries" in out, out
    copies = cluster.json("get", "trainingruns", "-n", ns, "-l", "mlops.dev/reproduces=iris-logreg")["items"]
    assert len(copies) == 1, [c["metadata"]["name"] for c in copies]
    copy = copies[0]
    assert copy["spec"]["datasetRef"] == {
        "name": original["status"]["dataset"]["name"],
        "version": original["status"]["dataset"]["version"],
    }
    assert copy["status"]["model"]["goldenSha256"] == original["status"]["model"]["goldenSha256"]
    assert copy["status"]["metrics"] == original["status"]["metrics"]
    decided = wait_for(
        lambda: (cluster.get("trainingrun", copy["metadata"]["name"], ns)["status"].get("promotion") or {}).get(
            "decision"
        ),
        timeout=30,
        what="the copy's promotion decision",
    )
    assert decided == "PendingApproval" and champions(cluster, ns, "iris") == before, "it competes for nothing"


def test_contexts_namespaces_and_permissions(cluster: Kubectl, ns: str, tmp_path) -> None:
    """A kubeconfig whose current context is a user without rights, and a second context with admin rights."""
    cluster.run("create", "serviceaccount", "nobody", "-n", ns)
    token = cluster.run("create", "token", "nobody", "-n", ns, "--duration=10m").stdout.strip()
    admin = yaml.safe_load(pathlib.Path(cluster.kubeconfig).read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [*admin["users"], {"name": "nobody", "user": {"token": token}}],
        "contexts": [
            {"name": "nobody", "context": {"cluster": current["cluster"], "user": "nobody", "namespace": ns}},
            {
                "name": "admin-here",
                "context": {"cluster": current["cluster"], "user": current["user"], "namespace": ns},
            },
        ],
        "current-context": "nobody",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))

    denied = one_line_error(plugin(cluster, "status", "iris", kubeconfig=str(kubeconfig)))
    assert denied.startswith(f"error: no permission to get modeldeployments.mlops.dev in namespace {ns}: "), denied
    assert "system:serviceaccount" in denied
    assert one_line_error(kubectl_mlops(cluster, "status", "iris", kubeconfig=str(kubeconfig))) == denied
    # The namespace comes from the chosen context: no -n.
    shown = status_fields(ok(plugin(cluster, "--context", "admin-here", "status", "iris", kubeconfig=str(kubeconfig))))
    assert (shown["Namespace"], shown["Stable"].split()[0]) == (ns, "iris-logreg")
    history = ok(kubectl_mlops(cluster, "history", "iris", "--context=admin-here", kubeconfig=str(kubeconfig)))
    assert "iris-tree" in history

    missing = one_line_error(plugin(cluster, "status", "no-such-md", "-n", ns))
    assert missing == f"error: ModelDeployment no-such-md not found in namespace {ns}"
    wrong_kind = one_line_error(kubectl_mlops(cluster, "status", "iris-tree", "-n", ns))
    assert wrong_kind.endswith("(iris-tree is a TrainingRun, not a ModelDeployment)")
    assert "is not a ModelDeployment" in one_line_error(plugin(cluster, "abort", "tr/iris-tree", "-n", ns))
    assert "context nope is not in the kubeconfig" in one_line_error(
        plugin(cluster, "--context", "nope", "status", "iris")
    )
