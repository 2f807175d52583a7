"""TrainingRun controller: pin the dataset version, run the training Job, record results, decide promotion.

Terminal phases are sticky: a Succeeded or Failed run never trains again (its Job's pod retries are
attempts recorded in status); only its promotion can still move (approval, being superseded, a rollback
of the version, or a retry after one).

Each step observes (the Dataset and the Job from the cache, the champion from the API), decides with a
pure function (TrainingRunStatus in, TrainingRunStatus out) and acts (creates the Job, hands the
champion title over, posts Events).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from ..adapters import champions, kube
from ..api import conditions as c
from ..api.clock import parse_time, seconds_between, utc_now
from ..api.common import Condition
from ..api.dataset import DatasetStatus
from ..api.reasons import ConditionStatus, Decision, EventReason, Reason, TrainingPhase
from ..api.trainingrun import DatasetPin, ModelArtifact, TrainingRunSpec, TrainingRunStatus
from ..config import OperatorConfig
from ..registry import APPROVED_ANNOTATION, MODEL_LABEL, PROMOTED_LABEL
from ..registry.promotion import (
    comparable_champion,
    decide_promotion,
    decision_due,
    held_out_rows,
    record_decision,
    settle_promotion,
)
from ..registry.rollbacks import rollback_record
from ..resources.jobs import (
    child_name,
    desired_training_job,
    job_attempts,
    job_finished,
    latest_result,
    pod_cannot_start,
)
from ..resources.results import ChampionRef, TrainingResult, read_training_result
from ..storage import model_prefix
from .cache import CACHE
from .children import create_job, expire_recorded_job
from .contract import Events, Observed, Outcome, plain_status, status_patch
from .loop import register_reconciler
from .reads import artifact_store_problem, job_pods, namespace_config, read_child

DEFAULT_TARGET = "target"
CRASH_FOR_TESTS = OperatorConfig.from_env().test_crash_after_decision


def _fail(status: TrainingRunStatus, *, reason: str, message: str, now: str) -> TrainingRunStatus:
    return status.model_copy(
        update={"phase": TrainingPhase.FAILED, "reason": reason, "message": message, "completed_at": now}
    )


def _pending(status: TrainingRunStatus, *, reason: str, message: str) -> TrainingRunStatus:
    return status.model_copy(update={"phase": TrainingPhase.PENDING, "reason": reason, "message": message})


def pin_dataset(
    spec: TrainingRunSpec, dataset: DatasetStatus | None, *, target: str = DEFAULT_TARGET
) -> tuple[DatasetPin | None, str]:
    """The dataset version to train on, or None and why not (yet). `dataset` is the Dataset's status
    (None: no such Dataset), `target` its spec's target column."""
    name = spec.dataset_ref.name
    if dataset is None:
        return None, f"Dataset {name} does not exist"
    wanted = spec.dataset_ref.version or dataset.version
    if not wanted:
        return None, f"Dataset {name} has no validated version yet"
    after = spec.dataset_ref.read_after
    if after and not spec.dataset_ref.version:
        read = dataset.source_read_at
        if read is None or parse_time(read) < parse_time(after):
            return None, f"Dataset {name} has not read its source since {after} (datasetRef.readAfter) yet"
    entry = next((h for h in dataset.history if h.version == wanted), None)
    if entry is None:
        return None, f"Dataset {name} has no version {wanted} in its history"
    read_at = dataset.source_read_at if wanted == dataset.version else None
    return DatasetPin(name=name, version=wanted, snapshot_uri=entry.snapshot_uri, target=target, read_at=read_at), ""


def waiting_for_dataset(
    spec: TrainingRunSpec, status: TrainingRunStatus, *, why: str, waited: float, now: str
) -> TrainingRunStatus:
    """Pending while the Dataset has no version to pin; Failed once datasetWaitSeconds have passed."""
    if waited > spec.dataset_wait_seconds:
        message = f"{why} after waiting {spec.dataset_wait_seconds}s"
        return _fail(status, reason=Reason.DATASET_NOT_READY, message=message, now=now)
    return _pending(status, reason=Reason.DATASET_NOT_READY, message=why)


