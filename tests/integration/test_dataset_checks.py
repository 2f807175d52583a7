"""Dataset checks that used to end wrong on the local cluster (issue 23, items 9 and 10):

- a check whose pod cannot start (the namespace's store Secret is created after the Dataset) waits for the
  cause instead of failing, takes its own Job's result once the Secret exists, and the TrainingRun applied
  meanwhile trains: no 10-minute wait for the next refresh;
- a Dataset of 1,000 columns becomes Ready: the check's result no longer has to fit every column name into
  the 4 KiB termination message (the names are in the stored profile, named by URI and sha256), and a
  training on it reports its result too.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest

from support import (
    REPO,
    Kubectl,
    add_s3_credentials,
    artifact_path,
    condition,
    training_run_manifest,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")
DATASET = (REPO / "examples/dataset-iris.yaml").read_text()
TERMINATION_MESSAGE_MAX_BYTES = 4096  # what the kubelet keeps of a container's termination message


def _event_reasons(cluster: Kubectl, namespace: str, name: str) -> set[str]:
    """The reasons of the Events about object `name`."""
    events = cluster.json("get", "events", "-n", namespace)["items"]
    return {e["reason"] for e in events if e["involvedObject"]["name"] == name}


def _run_reason(cluster: Kubectl, namespace: str, name: str) -> str | None:
    """What a TrainingRun's status says it is doing (status.reason)."""
    return ((cluster.get("trainingrun", name, namespace) or {}).get("status") or {}).get("reason")


def test_a_check_whose_pod_cannot_start_waits_for_the_secret_then_becomes_ready(cluster, store_namespace) -> None:
    with store_namespace("none") as namespace:  # the operator's S3 store, without the Secret its pods need
        cluster.apply(DATASET, namespace)
        phases: set[str] = set()

        def dataset_saying(reason: str, status: str) -> dict | None:
            ds = cluster.get("dataset", "iris", namespace)
            phases.add(((ds or {}).get("status") or {}).get("phase") or "")
            ready = condition(ds, "Ready") or {}
            return ds if (ready.get("reason"), ready.get("status")) == (reason, status) else None

        blocked = "the Dataset to say that its check's pod cannot start"
        ds = wait_for(lambda: dataset_saying("PodCannotStart", "False"), timeout=120, what=blocked)
        status, ready = ds["status"], condition(ds, "Ready")
        assert status["phase"] == "Pending", "waiting for the cause is not a failed check"
        assert 'secret "mlops-s3" not found' in ready["message"], ready["message"]
        assert "waits for that and goes on once it is fixed" in ready["message"], ready["message"]
        assert status["activeCheck"] == status["blockedCheck"]["job"] == "iris-check-1", status
        validated = condition(ds, "Validated")
        assert (validated["status"], validated["reason"]) == ("Unknown", "PodCannotStart"), validated

        # A TrainingRun applied meanwhile waits for a version of the Dataset.
        cluster.apply(training_run_manifest("iris-a", "sklearn.linear_model.LogisticRegression"), namespace)
        said = wait_for(lambda: _run_reason(cluster, namespace, "iris-a"), timeout=60, what="the run's status")
        assert said == "DatasetNotReady", said

        add_s3_credentials(cluster, namespace)  # the cause fixed: the kubelet starts the same pod
        # Ready well before the next refresh (10 min) would have looked again.
        fixed = "the Dataset to become Ready once the Secret exists"
        ds = wait_for(lambda: dataset_saying("ValidationSucceeded", "True"), timeout=240, what=fixed)
        status = ds["status"]
        assert "Failed" not in phases, f"the Dataset was Failed on the way: {phases}"
        assert status["checks"] == 1, "the first check Job's own result, no second Job"
        assert "blockedCheck" not in status and "activeCheck" not in status, status
        assert status["rows"] == 150 and status["columnCount"] == 4, status
        told = {"PodCannotStart", "NewVersion"}
        reasons = wait_for(
            lambda: (found := _event_reasons(cluster, namespace, "iris")) >= told and found,
            timeout=30,
            what="the Events PodCannotStart and NewVersion",
        )
        assert "SourceUnavailable" not in reasons, reasons

        run = wait_phase(cluster, "trainingrun", "iris-a", namespace, ("Succeeded", "Failed"), timeout=300)
        assert run["status"]["phase"] == "Succeeded", run["status"]
        assert run["status"]["dataset"]["version"] == status["version"]


