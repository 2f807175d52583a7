"""Evidence the operator acts on, staged on the local cluster as a careless or hostile tenant would:
a forged training result, a run re-created under an old name, a rolled-back version a second
ModelDeployment would serve, a rollout whose version disappears mid-canary. (A crash between a
promotion's decision and its champion label: test_disruptions.py, which runs alone.)
"""

from __future__ import annotations

import json
import subprocess

import pytest

from support import REPO, Kubectl, wait_for, wait_phase
from support import champions as _champions
from support import model_deployment_manifest as _md
from support import training_run_manifest as _run

pytestmark = pytest.mark.usefixtures("operator")

LOGREG = "sklearn.linear_model.LogisticRegression"
PLUGIN = REPO / ".venv/bin/kubectl-mlops"


def _forged_pod(name: str, *, job: dict, owned: bool) -> str:
    """A pod that claims to be the training Job's: its labels, and (`owned`) an owner reference to it, but
    a command that only writes a result — perfect metrics and a model of the forger's choosing."""
    uid = job["metadata"]["uid"]
    labels = {
        "app.kubernetes.io/managed-by": "mlops-operator",
        "batch.kubernetes.io/job-name": job["metadata"]["name"],
        "job-name": job["metadata"]["name"],
    }
    metadata = {"name": name, "labels": labels}
    if owned:  # what the Job controller would also count as its own
        labels["batch.kubernetes.io/controller-uid"] = uid
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": uid, "controller": True}
        ]
    metrics = {"accuracy": 0.999, "f1_macro": 0.999}
    elsewhere = "s3://mlops/artifacts/models/elsewhere/iris/forged"
    forged = json.dumps(
        {"ok": True, "metrics": metrics, "primaryMetric": "accuracy", "modelUri": elsewhere, "sha256": "f" * 64}
    )
    container = {
        "name": "main",
        "image": "mlops-operator:dev",
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", f"printf '%s' '{forged}' > /dev/termination-log; exit 1"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {"restartPolicy": "Never", "containers": [container]},
        }
    )