def training_outcome(
    spec: TrainingRunSpec,
    status: TrainingRunStatus,
    *,
    finished: str | None,
    result: TrainingResult | None,
    job_reason: str,
    run: str,
    model_key: str,
    now: str,
) -> TrainingRunStatus:
    """The status once the Job's state is known: Running, Succeeded with its results, or Failed and why.

    `finished` is the Job's Complete or Failed condition type (None while it runs), `result` what the
    trainer reported in its termination message (read only from the Job's own pods), `job_reason` the
    reason of the Job's Failed condition, `model_key` where this run's version is stored in the store
    (storage.model_prefix): a result naming any other place is not this run's model.
    """
    if finished is None:
        return status.model_copy(
            update={
                "phase": TrainingPhase.RUNNING,
                "reason": Reason.JOB_RUNNING,
                "message": f"Job {status.job_name} is training",
            }
        )
    if finished == "Complete" and result is not None and result.ok:
        refused = unattributed_result(result, model_key=model_key)
        if refused:
            return _fail(status, reason=Reason.UNATTRIBUTED_RESULT, message=refused, now=now)
        assert result.model_uri is not None and result.sha256 is not None  # a passed result names them
        metrics, primary = dict(result.metrics), result.primary_metric
        started = status.started_at or now
        return status.model_copy(
            update={
                "phase": TrainingPhase.SUCCEEDED,
                "reason": Reason.JOB_SUCCEEDED,
                "message": f"model stored at {result.model_uri}",
                "completed_at": now,
                "duration_seconds": round(seconds_between(started, now), 1),
                "metrics": metrics,
                "primary_metric": primary,
                "primary_value": f"{metrics[primary]:.4f}" if primary in metrics else None,
                "test_rows": result.test_rows,
                "champion_scores": result.champion,
                "model": ModelArtifact(
                    uri=result.model_uri,
                    sha256=result.sha256,
                    version=run,
                    calibrated=result.calibrated,
                    signature_sha256=result.signature_sha256,
                    feature_count=result.feature_count,
                    environment=result.environment,
                    golden_sha256=result.golden_sha256,
                ),
            }
        )
    if result is not None and result.reason == Reason.UNATTRIBUTED_RESULT:  # a success that is no evidence
        return _fail(status, reason=result.reason, message=result.message, now=now)
    if job_reason == "DeadlineExceeded":
        message = f"training exceeded activeDeadlineSeconds={spec.active_deadline_seconds}"
        return _fail(status, reason=Reason.DEADLINE_EXCEEDED, message=message, now=now)
    said = (result.message if result else "") or f"the Job failed ({job_reason or 'no result'})"
    reason = (result.reason if result else None) or Reason.JOB_FAILED  # e.g. ArtifactStoreAccessDenied
    return _fail(status, reason=reason, message=f"after {status.attempts} attempt(s): {said}", now=now)


def unattributed_result(result: TrainingResult, *, model_key: str) -> str | None:
    """Why a successful result cannot be this run's (a model stored elsewhere); None when it can. (A
    checksum that is no sha256 or figures that are no numbers never read as a success: read_training_result.)"""
    uri = result.model_uri or ""
    if not uri.endswith("/" + model_key):
        return f"the Job reported the model {uri or '(none)'}, not the version this run writes (…/{model_key})"
    return None


