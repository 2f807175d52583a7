"""Evidence the operator acts on, as tables: a Job's result comes only from the pods that Job made; a
stored model version belongs to the run (uid) that wrote it; a rollback is a record on the version that
every ModelDeployment sees, until `kubectl mlops retry`; a retraining run never collides with a name."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pathlib

import pytest

from mlops_operator.api.modeldeployment import HistoryEntry, ModelDeploymentSpec, ModelDeploymentStatus
from mlops_operator.api.trainingrun import DatasetPin, TrainingRunSpec
from mlops_operator.config import OperatorConfig
from mlops_operator.plugin.commands import plan_retry
from mlops_operator.registry.rollbacks import marks_to_write, retried_versions, rollback_record
from mlops_operator.resources.jobs import desired_training_job, latest_result, pods_of_job
from mlops_operator.rollout.retraining import Fired, next_retraining
from mlops_operator.storage import ArtifactStore, model_prefix

# ------------------------------------------------------------------ a Job's result, from its own pods only

SPEC = TrainingRunSpec.model_validate(
    {"datasetRef": {"name": "d"}, "model": {"name": "m", "estimator": "sklearn.linear_model.LogisticRegression"}}
)
DATASET = {"name": "d", "version": "sha256:" + "a" * 64, "snapshotUri": "s3://b/x/data.csv", "target": "target"}


def job() -> dict:
    made = desired_training_job(
        name="r",
        namespace="ns",
        uid="run-uid",
        spec=SPEC,
        dataset=DatasetPin.model_validate(DATASET),
        config=OperatorConfig(artifact_store="s3://b/x"),
    )
    made["metadata"]["uid"] = "job-uid"
    return made


def pod(
    name: str,
    *,
    created: str,
    result: dict,
    owner: str | None = "job-uid",
    label: str | None = "job-uid",
    containers: list | None = None,
) -> dict:
    template = job()["spec"]["template"]
    labels = {**template["metadata"]["labels"], "batch.kubernetes.io/job-name": "r-train"}
    if label:
        labels["batch.kubernetes.io/controller-uid"] = label
    owners = [{"kind": "Job", "name": "r-train", "uid": owner, "controller": True}] if owner else []
    spec = copy.deepcopy(template["spec"])
    if containers is not None:
        spec["containers"] = containers
    for container in spec["containers"]:  # what the API server adds to a pod does not matter
        container["terminationMessagePath"] = "/dev/termination-log"
        container["resources"] = {}
    message = json.dumps(result)
    return {
        "metadata": {"name": name, "creationTimestamp": created, "labels": labels, "ownerReferences": owners},
        "spec": spec,
        "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]},
    }


REAL = {"ok": True, "metrics": {"accuracy": 0.9}, "modelUri": "s3://b/x/models/ns/m/r-run-uid", "sha256": "a" * 64}
FORGED = {"ok": True, "metrics": {"accuracy": 1.0}, "modelUri": "s3://evil/m", "sha256": "b" * 64}


def forged_containers() -> list:
    containers = copy.deepcopy(job()["spec"]["template"]["spec"]["containers"])
    containers[0]["args"] = ["sh", "-c", "echo forged > /dev/termination-log"]
    return containers


@pytest.mark.parametrize(
    ("forgery", "why"),
    [
        ({"owner": None}, "the Job's labels only"),
        ({"owner": "other-uid"}, "owned by another Job"),
        ({"label": None}, "an owner reference without the Job's controller-uid label"),
        ({"containers": "forged"}, "owned (adopted by the Job controller), but running other arguments"),
    ],
)
def test_a_newer_pod_that_the_job_did_not_make_is_never_read(forgery: dict, why: str) -> None:
    if forgery.get("containers") == "forged":
        forgery = {"containers": forged_containers()}
    real = pod("r-train-abc", created="2026-01-01T00:00:00Z", result=REAL)
    forged = pod("r-train-forged", created="2026-01-01T00:01:00Z", result=FORGED, **forgery)
    mine = pods_of_job([real, forged], job())
    assert [p["metadata"]["name"] for p in mine] == ["r-train-abc"], why
    assert latest_result(mine) == REAL


def test_the_jobs_own_pods_are_read_newest_first() -> None:
    first = pod("r-train-1", created="2026-01-01T00:00:00Z", result={"ok": False, "message": "OOM"})
    second = pod("r-train-2", created="2026-01-01T00:01:00Z", result=REAL)
    assert latest_result(pods_of_job([first, second], job())) == REAL


def test_the_training_request_names_the_runs_uid() -> None:
    env = job()["spec"]["template"]["spec"]["containers"][0]["env"]
    request = json.loads(next(e["value"] for e in env if e["name"] == "MLOPS_REQUEST"))
    assert request["runUid"] == "run-uid"


# ----------------------------------------------------------------------- a model version, keyed by its run


def test_a_run_recreated_under_the_same_name_trains_a_version_of_its_own(tmp_path: pathlib.Path) -> None:
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from support import run_training_of

    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    checked = run_check(
        DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}}),
        namespace="ns",
        name="iris",
        store=store,
        input_dir=pathlib.Path("/nonexistent"),
    )
    dataset = {"name": "iris", "version": checked["version"], "snapshotUri": checked["snapshotUri"], "target": "target"}

    def request(uid: str, estimator: str) -> dict:
        spec = {"datasetRef": {"name": "iris"}, "model": {"name": "m", "estimator": estimator}}
        return {"namespace": "ns", "run": "r", "runUid": uid, "dataset": dataset, "spec": spec}

    first = run_training_of(request("uid-1", "sklearn.linear_model.LogisticRegression"), store)
    retried = run_training_of(request("uid-1", "sklearn.dummy.DummyClassifier"), store)  # a retried pod of that run
    second = run_training_of(request("uid-2", "sklearn.dummy.DummyClassifier"), store)  # re-created: a new run
    assert first.model_uri.endswith("/" + model_prefix("ns", "m", "r", "uid-1")) and retried == first
    assert second.model_uri.endswith("/" + model_prefix("ns", "m", "r", "uid-2"))
    assert second.sha256 != first.sha256 and second.metrics["accuracy"] < first.metrics["accuracy"]


# --------------------------------------------------------------------------- a rollback, on the version


def md_status(*versions: str, at: str = "2026-01-01T00:10:00.000Z") -> ModelDeploymentStatus:
    history = [
        HistoryEntry(version=v, outcome="RolledBack", reason="AnalysisFailed: accuracy 0.3 < 0.8", at=at)
        for v in versions
    ]
    return ModelDeploymentStatus(failed_versions=list(versions), history=history)


def run(name: str, *, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}


def test_a_version_rolled_back_here_is_marked_once() -> None:
    status = md_status("v2")
    patches = marks_to_write(status, {"v2": run("v2")}, md="md")
    assert patches["v2"]["labels"] == {"mlops.dev/rolled-back": "true"}
    marked = run("v2", **{k: v for k, v in patches["v2"].items()})
    record = rollback_record(marked)
    assert (record.model_deployment, record.reason, record.message) == ("md", "AnalysisFailed", "accuracy 0.3 < 0.8")
    assert marks_to_write(status, {"v2": marked}, md="md") == {}, "marked: nothing more to write"
    assert marks_to_write(status, {}, md="md") == {}, "a run deleted since: nothing to mark"


def test_an_abort_holds_the_version_here_only() -> None:
    """A person's abort is a decision about one rollout, not evidence about the version: no mark."""
    aborted = HistoryEntry(version="v2", outcome="Aborted", reason="Aborted: by the user", at="2026-01-01T00:10:00Z")
    status = md_status("v2").model_copy(update={"history": [aborted]})
    assert marks_to_write(status, {"v2": run("v2")}, md="md") == {}


