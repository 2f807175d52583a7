"""TrainingRun controller: pin the dataset version, run the training Job, record results, decide promotion.

Terminal phases are sticky: a Succeeded or Failed run never trains again (its Job's pod retries are
attempts recorded in status); only its promotion can still move (approval, or being superseded).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from .. import kube
from ..api import conditions as c
from ..api.trainingrun import TrainingRunSpec
from ..config import OperatorConfig
from ..registry import APPROVED_ANNOTATION, MODEL_LABEL, PROMOTED_LABEL, champions
from ..registry.promotion import SUPERSEDED, decide_promotion
from ..resources.jobs import child_name, desired_training_job
from .common import Observed, Outcome, artifact_store_problem, register_reconciler

TERMINAL = ("Succeeded", "Failed")


def _seconds_between(start: str, end: str) -> float:
    parse = dt.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _fail(status: dict[str, Any], *, reason: str, message: str, now: str) -> dict[str, Any]:
    return {**status, "phase": "Failed", "reason": reason, "message": message, "completedAt": now}


def pin_dataset(spec: TrainingRunSpec, dataset: dict[str, Any] | None) -> tuple[dict[str, str] | None, str]:
    """The dataset version to train on, or None and why not (yet)."""
    name = spec.dataset_ref.name
    if dataset is None:
        return None, f"Dataset {name} does not exist"
    status = dataset.get("status") or {}
    wanted = spec.dataset_ref.version or status.get("version")
    if not wanted:
        return None, f"Dataset {name} has no validated version yet"
    entry = next((h for h in status.get("history") or [] if h.get("version") == wanted), None)
    if entry is None:
        return None, f"Dataset {name} has no version {wanted} in its history"
    target = (dataset.get("spec") or {}).get("target", "target")
    return {"name": name, "version": wanted, "snapshotUri": entry["snapshotUri"], "target": target}, ""


def _job_result(job: Any, namespace: str) -> tuple[str | None, dict[str, Any] | None, str]:
    """(Complete | Failed | None, the trainer's result, the Job's failure reason)."""
    finished = next(
        (
            cond
            for cond in (job.status.conditions or [])
            if cond.type in ("Complete", "Failed") and cond.status == "True"
        ),
        None,
    )
    if finished is None:
        return None, None, ""
    for pod in reversed(kube.job_pods(namespace, job.metadata.name)):
        result = kube.termination_message(pod)
        if result is not None:
            return finished.type, result, finished.reason or ""
    return finished.type, None, finished.reason or ""


def progress_training(spec: TrainingRunSpec, observed: Observed, status: dict[str, Any]) -> dict[str, Any]:
    """Move a non-terminal run one step: pin the dataset, create the Job, or read its outcome."""
    now, namespace, name = observed.now, observed.namespace, observed.name
    if not status.get("dataset"):
        dataset = kube.get_custom("datasets", namespace, spec.dataset_ref.name)
        pin, why = pin_dataset(spec, dataset)
        if pin is None:
            waited = _seconds_between(observed.body["metadata"]["creationTimestamp"], now)
            if waited > spec.dataset_wait_seconds:
                return _fail(status, reason=c.DATASET_NOT_READY, now=now,
                             message=f"{why} after waiting {spec.dataset_wait_seconds}s")  # fmt: skip
            return {**status, "phase": "Pending", "reason": c.DATASET_NOT_READY, "message": why}
        status = {**status, "dataset": pin}
        kopf.info(observed.body, reason="DatasetPinned", message=f"{pin['name']} {pin['version']}")
    job_name = child_name(name, "train")
    job = kube.read_or_none(kube.batch().read_namespaced_job, job_name, namespace)
    if job is None:
        store_problem = artifact_store_problem(namespace)
        if store_problem:
            return {**status, "phase": "Pending", "reason": c.ARTIFACT_STORE_MISSING, "message": store_problem}
        manifest = desired_training_job(
            name=name,
            namespace=namespace,
            uid=observed.uid,
            spec=spec,
            dataset=status["dataset"],
            config=OperatorConfig.from_env(),
        )
        job = kube.create_or_get(
            kube.batch().create_namespaced_job, kube.batch().read_namespaced_job, namespace, manifest
        )
        kopf.info(observed.body, reason=c.JOB_CREATED, message=f"Job {job_name} trains {spec.model.estimator}")
        status = {**status, "jobName": job_name, "startedAt": status.get("startedAt") or now}
    counts = job.status
    attempts = (counts.failed or 0) + (counts.succeeded or 0) + (counts.active or 0) if counts else 0
    status = {**status, "jobName": job_name, "attempts": attempts, "startedAt": status.get("startedAt") or now}
    outcome, result, job_reason = _job_result(job, namespace)
    if outcome is None:
        return {**status, "phase": "Running", "reason": c.JOB_RUNNING, "message": f"Job {job_name} is training"}
    if outcome == "Complete" and result and result.get("ok"):
        metrics = result.get("metrics") or {}
        primary = result.get("primaryMetric")
        status = {
            **status,
            "phase": "Succeeded",
            "reason": c.JOB_SUCCEEDED,
            "message": f"model stored at {result['modelUri']}",
            "completedAt": now,
            "durationSeconds": round(_seconds_between(status["startedAt"], now), 1),
            "metrics": metrics,
            "primaryMetric": primary,
            "primaryValue": f"{metrics[primary]:.4f}" if primary in metrics else None,
            "model": {"uri": result["modelUri"], "sha256": result["sha256"], "version": name},
        }
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        kopf.info(observed.body, reason="TrainingSucceeded", message=shown or "no metrics")
        return status
    if job_reason == "DeadlineExceeded":
        failed = _fail(status, reason=c.DEADLINE_EXCEEDED, now=now,
                       message=f"training exceeded activeDeadlineSeconds={spec.active_deadline_seconds}")  # fmt: skip
    else:
        said = (result or {}).get("message") or f"the Job failed ({job_reason or 'no result'})"
        failed = _fail(status, reason=c.JOB_FAILED, now=now, message=f"after {attempts} attempt(s): {said}")
    kopf.warn(observed.body, reason=failed["reason"], message=failed["message"])
    return failed


def reconcile_promotion(spec: TrainingRunSpec, observed: Observed, status: dict[str, Any]) -> dict[str, Any]:
    """The status after deciding, or re-checking, the promotion of a succeeded run."""
    promotion = status.get("promotion")
    labels = dict(observed.body["metadata"].get("labels") or {})
    if promotion and promotion["decision"] == "Promoted" and labels.get(PROMOTED_LABEL) != "true":
        superseded = {**promotion, "decision": "Superseded", "reason": SUPERSEDED,
                      "message": "another version of the model became the champion"}  # fmt: skip
        return {**status, "promotion": superseded}
    if promotion and promotion["decision"] != "PendingApproval":
        return status
    approved = (observed.body["metadata"].get("annotations") or {}).get(APPROVED_ANNOTATION) == "true"
    model, namespace = spec.model.name, observed.namespace
    with champions.model_lock(namespace, model):
        champion = champions.current_champion(namespace, model, exclude=observed.name)
        decision = decide_promotion(
            metrics=status.get("metrics") or {}, promotion=spec.promotion, champion=champion, approved=approved
        )
        if promotion and promotion["decision"] == decision.decision:
            return status
        status = {**status, "promotion": decision.as_status(decided_at=observed.now)}
        if decision.decision == "Promoted":
            # Under the model's lock: first the metrics and the decision, then the label. A run that
            # looks for the champion next finds it with the metrics it must be compared with; and the
            # label is never written by kopf's patch after the handler, which could land after another
            # run took the title over.
            kube.patch_status("trainingruns", namespace, observed.name,
                              {"metrics": status.get("metrics") or {}, "promotion": status["promotion"]})  # fmt: skip
            demoted = champions.hand_over(namespace, model, to=observed.name)
            kopf.info(
                observed.body,
                reason="Promoted",
                message=decision.message + (f"; replaces {demoted}" if demoted else ""),
            )
        elif decision.decision == "Rejected":
            kopf.warn(observed.body, reason="PromotionRejected", message=decision.message)
        else:
            kopf.info(observed.body, reason=decision.reason, message=decision.message)
    return status


def training_conditions(status: dict[str, Any], *, generation: int | None, now: str) -> list[dict[str, Any]]:
    phase, reason, message = status.get("phase"), status.get("reason") or c.RECONCILING, status.get("message") or ""
    conditions = status.get("conditions") or []

    def put(type_: str, state: str, why: str, words: str) -> None:
        nonlocal conditions
        conditions = c.set_condition(conditions, type_=type_, status=state, reason=why, message=words,
                                     generation=generation, now=now)  # fmt: skip

    if phase == "Succeeded":
        put(c.SUCCEEDED, "True", reason, message)
        promotion = status.get("promotion") or {}
        decision = promotion.get("decision")
        put(c.PROMOTED, "True" if decision == "Promoted" else ("Unknown" if not decision else "False"),
            promotion.get("reason", c.RECONCILING), promotion.get("message", "deciding"))  # fmt: skip
        put(c.READY, "True", reason, f"{message}; promotion: {decision or 'deciding'}")
    elif phase == "Failed":
        put(c.SUCCEEDED, "False", reason, message)
        put(c.READY, "False", reason, message)
    else:
        put(c.SUCCEEDED, "Unknown", reason, message)
        put(c.READY, "False", reason, message)
    return conditions


def reconcile_trainingrun(spec: TrainingRunSpec, observed: Observed, logger: Any) -> Outcome:
    status = dict(observed.status)
    labels: dict[str, str | None] = {MODEL_LABEL: spec.model.name}
    if status.get("phase") not in TERMINAL:
        status = progress_training(spec, observed, status)
    if status.get("phase") == "Succeeded":
        status = reconcile_promotion(spec, observed, status)
    conditions = training_conditions(status, generation=observed.generation, now=observed.now)
    return Outcome(
        status={**status, "conditions": conditions, "observedGeneration": observed.generation}, labels=labels
    )


register_reconciler("trainingruns", TrainingRunSpec, reconcile_trainingrun, resync_seconds=2)