def training_conditions(status: TrainingRunStatus, *, generation: int | None, now: str) -> list[Condition]:
    """Succeeded, Promoted (once succeeded) and Ready, from the phase, its reason and the promotion."""
    phase, reason, message = status.phase, status.reason or Reason.RECONCILING, status.message or ""
    conditions = status.conditions

    def put(type_: str, state: ConditionStatus, why: str, words: str) -> None:
        nonlocal conditions
        conditions = c.set_condition(
            conditions, type_=type_, status=state, reason=why, message=words, generation=generation, now=now, typed=True
        )

    if phase == TrainingPhase.SUCCEEDED:
        put(c.SUCCEEDED, ConditionStatus.TRUE, reason, message)
        promotion = status.promotion
        if promotion is None:
            put(c.PROMOTED, ConditionStatus.UNKNOWN, Reason.RECONCILING, "deciding")
        else:
            promoted = ConditionStatus.TRUE if promotion.decision == Decision.PROMOTED else ConditionStatus.FALSE
            put(c.PROMOTED, promoted, promotion.reason, promotion.message)
        decision = promotion.decision if promotion else "deciding"
        put(c.READY, ConditionStatus.TRUE, reason, f"{message}; promotion: {decision}")
    elif phase == TrainingPhase.FAILED:
        put(c.SUCCEEDED, ConditionStatus.FALSE, reason, message)
        put(c.READY, ConditionStatus.FALSE, reason, message)
    else:
        put(c.SUCCEEDED, ConditionStatus.UNKNOWN, reason, message)
        put(c.READY, ConditionStatus.FALSE, reason, message)
    return conditions


def wire(status: TrainingRunStatus) -> dict[str, Any]:
    """The status as the API stores it; a field left None is absent (the patch removes it)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def _job_result(job: dict[str, Any], namespace: str) -> tuple[str | None, TrainingResult | None, str]:
    """(Complete | Failed | None, the trainer's result, the Job's failure reason)."""
    finished = job_finished(job)
    if finished is None:
        return None, None, ""
    raw = latest_result(job_pods(namespace, job))
    return finished["type"], read_training_result(raw), finished.get("reason") or ""


def _observe_dataset(namespace: str, name: str) -> tuple[DatasetStatus | None, str]:
    """The Dataset's status (None: no such Dataset) and target column, from the cache."""
    body = CACHE.get("datasets", namespace, name)
    if body is None:
        return None, DEFAULT_TARGET
    # The target is read as written, not through DatasetSpec: a Dataset whose spec no longer parses
    # still offers the versions it validated before.
    target = (body.get("spec") or {}).get("target", DEFAULT_TARGET)
    return DatasetStatus.model_validate(plain_status(body)), target


def dataset_wait_ends(spec: TrainingRunSpec, body: dict[str, Any]) -> dt.datetime:
    """When a run still waiting for its Dataset fails (a new Dataset version wakes it before that)."""
    created = parse_time(body["metadata"]["creationTimestamp"])
    return created + dt.timedelta(seconds=spec.dataset_wait_seconds)  # type: ignore[operator]


def progress_training(
    spec: TrainingRunSpec, observed: Observed, status: TrainingRunStatus, events: Events
) -> TrainingRunStatus:
    """Move a non-terminal run one step: pin the dataset, create the Job, or read its outcome."""
    now, namespace, name = observed.now, observed.namespace, observed.name
    if status.dataset is None:
        dataset, target = _observe_dataset(namespace, spec.dataset_ref.name)
        pin, why = pin_dataset(spec, dataset, target=target)
        if pin is None:
            waited = seconds_between(observed.body["metadata"]["creationTimestamp"], now)
            return waiting_for_dataset(spec, status, why=why, waited=waited, now=now)
        status = status.model_copy(update={"dataset": pin})
        events.info(reason=EventReason.DATASET_PINNED, message=f"{pin.name} {pin.version}")
    job_name = child_name(name, "train")
    job = read_child("jobs", namespace, job_name, uid=observed.uid)
    if job is None:
        store_problem = artifact_store_problem(namespace)
        if store_problem:
            return _pending(status, reason=Reason.ARTIFACT_STORE_MISSING, message=store_problem)
        # beatChampion compares on the same rows: the Job scores the champion of now on its own held-out rows.
        champion = (
            champions.current_champion(namespace, spec.model.name, exclude=name)
            if spec.promotion.beat_champion
            else None
        )
        manifest = desired_training_job(
            name=name,
            namespace=namespace,
            uid=observed.uid,
            spec=spec,
            dataset=status.dataset,
            config=namespace_config(namespace)[0],
            champion=ChampionRef(name=champion.name, model_uri=champion.model_uri, sha256=champion.sha256)
            if champion and champion.model_uri
            else None,
        )
        job = create_job(namespace, manifest, uid=observed.uid)
        CACHE.observe("jobs", job)
        events.info(reason=Reason.JOB_CREATED, message=f"Job {job_name} trains {spec.model.estimator}")
    status = status.model_copy(
        update={"job_name": job_name, "attempts": job_attempts(job), "started_at": status.started_at or now}
    )
    finished, result, job_reason = _job_result(job, namespace)
    model_key = model_prefix(namespace, spec.model.name, name, observed.uid)
    status = training_outcome(
        spec, status, finished=finished, result=result, job_reason=job_reason, run=name, model_key=model_key, now=now
    )
    if status.phase == TrainingPhase.SUCCEEDED:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in status.metrics.items())
        events.info(reason=EventReason.TRAINING_SUCCEEDED, message=shown or "no metrics")
    elif status.phase == TrainingPhase.FAILED:
        events.warn(reason=status.reason, message=status.message)
    return status