COLUMNS = [f"feature_{c:04d}" for c in range(1000)]


def _wide_csv(rows: int) -> bytes:
    """`rows` rows of 1,000 two-digit integer features and a 3-class target: ~440 KB, under a ConfigMap's 1 MiB."""
    lines = [",".join([*COLUMNS, "target"])]
    lines += [",".join([*(str((r * 31 + c * 17) % 97) for c in range(len(COLUMNS))), str(r % 3)]) for r in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _wide_dataset() -> str:
    columns = [{"name": name, "type": "integer", "min": 0, "max": 96} for name in COLUMNS]
    columns.append({"name": "target", "type": "integer", "min": 0, "max": 2})
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "wide"},
        "spec": {
            "source": {"configMap": {"name": "wide-data", "key": "data.csv"}},
            "target": "target",
            "schema": {"minRows": 100, "columns": columns},
        },
    }
    return json.dumps(body)


def _termination_message(cluster: Kubectl, namespace: str, selector: str) -> str:
    """The termination message of the newest pod with these labels, as the operator reads it."""
    pods = cluster.json("get", "pods", "-n", namespace, "-l", selector)["items"]
    pod = max(pods, key=lambda p: p["metadata"]["creationTimestamp"])
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]


def test_a_dataset_of_1000_columns_becomes_ready_with_every_column(
    cluster: Kubectl, ns: str, tmp_path: pathlib.Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(_wide_csv(150))
    # created, not applied: `kubectl apply` would also keep the 440 KB in an annotation (256 KB at most)
    cluster.run("create", "configmap", "wide-data", f"--from-file=data.csv={data}", "-n", ns)
    cluster.apply(_wide_dataset(), ns)
    ds = wait_phase(cluster, "dataset", "wide", ns, ("Ready", "Failed"), timeout=240)
    assert condition(ds, "Ready")["status"] == "True", ds["status"]
    cluster.run("wait", "--for=condition=Ready", "dset/wide", "-n", ns, "--timeout=10s")  # as a user waits
    status = ds["status"]
    assert (status["rows"], status["columnCount"]) == (150, 1000), status
    assert status.get("columns", []) == [], "1,000 names do not fit the result: the profile holds them"

    # Every column, in order, where status points: the profile, checked by its digest; and the snapshot.
    profile = artifact_path(ns, status["profileRef"]).read_bytes()
    assert hashlib.sha256(profile).hexdigest() == status["profileSha256"]
    assert list(json.loads(profile)["features"]) == COLUMNS
    snapshot = artifact_path(ns, status["snapshotUri"]).read_bytes()
    assert "sha256:" + hashlib.sha256(snapshot).hexdigest() == status["version"]
    assert snapshot.split(b"\n", 1)[0].decode() == ",".join([*COLUMNS, "target"])

    # What the check Job's pod reported: a whole JSON object within 4 KiB, the digest in it.
    message = _termination_message(cluster, ns, "mlops.dev/dataset=wide")
    assert len(message.encode()) <= TERMINATION_MESSAGE_MAX_BYTES
    reported = json.loads(message)
    assert reported["ok"] and reported["columnCount"] == 1000, reported
    assert reported["profileSha256"] == status["profileSha256"] and "columns" not in reported

    # A training on it: its result does not grow with the columns; the model knows all 1,000 features.
    prior = training_run_manifest("wide-prior", "sklearn.dummy.DummyClassifier", model="wide", dataset="wide")
    cluster.apply(prior, ns)
    run = wait_phase(cluster, "trainingrun", "wide-prior", ns, ("Succeeded", "Failed"), timeout=300)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["dataset"]["version"] == status["version"]
    metadata = json.loads((artifact_path(ns, run["status"]["model"]["uri"]) / "metadata.json").read_text())
    assert metadata["features"] == COLUMNS
    trained = _termination_message(cluster, ns, "mlops.dev/training-run=wide-prior")
    assert len(trained.encode()) <= TERMINATION_MESSAGE_MAX_BYTES and json.loads(trained)["ok"] is True