def test_a_forged_pod_with_the_jobs_labels_never_writes_the_result(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(_run("forged", LOGREG, backoffLimit=3), ns)
    job = wait_for(lambda: cluster.get("job", "forged-train", ns), timeout=120, what="the training Job")
    cluster.apply(_forged_pod("forged-train-labels", job=job, owned=False), ns)
    cluster.apply(_forged_pod("forged-train-owned", job=job, owned=True), ns)
    # The owned one the Job controller counts as its own, and deletes if the Job completes first.
    for pod in ("forged-train-labels", "forged-train-owned"):
        wait_for(
            lambda pod=pod: (found := cluster.get("pod", pod, ns)) is None or found["status"].get("phase") == "Failed",
            timeout=60,
            what=f"the forged pod {pod} to leave its result (or be deleted with its Job's active pods)",
        )
    run = wait_phase(cluster, "trainingrun", "forged", ns, ("Succeeded", "Failed"), timeout=240)
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    uid = run["metadata"]["uid"]
    assert status["model"]["uri"].endswith(f"/models/{ns}/iris/forged-{uid}"), status["model"]
    assert status["model"]["sha256"] != "f" * 64 and status["metrics"]["accuracy"] != 0.999, status


def test_a_run_recreated_under_an_old_name_trains_its_own_model(cluster: Kubectl, ns: str) -> None:
    """Re-applying a TrainingRun name (as after `kubectl delete` and a GitOps sync) never reports the
    model the deleted run stored: the version is keyed by the run's uid."""
    cluster.apply(_run("reused", LOGREG), ns)
    first = wait_phase(cluster, "trainingrun", "reused", ns, ("Succeeded", "Failed"), timeout=240)
    assert first["status"]["phase"] == "Succeeded", first["status"]
    cluster.run("delete", "trainingrun", "reused", "-n", ns, "--wait=true")
    cluster.apply(_run("reused", "sklearn.dummy.DummyClassifier", params={"strategy": "most_frequent"}), ns)
    second = wait_for(
        lambda: (
            (r := cluster.get("trainingrun", "reused", ns))
            and r["metadata"]["uid"] != first["metadata"]["uid"]
            and r.get("status", {}).get("phase") in ("Succeeded", "Failed")
            and r
        ),
        timeout=240,
        what="the re-created run to finish",
    )
    assert second["status"]["phase"] == "Succeeded", second["status"]
    assert second["status"]["model"]["uri"] != first["status"]["model"]["uri"]
    assert second["status"]["model"]["sha256"] != first["status"]["model"]["sha256"]
    assert second["status"]["metrics"]["accuracy"] < 0.5 < first["status"]["metrics"]["accuracy"], (
        "the re-created run reports its own (most-frequent baseline) model, not the deleted run's"
    )


def _md_status(cluster: Kubectl, name: str, ns: str) -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def _labels(cluster: Kubectl, run: str, ns: str) -> dict:
    return (cluster.get("trainingrun", run, ns) or {}).get("metadata", {}).get("labels") or {}


def test_a_rolled_back_version_is_recorded_on_it_and_served_by_no_other_deployment(cluster: Kubectl, ns: str) -> None:
    """md1's analysis fails the canary of `good`'s successor `bad`: the TrainingRun records the rollback,
    the champion title goes back to `good`, a second ModelDeployment of the model serves `good` (never
    `bad` at 100 %), and `kubectl mlops retry` lets `bad` compete again — through a canary. Then its run
    is deleted mid-canary: the rollout holds and says why, and an abort still rolls it back."""
    model = "evidence"
    cluster.apply(_run("good", LOGREG, model=model), ns)
    wait_for(lambda: _champions(cluster, ns, model) == ["good"], timeout=240, what="good as champion")
    steps = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
    never = {"name": "never", "query": "vector(1)", "successCondition": "result < 0"}  # every measurement fails
    failing = {"interval": "2s", "failureLimit": 1, "metrics": [never]}
    cluster.apply(_md("md1", model=model, replicas=2, strategy=steps, analysis=failing), ns)
    wait_for(
        lambda: (_md_status(cluster, "md1", ns).get("stable") or {}).get("readyReplicas") == 2,
        timeout=180,
        what="md1 serving good",
    )
    cluster.apply(_run("bad", LOGREG, model=model, params={"C": 0.5}), ns)

    def recorded() -> dict | None:
        run = cluster.get("trainingrun", "bad", ns)
        return (
            run if run and ((run.get("status") or {}).get("promotion") or {}).get("decision") == "RolledBack" else None
        )

    bad = wait_for(recorded, timeout=240, what="bad canaried, rolled back by md1's analysis, and the rollback recorded")
    assert bad["metadata"]["labels"]["mlops.dev/rolled-back"] == "true"
    record = bad["status"]["rolledBack"]
    assert (record["modelDeployment"], record["reason"]) == ("md1", "AnalysisFailed"), record
    wait_for(lambda: _champions(cluster, ns, model) == ["good"], timeout=60, what="the title back on good")
    promotion = cluster.get("trainingrun", "good", ns)["status"]["promotion"]
    assert (promotion["decision"], promotion["reason"]) == ("Promoted", "Reinstated")
    assert _md_status(cluster, "md1", ns)["stable"]["version"] == "good"

    cluster.apply(_md("md2", model=model, replicas=2, strategy=steps), ns)  # as Argo CD re-creating it would
    md2 = wait_for(
        lambda: (s := _md_status(cluster, "md2", ns)).get("stable") and s, timeout=60, what="md2 to choose a version"
    )
    assert md2["stable"]["version"] == "good", f"md2 serves {md2['stable']['version']}, not the last good version"
    cluster.run("delete", "modeldeployment", "md1", "-n", ns, "--wait=true")  # its analysis would fail bad again

    retried = subprocess.run(
        [str(PLUGIN), f"--kubeconfig={cluster.kubeconfig}", "retry", "bad", "-n", ns], capture_output=True, text=True
    )
    assert retried.returncode == 0, retried.stderr
    assert "rolled-back" not in _labels(cluster, "bad", ns)
    wait_for(lambda: _champions(cluster, ns, model) == ["bad"], timeout=60, what="bad promoted again after retry")
    wait_for(
        lambda: (_md_status(cluster, "md2", ns).get("canary") or {}).get("version") == "bad",
        timeout=60,
        what="md2 canarying bad",
    )
    assert _md_status(cluster, "md2", ns)["stable"]["version"] == "good", "a canary, never 100 % at once"

    cluster.run("delete", "trainingrun", "bad", "-n", ns, "--wait=true")  # its version leaves the registry
    held = wait_for(
        lambda: (s := _md_status(cluster, "md2", ns)).get("pauseReason") == "TargetMissing" and s,
        timeout=60,
        what="md2 to hold its canary, saying why",
    )
    assert held["canary"]["version"] == "bad"
    cluster.run("annotate", "modeldeployment", "md2", "-n", ns, "mlops.dev/abort=second", "--overwrite")
    after = wait_for(
        lambda: (s := _md_status(cluster, "md2", ns)).get("canary") is None and s,
        timeout=60,
        what="the abort to roll the canary back without a target",
    )
    assert after["stable"]["version"] == "good" and after["degraded"]["reason"] == "Aborted"


def test_a_canary_taking_other_inputs_gets_no_traffic_until_approved(cluster: Kubectl, ns: str, tmp_path) -> None:
    """A new column upstream: the Dataset gains `petal_ratio`, the next version expects 5 features. Its
    canary is held at weight 0, no pod (InputSchemaChanged, the two signatures in the message), the
    stable version serves on; `kubectl mlops approve md/inputs` approves it and the steps begin."""
    model = "schema"
    iris = (REPO / "tests/integration/data/iris.csv").read_text().splitlines()
    wider = [iris[0].replace(",target", ",petal_ratio,target")]
    for line in iris[1:]:
        *features, target = line.split(",")
        wider.append(",".join([*features, f"{float(features[2]) / float(features[3]):.3f}", target]))
    data = tmp_path / "data.csv"
    data.write_text("\n".join(wider) + "\n")
    cluster.run("create", "configmap", "iris-wider", "-n", ns, f"--from-file=data.csv={data}")
    dataset = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "iris-wider"},
        "spec": {"source": {"configMap": {"name": "iris-wider", "key": "data.csv"}}, "target": "target"},
    }
    cluster.apply(json.dumps(dataset), ns)
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(_run("narrow", LOGREG, model=model), ns)
    wait_for(lambda: _champions(cluster, ns, model) == ["narrow"], timeout=240, what="narrow as champion")
    cluster.apply(_md("inputs", model=model, replicas=2), ns)
    wait_for(
        lambda: (_md_status(cluster, "inputs", ns).get("stable") or {}).get("readyReplicas") == 2,
        timeout=180,
        what="inputs serving narrow",
    )
    cluster.apply(_run("wide", LOGREG, model=model, dataset="iris-wider"), ns)
    held = wait_for(
        lambda: (s := _md_status(cluster, "inputs", ns)).get("pauseReason") == "InputSchemaChanged" and s,
        timeout=240,
        what="the canary of wide to be held for its inputs",
    )
    assert held["canary"]["version"] == "wide" and held["canary"]["replicas"] == 0, held["canary"]
    assert "takes other inputs than narrow" in held["canary"]["inputSchemaChanged"]
    assert held["stable"]["version"] == "narrow" and held["stable"]["weight"] == 100
    assert held["canary"]["signatureSha256"] != held["stable"]["signatureSha256"]
    approved = subprocess.run(
        [str(PLUGIN), f"--kubeconfig={cluster.kubeconfig}", "approve", "md/inputs", "-n", ns],
        capture_output=True,
        text=True,
    )
    assert approved.returncode == 0 and "Approved the inputs of wide" in approved.stdout, approved.stderr
    going = wait_for(
        lambda: ((s := _md_status(cluster, "inputs", ns)).get("canary") or {}).get("replicas", 0) > 0 and s,
        timeout=60,
        what="the approved canary to get its pods",
    )
    assert going.get("pauseReason") != "InputSchemaChanged" and "inputSchemaChanged" not in going["canary"]


