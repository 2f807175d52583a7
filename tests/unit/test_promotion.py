"""The TrainingRun's decisions as tables: the promotion policy (first model, better, worse, tie, margins, missing
metrics, manual), the bookkeeping of a recorded decision, pinning the dataset, the Job's outcome, conditions;
and its reconcile in a world of fakes."""

from __future__ import annotations

import json
import math

import pytest

from mlops_operator.api.dataset import DatasetStatus
from mlops_operator.api.reasons import Decision, PromotionReason
from mlops_operator.api.trainingrun import (
    DatasetPin,
    ModelArtifact,
    PromotionSpec,
    PromotionStatus,
    RollbackRecord,
    TrainingRunSpec,
    TrainingRunStatus,
)
from mlops_operator.config import OperatorConfig
from mlops_operator.controllers import trainingrun as controller
from mlops_operator.controllers.cache import ObjectCache
from mlops_operator.controllers.contract import Observed, apply_merge_patch, status_patch
from mlops_operator.controllers.trainingrun import (
    pin_dataset,
    reconcile_trainingrun,
    training_conditions,
    training_outcome,
    waiting_for_dataset,
)
from mlops_operator.registry.promotion import (
    Champion,
    HeldOutRows,
    PromotionDecision,
    comparable_champion,
    decide_promotion,
    decision_due,
    record_decision,
    settle_promotion,
)
from mlops_operator.resources.results import read_training_result


def spec(**kwargs) -> PromotionSpec:
    return PromotionSpec.model_validate(kwargs)


BEAT = {"beatChampion": {"metric": "accuracy"}}
CHAMP = Champion("old", {"accuracy": 0.90, "rmse": 3.0})

CASES = [
    # id, metrics, promotion, champion, approved, decision, reason, words in message
    ("first-model", {"accuracy": 0.5}, spec(**BEAT), None, False, "Promoted", "GatesPassed", "first version"),
    ("better", {"accuracy": 0.95}, spec(**BEAT), CHAMP, False, "Promoted", "GatesPassed", "0.95 vs champion old's 0.9"),
    ("worse", {"accuracy": 0.85}, spec(**BEAT), CHAMP, False, "Rejected", "NotBetterThanChampion", "0.85"),
    (
        "tie-is-not-beating",
        {"accuracy": 0.90},
        spec(**BEAT),
        CHAMP,
        False,
        "Rejected",
        "NotBetterThanChampion",
        "does not beat",
    ),
    (
        "below-margin",
        {"accuracy": 0.92},
        spec(beatChampion={"metric": "accuracy", "margin": 0.05}),
        CHAMP,
        False,
        "Rejected",
        "NotBetterThanChampion",
        "by at least 0.05",
    ),
    (
        "lower-is-better",
        {"rmse": 2.5},
        spec(beatChampion={"metric": "rmse"}),
        CHAMP,
        False,
        "Promoted",
        "GatesPassed",
        "rmse 2.5",
    ),
    (
        "lower-is-better-worse",
        {"rmse": 3.5},
        spec(beatChampion={"metric": "rmse"}),
        CHAMP,
        False,
        "Rejected",
        "NotBetterThanChampion",
        "rmse 3.5",
    ),
    (
        "gate-min",
        {"accuracy": 0.7},
        spec(gates=[{"metric": "accuracy", "min": 0.8}]),
        None,
        False,
        "Rejected",
        "GateFailed",
        "below the gate's min 0.8",
    ),
    (
        "gate-max",
        {"rmse": 9.0},
        spec(gates=[{"metric": "rmse", "max": 5}]),
        None,
        False,
        "Rejected",
        "GateFailed",
        "above the gate's max 5",
    ),
    (
        "gate-missing-metric",
        {"accuracy": 0.9},
        spec(gates=[{"metric": "roc_auc", "min": 0.5}]),
        None,
        False,
        "Rejected",
        "MissingMetric",
        "roc_auc",
    ),
    ("nan-metric", {"accuracy": math.nan}, spec(**BEAT), None, False, "Rejected", "MissingMetric", "no finite"),
    ("no-metrics", {}, spec(), None, False, "Rejected", "MissingMetric", "no finite metric"),
    (
        "champion-lacks-metric",
        {"accuracy": 0.99},
        spec(**BEAT),
        Champion("old", {}),
        False,
        "Rejected",
        "MissingMetric",
        "champion old has no value",
    ),
    (
        "manual-waits",
        {"accuracy": 0.99},
        spec(policy="manual", **BEAT),
        CHAMP,
        False,
        "PendingApproval",
        "AwaitingApproval",
        "kubectl annotate",
    ),
    ("manual-approved", {"accuracy": 0.99}, spec(policy="manual", **BEAT), CHAMP, True, "Promoted", "Approved", "0.99"),
    (
        "manual-approved-but-worse",
        {"accuracy": 0.5},
        spec(policy="manual", **BEAT),
        CHAMP,
        True,
        "Rejected",
        "NotBetterThanChampion",
        "0.5",
    ),
]