def test_a_retry_after_the_rollback_lifts_it_and_one_before_does_not() -> None:
    status = md_status("v2")
    before = run("v2", annotations={"mlops.dev/retried-at": "2026-01-01T00:05:00Z"})
    after = run("v2", annotations={"mlops.dev/retried-at": "2026-01-01T00:20:00Z"})
    assert retried_versions(status, {"v2": before}) == frozenset() and "v2" in marks_to_write(
        status, {"v2": before}, md="md"
    )
    assert retried_versions(status, {"v2": after}) == {"v2"} and marks_to_write(status, {"v2": after}, md="md") == {}


def test_a_label_without_its_record_still_holds_the_version() -> None:
    record = rollback_record(
        run("v2", labels={"mlops.dev/rolled-back": "true"}, annotations={"mlops.dev/rolled-back": "not json"})
    )
    assert record is not None and record.reason == "RolledBack"
    assert rollback_record(run("v2")) is None


def test_retry_clears_the_mark_and_stamps_the_time() -> None:
    marked = run("v2", labels={"mlops.dev/rolled-back": "true"}, annotations={"mlops.dev/rolled-back": "{}"})
    plan = plan_retry(marked, now=dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC))
    assert plan.ok and plan.patch == {
        "metadata": {
            "labels": {"mlops.dev/rolled-back": None},
            "annotations": {"mlops.dev/rolled-back": None, "mlops.dev/retried-at": "2026-01-01T01:00:00.000Z"},
        }
    }
    aborted = plan_retry(run("v2"), now=dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC))  # aborted somewhere: no mark
    assert aborted.ok and aborted.patch == {
        "metadata": {"annotations": {"mlops.dev/retried-at": "2026-01-01T01:00:00.000Z"}}
    }
    assert "carries no rollback mark" in aborted.message