def test_the_champion_is_compared_on_the_candidates_rows_after_the_data_moved(cluster: Kubectl, ns: str) -> None:
    """The champion was scored on the bundled iris; the candidate trains on another version of the data (a
    third of the rows left out). Its Job scores the champion on its own held-out rows, and the decision
    shows both figures and on which rows — never the champion's score on another test set."""
    model = "compared"
    rows = (REPO / "tests/integration/data/iris.csv").read_text().splitlines()
    kept = [rows[0], *(line for i, line in enumerate(rows[1:]) if i % 3 != 0)]
    cluster.run("create", "configmap", "iris-moved", "-n", ns, "--from-literal=data.csv=" + "\n".join(kept) + "\n")
    source = {"configMap": {"name": "iris-moved", "key": "data.csv"}}
    meta = {"name": "iris-moved"}
    dataset = {"apiVersion": "mlops.dev/v1alpha1", "kind": "Dataset", "metadata": meta, "spec": {"source": source}}
    cluster.apply(json.dumps(dataset), ns)
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(_run("baseline", "sklearn.dummy.DummyClassifier", model=model), ns)
    wait_for(lambda: _champions(cluster, ns, model) == ["baseline"], timeout=240, what="baseline as champion")
    beat = {"beatChampion": {"metric": "accuracy"}}
    cluster.apply(_run("challenger", LOGREG, model=model, dataset="iris-moved", promotion=beat), ns)

    def decided() -> dict | None:
        run = cluster.get("trainingrun", "challenger", ns)
        return run if run and (run.get("status") or {}).get("promotion") else None

    run = wait_for(decided, timeout=240, what="the challenger's decision")
    status, promotion = run["status"], run["status"]["promotion"]
    assert status["championScores"]["name"] == "baseline" and "accuracy" in status["championScores"]["metrics"]
    assert promotion["decision"] == "Promoted", promotion
    assert promotion["championValue"] == status["championScores"]["metrics"]["accuracy"]
    assert promotion["championValue"] != cluster.get("trainingrun", "baseline", ns)["status"]["metrics"]["accuracy"]
    assert f"both scored on this run's {status['testRows']} held-out rows" in promotion["message"], promotion
