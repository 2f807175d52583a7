"""The operator reconciles every kind: observedGeneration, a Ready condition, InvalidSpec without crashing."""

from __future__ import annotations

import json

import pytest

from support import Kubectl, condition, wait_for

DATASET = """
apiVersion: mlops.dev/v1alpha1
kind: Dataset
metadata: {name: iris}
spec:
  source: {builtin: {name: iris}}
"""
TRAININGRUN = """
apiVersion: mlops.dev/v1alpha1
kind: TrainingRun
metadata: {name: iris-logreg}
spec:
  datasetRef: {name: iris}
  model: {name: iris, estimator: sklearn.linear_model.LogisticRegression, params: {C: 1.0}}
"""
MODELDEPLOYMENT = """
apiVersion: mlops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  model: {name: iris}
"""


def _reconciled(kubectl: Kubectl, kind: str, name: str, namespace: str):
    def check():
        obj = kubectl.get(kind, name, namespace)
        if not obj or (obj.get("status") or {}).get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj if condition(obj, "Ready") else None

    return check


@pytest.mark.parametrize(
    ("kind", "name", "manifest", "reason", "words", "phase"),
    [
        # This namespace has no artifact store, no Dataset and no champion: each valid object is judged
        # (not InvalidSpec) and says what it waits for.
        ("dataset", "iris", DATASET, "ArtifactStoreMissing", "PersistentVolumeClaim mlops-artifacts", "Failed"),
        ("trainingrun", "iris-logreg", TRAININGRUN, "DatasetNotReady", "Dataset iris does not exist", "Pending"),
        ("modeldeployment", "iris", MODELDEPLOYMENT, "ModelNotFound", "model iris has no promoted version", "Pending"),
    ],
)
def test_valid_object_gets_observed_generation_and_ready(
    operator,
    cluster: Kubectl,
    namespace: str,
    kind: str,
    name: str,
    manifest: str,
    reason: str,
    words: str,
    phase: str,
) -> None:
    cluster.apply(manifest, namespace)
    obj = wait_for(_reconciled(cluster, kind, name, namespace), timeout=30, what=f"{kind}/{name} reconciled")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason), ready
    assert words in ready["message"], ready
    assert ready["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["phase"] == phase


def test_spec_change_is_observed(operator, cluster: Kubectl, namespace: str) -> None:
    cluster.apply(DATASET, namespace)
    wait_for(_reconciled(cluster, "dataset", "iris", namespace), timeout=30, what="first reconcile")
    cluster.run("patch", "dataset", "iris", "-n", namespace, "--type=merge", "-p", '{"spec":{"historyLimit":3}}')
    obj = wait_for(
        lambda: (
            (o := cluster.get("dataset", "iris", namespace))
            and o["metadata"]["generation"] == 2
            and o["status"].get("observedGeneration") == 2
            and o
        ),
        timeout=30,
        what="observedGeneration 2 after a spec change",
    )
    assert condition(obj, "Ready")["observedGeneration"] == 2


def test_spec_the_schema_cannot_judge_becomes_invalid_spec(operator, cluster: Kubectl, namespace: str) -> None:
    # The CRD schema cannot read free-form params: whether an SVC gives the probabilities roc_auc needs
    # (params.probability) only the model can tell.
    cluster.apply(
        """
apiVersion: mlops.dev/v1alpha1
kind: TrainingRun
metadata: {name: forest}
spec:
  datasetRef: {name: iris}
  model: {name: iris, estimator: sklearn.svm.SVC}
  evaluation: {metrics: [roc_auc, accuracy]}
""",
        namespace,
    )

    def invalid():
        ready = condition(cluster.get("trainingrun", "forest", namespace), "Ready")
        return ready if ready and ready["reason"] == "InvalidSpec" else None

    ready = wait_for(invalid, timeout=30, what="Ready=False reason=InvalidSpec")
    assert ready["status"] == "False"
    assert "spec.evaluation.metrics[0]" in ready["message"]
    assert "roc_auc is computed from probabilities" in ready["message"]
    events = wait_for(
        lambda: [
            e
            for e in cluster.json("get", "events", "-n", namespace)["items"]
            if e["involvedObject"]["name"] == "forest" and e["reason"] == "InvalidSpec"
        ],
        timeout=30,
        what="a Warning Event with reason InvalidSpec",
    )
    assert events[0]["type"] == "Warning"
    # The operator did not crash: it still reconciles other objects.
    assert operator.restarts() == 0 and operator.ready_pod(), operator.logs()[-2000:]
    cluster.apply(DATASET, namespace)
    wait_for(_reconciled(cluster, "dataset", "iris", namespace), timeout=30, what="a valid object after an invalid one")


def _run(name: str, **spec) -> dict:
    body = {"datasetRef": {"name": "iris"}, "model": {"name": "iris", "estimator": "sklearn.svm.SVC"}}
    for key, value in spec.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) and key in body else value
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name}, "spec": body}