# ---------------------------------------------------------------------- a retraining run, never a collision


def test_a_retraining_run_takes_the_next_free_name() -> None:
    estimator = "sklearn.linear_model.LogisticRegression"
    template = {"datasetRef": {"name": "d"}, "model": {"name": "m", "estimator": estimator}}
    retraining = {"template": template, "triggers": {"schedule": "0 * * * *"}, "mode": "Auto"}
    md = ModelDeploymentSpec.model_validate({"model": {"name": "m"}, "retraining": retraining})
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    decision = next_retraining(
        md.retraining,
        None,
        md="iris",
        fired=[Fired("schedule")],
        now=now,
        in_flight=[],
        dataset_version=None,
        taken=frozenset({"iris-retrain-1", "iris-retrain-2"}),
    )
    assert decision.create == "iris-retrain-3" and decision.status.created == 3
    assert decision.status.history[0].run == "iris-retrain-3"


def test_a_model_version_carries_its_input_signature(tmp_path: pathlib.Path) -> None:
    """Feature names, order and types in metadata.json; their digest in the result (and so in status)."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from mlops_operator.trainer.train import signature_sha256
    from support import run_training_of

    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    checked = run_check(spec, namespace="ns", name="iris", store=store, input_dir=pathlib.Path("/nonexistent"))
    dataset = {"name": "iris", "version": checked["version"], "snapshotUri": checked["snapshotUri"], "target": "target"}
    model = {"name": "m", "estimator": "sklearn.linear_model.LogisticRegression"}
    request = {
        "namespace": "ns",
        "run": "r",
        "runUid": "u",
        "dataset": dataset,
        "spec": {"datasetRef": {"name": "iris"}, "model": model},
    }
    result = run_training_of(request, store)
    metadata = json.loads((store.path(result.model_uri) / "metadata.json").read_text())
    signature = metadata["inputSignature"]
    assert signature == {"features": metadata["features"], "types": ["float64"] * 4}
    assert result.signature_sha256 == signature_sha256(signature) and result.feature_count == 4
    reordered = {"features": list(reversed(signature["features"])), "types": signature["types"]}
    assert signature_sha256(reordered) != result.signature_sha256, "a column reorder is another signature"


def test_the_job_scores_the_champion_on_its_own_held_out_rows(tmp_path: pathlib.Path) -> None:
    """beatChampion on the same rows: the candidate's Job loads the champion (checked against its sha256)
    and scores it on the candidate's test split; a champion it cannot load is reported, never scored."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from support import run_training_of

    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    checked = run_check(spec, namespace="ns", name="iris", store=store, input_dir=pathlib.Path("/nonexistent"))
    dataset = {"name": "iris", "version": checked["version"], "snapshotUri": checked["snapshotUri"], "target": "target"}

    def request(run: str, estimator: str, **extra) -> dict:
        model = {"name": "m", "estimator": estimator}
        spec = {"datasetRef": {"name": "iris"}, "model": model, "evaluation": {"seed": 7}}
        return {"namespace": "ns", "run": run, "runUid": run, "dataset": dataset, "spec": spec, **extra}

    old = run_training_of(request("old", "sklearn.dummy.DummyClassifier"), store)
    champion = {"name": "old", "modelUri": old.model_uri, "sha256": old.sha256}
    new = run_training_of(request("new", "sklearn.linear_model.LogisticRegression", champion=champion), store)
    assert (new.champion.name, new.champion.metrics) == ("old", old.metrics), "the same rows: the same figures"
    assert new.test_rows == 30
    forged = run_training_of(
        request("newer", "sklearn.linear_model.LogisticRegression", champion={**champion, "sha256": "0" * 64}), store
    )
    assert forged.champion.metrics == {} and "sha256" in forged.champion.error


# ------------------------------------------------------------------ retraining on data that includes the trigger