def reconcile_promotion(
    spec: TrainingRunSpec, observed: Observed, status: TrainingRunStatus, events: Events
) -> TrainingRunStatus:
    """The status after deciding, or re-checking, the promotion of a succeeded run; the champion label
    brought in line with the recorded decision (registry.promotion.settle_promotion)."""
    labels = observed.body["metadata"].get("labels") or {}
    model, namespace, name = spec.model.name, observed.namespace, observed.name
    rolled_back = rollback_record(observed.body)
    status = status.model_copy(update={"rolled_back": rolled_back})
    labelled = labels.get(PROMOTED_LABEL) == "true"
    decision = status.promotion.decision if status.promotion else None
    with champions.model_lock(namespace, model):
        promoted_later = None
        if status.promotion and decision == Decision.PROMOTED and not labelled and rolled_back is None:  # rare
            decided_at = status.promotion.decided_at
            promoted_later = champions.promoted_after(namespace, model, run=name, decided_at=decided_at)
        settled = settle_promotion(
            status.promotion,
            labelled_champion=labelled,
            rolled_back=rolled_back,
            promoted_later=promoted_later,
            now=observed.now,
        )
        if settled.promotion != status.promotion:
            status = status.model_copy(update={"promotion": settled.promotion})
            if settled.promotion is not None and settled.promotion.decision == Decision.ROLLED_BACK:
                events.warn(reason=EventReason.ROLLED_BACK, message=settled.promotion.message)
        if settled.action == "hand_over":  # a promotion whose label was never written: finished now
            replaced = champions.hand_over(namespace, model, to=name)
            events.info(
                reason=EventReason.PROMOTED,
                message="champion label restored after an interrupted promotion"
                + (f"; replaces {', '.join(replaced)}" if replaced else ""),
            )
        elif settled.action == "hand_back":
            back_to = champions.hand_back(namespace, model, from_=name)
            events.warn(
                reason=EventReason.CHAMPION_RESTORED,
                message=f"no longer the champion; {back_to or 'no other version'} is",
            )
        if not decision_due(status.promotion, rolled_back=rolled_back is not None):
            return status
        approved = (observed.body["metadata"].get("annotations") or {}).get(APPROVED_ANNOTATION) == "true"
        champion = comparable_champion(
            champions.current_champion(namespace, model, exclude=name),
            rows=held_out_rows(spec, status.dataset.version if status.dataset else None),
            scored=status.champion_scores.model_dump() if status.champion_scores else None,
            test_rows=status.test_rows,
        )
        decision = decide_promotion(
            metrics=status.metrics, promotion=spec.promotion, champion=champion, approved=approved
        )
        promotion = record_decision(status.promotion, decision, now=observed.now)
        if promotion is None:
            return status
        status = status.model_copy(update={"promotion": promotion})
        if decision.decision == Decision.PROMOTED:
            # Under the model's lock: first the metrics and the decision, then the label. A run that
            # looks for the champion next finds it with the metrics it must be compared with; and the
            # label is never written by kopf's patch after the handler, which could land after another
            # run took the title over. A crash between the two writes leaves a Promoted run without
            # the label: the next reconcile finishes the hand-over (settle_promotion). The write holds
            # everything this reconcile recorded so far (the model, the champion's scores, ...): nobody
            # reads a decision without the evidence it was made on.
            # With the conditions of that status: a reader never sees Succeeded beside an older Ready.
            conditions = training_conditions(status, generation=observed.generation, now=observed.now)
            written = status.model_copy(update={"conditions": conditions, "observed_generation": observed.generation})
            patch = status_patch(observed.status, wire(written))
            CACHE.observe("trainingruns", kube.patch_status("trainingruns", namespace, name, patch))
            if CRASH_FOR_TESTS and f"{namespace}/{name}" == CRASH_FOR_TESTS:
                os._exit(70)  # fault injection (config.test_crash_after_decision): a crash between the writes
            replaced = champions.hand_over(namespace, model, to=name)
            events.info(
                reason=EventReason.PROMOTED,
                message=decision.message + (f"; replaces {', '.join(replaced)}" if replaced else ""),
            )
        elif decision.decision == Decision.REJECTED:
            events.warn(reason=EventReason.PROMOTION_REJECTED, message=decision.message)
        else:
            events.info(reason=decision.reason, message=decision.message)
    return status