# What no schema can bound, the model refuses: (id, run, field, words). The API server accepts these.
UNSCHEMABLE = [
    (
        "params-270kb",
        _run("big-params", model={"params": {"class_weight": {str(i): 1.0 for i in range(20_000)}}}),
        "spec.model.params",
        "bytes as JSON, more than 65536",
    ),
    (
        "unknown-resource",
        _run("gpu-run", resources={"requests": {"gpu": 1}}),
        "spec.resources",
        "requests names ['gpu']",
    ),
    (
        "requests-above-limits",
        _run("tight-run", resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        "spec.resources",
        "requests.cpu (2) is more than limits.cpu (1)",
    ),
]


@pytest.mark.parametrize(("run", "field", "words"), [u[1:] for u in UNSCHEMABLE], ids=[u[0] for u in UNSCHEMABLE])
def test_a_spec_no_schema_can_bound_becomes_invalid_spec_and_no_job(
    operator, cluster: Kubectl, namespace: str, run: dict, field: str, words: str
) -> None:
    name = run["metadata"]["name"]
    # create, not apply: a 270 KB spec would not fit in the last-applied annotation (256 KiB for all).
    cluster.run("create", "-n", namespace, "-f", "-", input=json.dumps(run))

    def invalid():
        ready = condition(cluster.get("trainingrun", name, namespace), "Ready")
        return ready if ready and ready["reason"] == "InvalidSpec" else None

    ready = wait_for(invalid, timeout=30, what=f"{name}: Ready=False reason=InvalidSpec")
    assert ready["status"] == "False"
    assert ready["message"].startswith(f"{field}: ") and words in ready["message"], ready["message"]
    assert cluster.get("job", f"{name}-train", namespace) is None, "no Job for a spec the operator refused"
    # Deleting it completes, however large or wrong its spec (the finalizer is removed).
    cluster.run("delete", "trainingrun", name, "-n", namespace, "--timeout=30s")
    assert cluster.get("trainingrun", name, namespace) is None, f"{name} is still there after its deletion"


def test_operator_writes_nothing_a_gitops_tool_would_diff(operator, cluster: Kubectl, namespace: str) -> None:
    cluster.apply(MODELDEPLOYMENT, namespace)
    wait_for(_reconciled(cluster, "modeldeployment", "iris", namespace), timeout=30, what="reconciled")
    obj = cluster.json("get", "modeldeployment", "iris", "-n", namespace, "--show-managed-fields")
    assert obj["spec"]["model"] == {"name": "iris"}
    for entry in obj["metadata"]["managedFields"]:
        if entry["manager"].startswith("kubectl") or entry.get("subresource") == "status":
            continue
        # Anything else the operator wrote: only its finalizer, and annotations and labels under its own group.
        fields = entry["fieldsV1"]
        assert set(fields) == {"f:metadata"}, f"{entry['manager']} wrote {sorted(fields)}"
        metadata = fields["f:metadata"]
        assert set(metadata) <= {"f:annotations", "f:finalizers", "f:labels"}, metadata
        for key in ("f:annotations", "f:labels"):
            ours = [k for k in metadata.get(key, {}) if k != "."]
            assert all(k.startswith("f:mlops.dev/") for k in ours), ours
        assert set(metadata.get("f:finalizers", {})) <= {".", 'v:"mlops.dev/finalizer"'}


def test_missing_artifact_store_is_reported_not_waited_on_silently(operator, cluster: Kubectl, namespace: str) -> None:
    cluster.apply(DATASET, namespace)

    def reported():
        ready = condition(cluster.get("dataset", "iris", namespace), "Ready")
        return ready if ready and ready["reason"] == "ArtifactStoreMissing" else None

    ready = wait_for(reported, timeout=30, what="Ready=False reason=ArtifactStoreMissing")
    assert "PersistentVolumeClaim mlops-artifacts does not exist" in ready["message"]
    assert cluster.json("get", "jobs", "-n", namespace)["items"] == [], "no Job may wait on a missing claim"