def test_a_retraining_run_waits_for_data_read_after_its_trigger() -> None:
    from mlops_operator.api.dataset import DatasetSpec, DatasetStatus, DatasetVersion
    from mlops_operator.controllers.dataset import next_check_at
    from mlops_operator.controllers.trainingrun import pin_dataset

    version = "sha256:" + "c" * 64
    entry = DatasetVersion(version=version, rows=14909, snapshot_uri="s3://b/d", created_at="2026-01-01T00:00:00Z")
    read_before = DatasetStatus(
        version=version,
        history=[entry],
        source_read_at="2026-01-01T00:09:59Z",
        check_started_at="2026-01-01T00:09:59Z",
        checked_generation=1,
    )
    ref = {"name": "live", "readAfter": "2026-01-01T00:10:00Z"}
    model = {"name": "m", "estimator": "sklearn.linear_model.Ridge"}
    spec = TrainingRunSpec.model_validate({"datasetRef": ref, "model": model})
    pin, why = pin_dataset(spec, read_before)
    assert pin is None and "has not read its source since 2026-01-01T00:10:00Z" in why
    read_after = read_before.model_copy(update={"source_read_at": "2026-01-01T00:10:01Z"})
    pin, _ = pin_dataset(spec, read_after)
    assert pin.version == version and pin.read_at == "2026-01-01T00:10:01Z"
    dataset = DatasetSpec.model_validate({"source": {"url": {"url": "https://example.com/d.csv"}}})
    refresh = "2026-01-01T00:10:00Z"
    due = next_check_at(dataset, read_before, generation=1, refresh_requested=refresh)
    assert due == dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "a refresh asked after the latest check: at once"
    started_after = read_before.model_copy(update={"check_started_at": "2026-01-01T00:10:01Z"})
    assert next_check_at(dataset, started_after, generation=1, refresh_requested=refresh) != due, "asked once"


def test_a_trigger_creates_a_run_that_trains_on_data_read_after_it() -> None:
    from mlops_operator.controllers.retraining import desired_retraining_run

    md = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "m"},
            "retraining": {
                "template": {
                    "datasetRef": {"name": "live"},
                    "model": {"name": "m", "estimator": "sklearn.linear_model.Ridge"},
                },
                "triggers": {"schedule": "0 * * * *"},
            },
        }
    )
    run = desired_retraining_run(
        md.retraining,
        md="md",
        run="md-retrain-1",
        evidence=Fired("drift", value=0.7),
        read_after="2026-01-01T00:10:00.000Z",
    )
    assert run["spec"]["datasetRef"] == {"name": "live", "readAfter": "2026-01-01T00:10:00.000Z"}
    evidence = json.loads(run["metadata"]["annotations"]["mlops.dev/retraining-trigger"])
    assert evidence["trainsOnDataReadAfter"] == "2026-01-01T00:10:00.000Z"


def test_a_retrained_version_rolled_back_starts_no_cooldown() -> None:
    template = {"datasetRef": {"name": "d"}, "model": {"name": "m", "estimator": "sklearn.linear_model.Ridge"}}
    retraining = {"template": template, "triggers": {"schedule": "0 * * * *"}, "mode": "Auto", "cooldown": "30m"}
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "m"}, "retraining": retraining}).retraining
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = next_retraining(spec, None, md="md", fired=[Fired("drift")], now=t0, in_flight=[], dataset_version=None)
    later = t0 + dt.timedelta(minutes=5)
    held = next_retraining(
        spec, first.status, md="md", fired=[Fired("drift")], now=later, in_flight=[], dataset_version=None
    )
    assert held.create is None and "cooldown" in held.status.waiting
    again = next_retraining(
        spec,
        first.status,
        md="md",
        fired=[Fired("drift")],
        now=later,
        in_flight=[],
        dataset_version=None,
        rolled_back=frozenset({first.create}),
    )
    assert again.create == "md-retrain-2", "the loop did not heal: the drift retrains again"


def test_a_check_result_naming_another_datasets_snapshot_is_refused() -> None:
    """The same for Dataset checks: a result must name this Dataset's stored version of that content."""
    from mlops_operator.controllers.dataset import attributed_check
    from mlops_operator.resources.results import CheckResult
    from mlops_operator.storage import dataset_prefix

    version = "sha256:" + "d" * 64
    own = f"s3://b/a/{dataset_prefix('ns', 'iris', version)}"
    good = CheckResult(
        ok=True, version=version, rows=3, snapshot_uri=f"{own}/data.csv", profile_uri=f"{own}/profile.json"
    )
    assert attributed_check(good, namespace="ns", name="iris") == good
    theirs = f"s3://b/a/{dataset_prefix('other-team', 'iris', version)}/data.csv"
    forged = attributed_check(good.model_copy(update={"snapshot_uri": theirs}), namespace="ns", name="iris")
    assert (forged.ok, forged.reason) == (False, "UnattributedResult") and "other-team" in forged.message


def test_approving_inputs_names_the_held_canarys_version() -> None:
    from mlops_operator.plugin.commands import plan_inputs_approval

    md = {
        "metadata": {"name": "md"},
        "spec": {"model": {"name": "m"}},
        "status": {"canary": {"version": "v2", "inputSchemaChanged": "v2 takes other inputs than v1"}},
    }
    plan = plan_inputs_approval(md)
    assert plan.ok and plan.patch == {"metadata": {"annotations": {"mlops.dev/approve-inputs": "v2"}}}
    refused = plan_inputs_approval({"metadata": {"name": "md"}, "spec": {"model": {"name": "m"}}, "status": {}})
    assert not refused.ok and "nothing to approve" in refused.message