def reconcile_trainingrun(spec: TrainingRunSpec, observed: Observed, logger: Any) -> Outcome:
    status = TrainingRunStatus.model_validate(observed.status)
    if status.phase is not None and status.phase.terminal and status.job_name:  # its result is recorded
        ttl = OperatorConfig.from_env().finished_job_ttl_seconds
        expire_recorded_job(observed.namespace, status.job_name, uid=observed.uid, seconds=ttl)
    labels: dict[str, str | None] = {MODEL_LABEL: spec.model.name}
    events = Events()
    if status.phase is None or not status.phase.terminal:
        status = progress_training(spec, observed, status, events)
    if status.phase == TrainingPhase.SUCCEEDED:
        status = reconcile_promotion(spec, observed, status, events)
    status, look_again = _stuck_pod(status, observed.namespace, uid=observed.uid)
    conditions = training_conditions(status, generation=observed.generation, now=observed.now)
    status = status.model_copy(update={"conditions": conditions, "observed_generation": observed.generation})
    # The Job's and the Dataset's events wake a run; only the wait for a Dataset has a deadline.
    waiting = status.phase == TrainingPhase.PENDING and status.reason == Reason.DATASET_NOT_READY
    wake_at = dataset_wait_ends(spec, observed.body) if waiting else look_again
    return Outcome(status=wire(status), labels=labels, wake_at=wake_at, events=events)


def _stuck_pod(status: TrainingRunStatus, namespace: str, *, uid: str) -> tuple[TrainingRunStatus, dt.datetime | None]:
    """A running Job whose pod cannot start says why (not terminal: the pod starts once the Secret exists;
    the Job's deadline ends the wait); and, while the pod may still turn out stuck, when to look again."""
    if not status.job_name or (status.phase and status.phase.terminal):
        return status, None
    job = read_child("jobs", namespace, status.job_name, uid=uid)
    if job is None or job_finished(job) is not None:
        return status, None
    stuck, look_again = pod_cannot_start(job_pods(namespace, job), now=utc_now())
    if stuck:
        status = status.model_copy(update={"reason": Reason.POD_CANNOT_START, "message": stuck})
    return status, look_again


register_reconciler("trainingruns", TrainingRunSpec, reconcile_trainingrun)