@pytest.mark.parametrize(
    ("metrics", "promotion", "champion", "approved", "decision", "reason", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_promotion_policy(metrics, promotion, champion, approved, decision, reason, words) -> None:
    result = decide_promotion(metrics=metrics, promotion=promotion, champion=champion, approved=approved)
    assert (result.decision, result.reason) == (decision, reason), result.message
    assert words in result.message


def test_rejection_against_champion_records_both_values() -> None:
    result = decide_promotion(metrics={"accuracy": 0.85}, promotion=spec(**BEAT), champion=CHAMP, approved=False)
    assert (result.champion, result.metric, result.value, result.champion_value) == ("old", "accuracy", 0.85, 0.9)


def test_the_decision_is_recorded_as_status_promotion() -> None:
    result = decide_promotion(metrics={"accuracy": 0.95}, promotion=spec(**BEAT), champion=CHAMP, approved=False)
    assert result.as_status(decided_at=NOW) == PromotionStatus(
        decision="Promoted",
        reason="GatesPassed",
        message=result.message,
        champion="old",
        metric="accuracy",
        value=0.95,
        championValue=0.9,
        decidedAt=NOW,
    )
    first = decide_promotion(metrics={"accuracy": 0.5}, promotion=spec(), champion=None, approved=False)
    assert first.as_status(decided_at=NOW).model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "decision": "Promoted",
        "reason": "GatesPassed",
        "message": "gates passed: no gates configured",
        "decidedAt": NOW,
    }
    assert isinstance(first.decision, Decision) and isinstance(first.reason, PromotionReason)


# --- the bookkeeping of a recorded decision --------------------------------------------------------------------

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"


def record(decision: str, reason: str = "GatesPassed", **fields) -> PromotionStatus:
    return PromotionStatus(decision=decision, reason=reason, message="m", decided_at=NOW, **fields)


MARK = RollbackRecord(model_deployment="md", reason="AnalysisFailed", message="accuracy 0.5 < 0.8", at=LATER)


@pytest.mark.parametrize(
    ("promotion", "labelled", "mark", "later", "decision", "reason", "action"),
    [
        (None, False, None, None, None, None, None),
        (record("Promoted"), True, None, None, "Promoted", "GatesPassed", None),
        # the label went to a version promoted after it
        (record("Promoted"), False, None, "newer", "Superseded", "Superseded", None),
        # a crash between the decision and the label: the hand-over is finished, not a false Superseded
        (record("Promoted"), False, None, None, "Promoted", "GatesPassed", "hand_over"),
        (record("Rejected", "GateFailed"), False, None, None, "Rejected", "GateFailed", None),
        (record("PendingApproval", "AwaitingApproval"), False, None, None, "PendingApproval", "AwaitingApproval", None),
        (record("Superseded", "Superseded"), False, None, None, "Superseded", "Superseded", None),
        # rolled back while champion: recorded, and the title handed back (once: the label is gone after)
        (record("Promoted"), True, MARK, None, "RolledBack", "RolledBack", "hand_back"),
        (record("RolledBack", "RolledBack"), True, MARK, None, "RolledBack", "RolledBack", "hand_back"),
        (record("RolledBack", "RolledBack"), False, MARK, None, "RolledBack", "RolledBack", None),
        (record("Superseded", "Superseded"), False, MARK, None, "RolledBack", "RolledBack", None),
        # a version rolled back that was never promoted keeps its decision (status.rolledBack says the rest)
        (record("Rejected", "GateFailed"), False, MARK, None, "Rejected", "GateFailed", None),
        # the mark cleared by `kubectl mlops retry`: decided afresh
        (record("RolledBack", "RolledBack"), False, None, None, None, None, None),
        # the title came back after the version promoted later was rolled back
        (record("Superseded", "Superseded"), True, None, None, "Promoted", "Reinstated", None),
    ],
)
def test_a_recorded_decision_is_settled_with_the_registry(promotion, labelled, mark, later, decision, reason, action):
    settled = settle_promotion(promotion, labelled_champion=labelled, rolled_back=mark, promoted_later=later, now=LATER)
    after = settled.promotion
    assert (after.decision if after else None, after.reason if after else None, settled.action) == (
        decision,
        reason,
        action,
    )
    if decision == "RolledBack" and promotion.decision != "RolledBack":
        assert after.message == "rolled back by ModelDeployment md (AnalysisFailed): accuracy 0.5 < 0.8"
    if promotion is not None:
        assert promotion == record(promotion.decision, promotion.reason), "the input is left as it was"


@pytest.mark.parametrize(
    ("promotion", "rolled_back", "due"),
    [
        (None, False, True),
        (None, True, False),  # a rolled-back version is never decided (nor approved) until retried
        (record("PendingApproval", "AwaitingApproval"), False, True),
        (record("PendingApproval", "AwaitingApproval"), True, False),
        (record("Promoted"), False, False),
        (record("Rejected", "GateFailed"), False, False),
    ],
)
def test_a_decision_is_due_only_when_never_made_or_awaiting_approval(promotion, rolled_back, due) -> None:
    assert decision_due(promotion, rolled_back=rolled_back) is due


@pytest.mark.parametrize(
    ("promotion", "decision", "recorded"),
    [
        (None, "Promoted", True),
        (record("PendingApproval", "AwaitingApproval"), "PendingApproval", False),  # keeps when it began waiting
        (record("PendingApproval", "AwaitingApproval"), "Promoted", True),  # approved
        (record("PendingApproval", "AwaitingApproval"), "Rejected", True),  # the champion got better meanwhile
    ],
)
def test_record_decision(promotion, decision, recorded) -> None:
    made = PromotionDecision(Decision(decision), PromotionReason.GATES_PASSED, "words")
    new = record_decision(promotion, made, now=LATER)
    assert (new is not None) == recorded
    if new is not None:
        assert (new.decision, new.decided_at, new.message) == (decision, LATER, "words")


# --- the other decisions of a TrainingRun: pinning, the Job's outcome, conditions ----------------------------

ESTIMATOR = "sklearn.linear_model.LogisticRegression"
VERSION_A, VERSION_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def run_spec(**fields) -> TrainingRunSpec:
    return TrainingRunSpec.model_validate(
        {
            "datasetRef": {"name": "d"},
            "model": {"name": "m", "estimator": ESTIMATOR},
            "datasetWaitSeconds": 60,
            **fields,
        }
    )


DATASET = DatasetStatus.model_validate(
    {
        "version": VERSION_B,
        "history": [
            {"version": VERSION_B, "rows": 5, "snapshotUri": "snap-b", "createdAt": NOW},
            {"version": VERSION_A, "rows": 4, "snapshotUri": "snap-a", "createdAt": NOW},
        ],
    }
)


@pytest.mark.parametrize(
    ("ref", "dataset", "pinned", "why"),
    [
        ({"name": "d"}, None, None, "Dataset d does not exist"),
        ({"name": "d"}, DatasetStatus(), None, "Dataset d has no validated version yet"),
        ({"name": "d"}, DATASET, (VERSION_B, "snap-b"), ""),
        ({"name": "d", "version": VERSION_A}, DATASET, (VERSION_A, "snap-a"), ""),
        ({"name": "d", "version": "sha256:" + "c" * 64}, DATASET, None, "has no version sha256:ccc"),
    ],
)
def test_pin_dataset(ref, dataset, pinned, why) -> None:
    pin, words = pin_dataset(run_spec(datasetRef=ref), dataset, target="label")
    assert why in words and (words == "") == (pin is not None)
    if pinned:
        assert pin == DatasetPin(name="d", version=pinned[0], snapshotUri=pinned[1], target="label")


@pytest.mark.parametrize(
    ("waited", "phase"),
    [(30, "Pending"), (60, "Pending"), (61, "Failed")],
)
def test_waiting_for_the_dataset_fails_after_dataset_wait_seconds(waited, phase) -> None:
    status = waiting_for_dataset(
        run_spec(), TrainingRunStatus(), why="Dataset d does not exist", waited=waited, now=NOW
    )
    assert (status.phase, status.reason) == (phase, "DatasetNotReady")
    assert (status.completed_at is not None) == (phase == "Failed")
    assert status.message.startswith("Dataset d does not exist")


KEY = "models/ns/m/r-uid-1"  # storage.model_prefix of this run
URI = f"s3://b/artifacts/{KEY}"
RESULT = {
    "ok": True,
    "metrics": {"accuracy": 0.9, "f1_macro": 1},
    "primaryMetric": "accuracy",
    "modelUri": URI,
    "sha256": "f" * 64,
}
STARTED = TrainingRunStatus(job_name="r-train", attempts=2, started_at="2025-12-31T23:59:30Z")


@pytest.mark.parametrize(
    ("finished", "result", "job_reason", "phase", "reason", "words"),
    [
        (None, None, "", "Running", "JobRunning", "Job r-train is training"),
        ("Complete", RESULT, "", "Succeeded", "JobSucceeded", f"model stored at {URI}"),
        # a result that is not this run's model: another run's version (same name, other uid), a bad digest
        (
            "Complete",
            {**RESULT, "modelUri": "s3://b/artifacts/models/ns/m/r-uid-0"},
            "",
            "Failed",
            "UnattributedResult",
            "the Job reported the model s3://b/artifacts/models/ns/m/r-uid-0, not the version "
            f"this run writes (…/{KEY})",
        ),
        (
            "Complete",
            {**RESULT, "modelUri": "s3://b/artifacts/models/ns/m/r"},
            "",
            "Failed",
            "UnattributedResult",
            f"the Job reported the model s3://b/artifacts/models/ns/m/r, not the version this run writes (…/{KEY})",
        ),
        (
            "Complete",
            {**RESULT, "sha256": "forged"},
            "",
            "Failed",
            "UnattributedResult",
            "the Job reported 'forged' as the model's sha256, which is not a sha256 digest",
        ),
        (
            "Complete",
            {**RESULT, "metrics": {"accuracy": "1.0"}},
            "",
            "Failed",
            "UnattributedResult",
            "the Job reported metrics that are not numbers",
        ),
        (
            "Complete",
            {"ok": False, "message": "ValueError: C"},
            "",
            "Failed",
            "JobFailed",
            "after 2 attempt(s): ValueError: C",
        ),
        (
            "Failed",
            None,
            "BackoffLimitExceeded",
            "Failed",
            "JobFailed",
            "after 2 attempt(s): the Job failed (BackoffLimitExceeded)",
        ),
        ("Failed", None, "", "Failed", "JobFailed", "after 2 attempt(s): the Job failed (no result)"),
        (
            "Failed",
            RESULT,
            "DeadlineExceeded",
            "Failed",
            "DeadlineExceeded",
            "training exceeded activeDeadlineSeconds=3600",
        ),
    ],
)
def test_training_outcome(finished, result, job_reason, phase, reason, words) -> None:
    status = training_outcome(
        run_spec(),
        STARTED,
        finished=finished,
        result=read_training_result(result),
        job_reason=job_reason,
        run="r",
        model_key=KEY,
        now=NOW,
    )
    assert (status.phase, status.reason, status.message) == (phase, reason, words)
    assert (status.completed_at is not None) == (phase in ("Succeeded", "Failed"))
    if phase == "Succeeded":
        assert (status.duration_seconds, status.primary_value) == (30.0, "0.9000")
        assert status.metrics == {"accuracy": 0.9, "f1_macro": 1.0}
        assert status.model == ModelArtifact(uri=URI, sha256="f" * 64, version="r")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TrainingRunStatus(), {"Succeeded": ("Unknown", "Reconciling"), "Ready": ("False", "Reconciling")}),
        (
            TrainingRunStatus(phase="Running", reason="JobRunning", message="training"),
            {"Succeeded": ("Unknown", "JobRunning"), "Ready": ("False", "JobRunning")},
        ),
        (
            TrainingRunStatus(phase="Failed", reason="JobFailed", message="bad"),
            {"Succeeded": ("False", "JobFailed"), "Ready": ("False", "JobFailed")},
        ),
        (
            TrainingRunStatus(phase="Succeeded", reason="JobSucceeded", message="stored"),
            {
                "Succeeded": ("True", "JobSucceeded"),
                "Promoted": ("Unknown", "Reconciling"),
                "Ready": ("True", "JobSucceeded"),
            },
        ),
        (
            TrainingRunStatus(phase="Succeeded", reason="JobSucceeded", promotion=record("Promoted")),
            {
                "Succeeded": ("True", "JobSucceeded"),
                "Promoted": ("True", "GatesPassed"),
                "Ready": ("True", "JobSucceeded"),
            },
        ),
        (
            TrainingRunStatus(phase="Succeeded", reason="JobSucceeded", promotion=record("Superseded", "Superseded")),
            {
                "Succeeded": ("True", "JobSucceeded"),
                "Promoted": ("False", "Superseded"),
                "Ready": ("True", "JobSucceeded"),
            },
        ),
        (
            TrainingRunStatus(
                phase="Succeeded", reason="JobSucceeded", promotion=record("PendingApproval", "AwaitingApproval")
            ),
            {
                "Succeeded": ("True", "JobSucceeded"),
                "Promoted": ("False", "AwaitingApproval"),
                "Ready": ("True", "JobSucceeded"),
            },
        ),
    ],
)
def test_training_conditions(status, expected) -> None:
    conditions = training_conditions(status, generation=4, now=NOW)
    assert {cond.type: (cond.status, cond.reason) for cond in conditions} == expected
    assert [cond.type for cond in conditions][-1] == "Ready"
    ready = next(cond for cond in conditions if cond.type == "Ready")
    if status.phase == "Succeeded":
        decision = status.promotion.decision if status.promotion else "deciding"
        assert ready.message.endswith(f"; promotion: {decision}")
    assert all(cond.observed_generation == 4 for cond in conditions)


# --- the reconcile, in a world of fakes: from pending to promoted, and no write when nothing changed ----------


class RunWorld:
    """The reads and writes reconcile_trainingrun makes, answered from memory; status stored as the API would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spec = run_spec(promotion={"beatChampion": {"metric": "accuracy"}})
        self.status: dict = {}
        self.labels: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}
        self.pods: list[dict] = []
        self.champion: Champion | None = None
        self.events: list[tuple[str, str]] = []
        self.patches: list[dict] = []
        self.direct_writes: list[dict] = []
        cache = ObjectCache()
        monkeypatch.setattr(controller, "CACHE", cache)
        self.cache = cache
        monkeypatch.setattr(controller, "read_child", lambda plural, namespace, name, *, uid: self.jobs.get(name))
        monkeypatch.setattr(controller, "job_pods", lambda namespace, job: self.pods)
        monkeypatch.setattr(controller, "artifact_store_problem", lambda namespace: None)
        monkeypatch.setattr(controller, "namespace_config", lambda namespace: (OperatorConfig.from_env(), None))
        monkeypatch.setattr(controller, "create_job", self._create_job)
        monkeypatch.setattr(controller.kube, "patch_status", self._patch_status)
        monkeypatch.setattr(controller.champions, "current_champion", lambda ns, model, *, exclude: self.champion)
        monkeypatch.setattr(controller.champions, "hand_over", self._hand_over)
        self.promoted_later: str | None = None
        monkeypatch.setattr(
            controller.champions, "promoted_after", lambda ns, model, *, run, decided_at: self.promoted_later
        )

    def _create_job(self, namespace: str, job: dict, *, uid: str) -> dict:
        self.jobs[job["metadata"]["name"]] = job
        return job

    def _patch_status(self, plural: str, namespace: str, name: str, patch: dict) -> dict:
        self.direct_writes.append(json.loads(json.dumps(patch)))
        return self.body()

    def _hand_over(self, namespace: str, model: str, *, to: str) -> list[str]:
        self.labels = {"mlops.dev/model": model, "mlops.dev/promoted": "true"}
        return []

    def body(self) -> dict:
        meta = {
            "name": "r",
            "namespace": "ml",
            "uid": "u",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2025-12-31T23:59:00Z",
            "labels": self.labels,
            "annotations": {},
        }
        return {"metadata": meta, "status": self.status}

    def dataset(self, status: DatasetStatus, *, target: str = "target") -> None:
        body = {
            "metadata": {"name": "d", "namespace": "ml", "resourceVersion": "1"},
            "spec": {"target": target},
            "status": {**status.model_dump(mode="json", by_alias=True, exclude_none=True), "kopf": {}},
        }
        self.cache.observe("datasets", body)

    def finish(self, result: dict) -> None:
        job = self.jobs["r-train"]
        self.jobs["r-train"] = {
            **job,
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
        }
        if result.get("modelUri") == URI:  # the model this run (namespace ml, uid u) writes
            result = {**result, "modelUri": "s3://b/artifacts/models/ml/m/r-u"}
        message = json.dumps(result)
        self.pods = [
            {
                "metadata": {"name": "p", "creationTimestamp": NOW},
                "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]},
            }
        ]

    def reconcile(self, now: str = NOW):
        observed = Observed(body=self.body(), status=json.loads(json.dumps(self.status)), generation=1, now=now)
        outcome = reconcile_trainingrun(self.spec, observed, logger=None)
        self.events += [(event.reason, event.message) for event in outcome.events]
        patch = status_patch(observed.status, outcome.status)
        self.patches.append(patch)
        self.status = apply_merge_patch(self.status, json.loads(json.dumps(patch)))
        return outcome


def test_a_run_from_pending_to_promoted_writes_nothing_when_nothing_changed(monkeypatch) -> None:
    world = RunWorld(monkeypatch)
    waiting = world.reconcile()
    assert (world.status["phase"], world.status["reason"]) == ("Pending", "DatasetNotReady")
    assert waiting.wake_at == controller.parse_time("2026-01-01T00:00:00Z"), "created + datasetWaitSeconds"
    assert waiting.labels == {"mlops.dev/model": "m"}
    world.reconcile("2025-12-31T23:59:40Z")
    assert world.patches[-1] == {}

    world.dataset(DATASET, target="label")
    running = world.reconcile("2025-12-31T23:59:45Z")
    assert world.status["dataset"] == {"name": "d", "version": VERSION_B, "snapshotUri": "snap-b", "target": "label"}
    assert world.jobs["r-train"]["spec"]["template"]["spec"]["containers"][0]
    assert (world.status["phase"], world.status["jobName"], running.wake_at) == ("Running", "r-train", None)
    assert [reason for reason, _ in world.events] == ["DatasetPinned", "JobCreated"]
    world.reconcile("2025-12-31T23:59:50Z")
    assert world.patches[-1] == {}, "the Job runs: nothing to write"

    world.champion = Champion("old", {"accuracy": 0.8}, rows=HeldOutRows(VERSION_B, 0.2, 42))  # the same rows
    world.finish(RESULT)
    world.reconcile("2026-01-01T00:00:10Z")
    assert world.status["phase"] == "Succeeded" and world.status["promotion"]["decision"] == "Promoted"
    [decision] = world.direct_writes  # before the label: the decision with the evidence it was made on
    assert {k: decision[k] for k in ("metrics", "promotion", "model", "phase", "conditions")} == {
        k: world.status[k] for k in ("metrics", "promotion", "model", "phase", "conditions")
    }, "a reader of the decision sees the conditions of that status (Ready with Succeeded), never older ones"
    assert [reason for reason, _ in world.events][-2:] == ["TrainingSucceeded", "Promoted"]
    ready = next(cond for cond in world.status["conditions"] if cond["type"] == "Promoted")
    assert (ready["status"], ready["reason"]) == ("True", "GatesPassed")
    events = len(world.events)
    for now in ("2026-01-01T00:01:00Z", "2026-01-01T02:00:00Z"):
        world.reconcile(now)
        assert world.patches[-1] == {}, f"nothing changed at {now}, yet the reconcile wrote"
    assert len(world.events) == events and len(world.direct_writes) == 1
    assert controller.wire(TrainingRunStatus.model_validate(world.status)) == world.status

    world.labels = {"mlops.dev/model": "m", "mlops.dev/promoted": "false"}  # another run took the title
    world.promoted_later = "newer"
    world.reconcile("2026-01-01T03:00:00Z")
    assert world.patches[-1]["promotion"]["decision"] == "Superseded"
    promoted = next(cond for cond in world.status["conditions"] if cond["type"] == "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", "Superseded")
    world.reconcile("2026-01-01T04:00:00Z")
    assert world.patches[-1] == {}


def test_a_promotion_interrupted_between_decision_and_label_is_finished(monkeypatch) -> None:
    """The decision is written, then the process dies before the champion label: the next reconcile
    finishes the hand-over instead of calling the run superseded."""
    world = RunWorld(monkeypatch)
    world.dataset(DATASET)
    world.reconcile()
    world.finish(RESULT)
    world.reconcile()
    assert world.status["promotion"]["decision"] == "Promoted"
    world.labels = {"mlops.dev/model": "m"}  # the label write never happened
    world.reconcile(LATER)
    assert world.status["promotion"]["decision"] == "Promoted" and world.labels["mlops.dev/promoted"] == "true"
    assert world.events[-1][0] == "Promoted" and "interrupted promotion" in world.events[-1][1]
    world.reconcile(LATER)
    assert world.patches[-1] == {}


def test_a_manual_run_waits_for_approval_without_rewriting_its_decision(monkeypatch) -> None:
    world = RunWorld(monkeypatch)
    world.spec = run_spec(promotion={"policy": "manual"})
    world.dataset(DATASET)
    world.reconcile()
    world.finish(RESULT)
    world.reconcile()
    assert world.status["promotion"]["decision"] == "PendingApproval" and world.events[-1][0] == "AwaitingApproval"
    world.reconcile(LATER)
    assert world.patches[-1] == {}, "still waiting: the decision and its time are kept"
    assert world.status["promotion"]["decidedAt"] == NOW


def test_a_failed_run_is_terminal(monkeypatch) -> None:
    world = RunWorld(monkeypatch)
    world.dataset(DATASET)
    world.reconcile()
    job = world.jobs["r-train"]
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    world.jobs["r-train"] = {**job, "status": {"failed": 2, "conditions": [failed]}}
    world.reconcile()
    assert (world.status["phase"], world.status["reason"], world.status["attempts"]) == ("Failed", "JobFailed", 2)
    assert world.events[-1] == ("JobFailed", world.status["message"])
    del world.jobs["r-train"]
    world.reconcile(LATER)
    assert world.patches[-1] == {} and "r-train" not in world.jobs, "a finished run never trains again"


# --- beatChampion on the same rows --------------------------------------------------------------------------

ROWS = HeldOutRows("sha256:" + "a" * 64, 0.2, 42)
OTHER_ROWS = HeldOutRows("sha256:" + "b" * 64, 0.2, 42)


@pytest.mark.parametrize(
    ("champion_rows", "scored", "decision", "reason", "words"),
    [
        # the Job scored the champion on the candidate's rows: those figures decide, whatever the data before
        (
            OTHER_ROWS,
            {"name": "old", "metrics": {"accuracy": 0.70}},
            "Promoted",
            "GatesPassed",
            "accuracy 0.8 vs champion old's 0.7, both scored on this run's 30 held-out rows",
        ),
        (
            OTHER_ROWS,
            {"name": "old", "metrics": {"accuracy": 0.85}},
            "Rejected",
            "NotBetterThanChampion",
            "accuracy 0.8 vs champion old's 0.85, both scored on this run's 30 held-out rows",
        ),
        # the same dataset version, test size and seed: the same rows, the recorded figures compare
        (ROWS, None, "Rejected", "NotBetterThanChampion", "vs champion old's 0.9, both scored on the same 30"),
        # other rows, and no figure of the champion on these: never decided on scores of other test sets
        (OTHER_ROWS, None, "Rejected", "NotComparable", "champion old was scored on other rows"),
        (
            OTHER_ROWS,
            {"name": "old", "error": "ObjectMissing"},
            "Rejected",
            "NotComparable",
            "scoring it on this run's rows failed: ObjectMissing",
        ),
        (
            OTHER_ROWS,
            {"name": "older", "metrics": {"accuracy": 0.1}},
            "Rejected",
            "NotComparable",
            "this run's Job scored older, the champion when it started",
        ),
        (None, None, "Rejected", "NotComparable", "unknown rows"),
    ],
)
def test_the_champion_is_compared_on_the_same_rows(champion_rows, scored, decision, reason, words) -> None:
    champion = comparable_champion(
        Champion("old", {"accuracy": 0.90}, rows=champion_rows), rows=ROWS, scored=scored, test_rows=30
    )
    made = decide_promotion(metrics={"accuracy": 0.8}, promotion=spec(**BEAT), champion=champion, approved=False)
    assert (made.decision, made.reason) == (decision, reason)
    assert words in made.message, made.message
