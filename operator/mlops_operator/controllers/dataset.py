"""Dataset controller: run a check Job when one is due, fold its result into status, keep the last good version.

The check itself (read, validate, version, snapshot, profile) runs in a Job in the Dataset's namespace,
next to the artifact store: the operator never reads the data, so dataset work never blocks it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import kopf

from .. import kube
from ..api import conditions as c
from ..api.dataset import DatasetSpec
from ..config import OperatorConfig
from ..resources.jobs import desired_dataset_check_job
from .common import Observed, Outcome, artifact_store_problem, register_reconciler

_DURATION_PART = re.compile(r"([0-9.]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (`1h30m`, `45s`, `250ms`)."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_due(spec: DatasetSpec, status: dict[str, Any], *, generation: int | None, now: str) -> bool:
    """A new check is due for a new generation, and for changeable sources once the refresh interval passed."""
    if status.get("checkedGeneration") != generation:
        return True
    if spec.source.builtin or not status.get("lastCheckedAt"):
        return False  # bundled data never changes; or the check of this generation has not finished
    elapsed = (_time(now) - _time(status["lastCheckedAt"])).total_seconds()
    return elapsed >= parse_duration(spec.refresh_interval)


def apply_check_result(
    status: dict[str, Any], result: dict[str, Any], *, spec: DatasetSpec, now: str
) -> dict[str, Any]:
    """Status after a finished check: a new version joins the history; a failure keeps the last good one."""
    status = {**status, "lastCheckedAt": now}
    generation = status.get("checkedGeneration")
    if not result.get("ok"):
        reason = result.get("reason") or c.SOURCE_UNAVAILABLE
        status["lastCheck"] = {"succeeded": False, "reason": reason, "message": result.get("message", ""), "at": now,
                               "generation": generation}  # fmt: skip
        return status
    version = result["version"]
    history = [h for h in status.get("history") or [] if h.get("version") != version]
    previous = next((h for h in status.get("history") or [] if h.get("version") == version), None)
    entry = previous or {
        "version": version,
        "rows": result["rows"],
        "snapshotUri": result["snapshotUri"],
        "createdAt": now,
    }
    status.update(
        version=version,
        rows=result["rows"],
        columns=result.get("columns", []),
        snapshotUri=result["snapshotUri"],
        profileRef=result.get("profileUri"),
        history=[entry, *history][: spec.history_limit],
        lastCheck={
            "succeeded": True,
            "reason": c.VALIDATION_SUCCEEDED,
            "message": f"version {version} with {result['rows']} rows",
            "at": now,
            "generation": generation,
        },
    )
    return status


def dataset_conditions(status: dict[str, Any], *, generation: int | None, now: str) -> tuple[list[dict], str]:
    """Validated and Ready conditions, and the phase, from the status fields."""
    conditions = status.get("conditions") or []
    check = status.get("lastCheck")
    version = status.get("version")
    stale = check is not None and check.get("generation") not in (None, generation)
    if check is None:
        validated = ("Unknown", c.VALIDATION_PENDING, "the first check of the source is under way")
        ready, phase = ("False", c.VALIDATION_PENDING, "waiting for the first validated version of the data"), "Pending"
    elif stale:
        # The spec changed since the last finished check: nothing is validated against it yet.
        words = f"checking the source against generation {generation}"
        kept = f"; version {version} (checked against generation {check['generation']}) stays available"
        validated = ("Unknown", c.VALIDATION_PENDING, words)
        ready, phase = ("False", c.VALIDATION_PENDING, words + (kept if version else "")), "Pending"
    elif check["succeeded"]:
        validated = ("True", c.VALIDATION_SUCCEEDED, check["message"])
        ready, phase = ("True", c.VALIDATION_SUCCEEDED, f"version {version} is available"), "Ready"
    else:
        validated = ("False", check["reason"], check["message"])
        kept = f"; the last good version {version} stays available" if version else "; no version is available"
        ready, phase = ("False", check["reason"], check["message"] + kept), "Failed"
    for type_, (state, reason, message) in ((c.VALIDATED, validated), (c.READY, ready)):
        conditions = c.set_condition(
            conditions, type_=type_, status=state, reason=reason, message=message, generation=generation, now=now
        )
    return conditions, phase


def _finished_check_result(job: Any, namespace: str) -> dict[str, Any] | None:
    """The result of a finished check Job, or None while it runs."""
    finished = kube.job_finished(job)
    if finished is None:
        return None
    outcome = finished.type
    for pod in reversed(kube.job_pods(namespace, job.metadata.name)):
        result = kube.termination_message(pod)
        if result is not None:
            return result if outcome == "Complete" or not result.get("ok") else {**result, "ok": False}
    return {"ok": False, "reason": c.SOURCE_UNAVAILABLE, "message": f"the check Job failed ({finished.reason})"}


def _source_problem(spec: DatasetSpec, namespace: str) -> str | None:
    """A source object that does not exist: reported at once instead of a pod stuck on a missing volume."""
    if spec.source.config_map:
        cm = kube.read_or_none(kube.core().read_namespaced_config_map, spec.source.config_map.name, namespace)
        if cm is None:
            return f"ConfigMap {spec.source.config_map.name} does not exist"
        if spec.source.config_map.key not in (cm.data or {}):
            return f"ConfigMap {spec.source.config_map.name} has no key {spec.source.config_map.key!r}"
    if spec.source.pvc:
        claim = spec.source.pvc.claim_name
        if kube.read_or_none(kube.core().read_namespaced_persistent_volume_claim, claim, namespace) is None:
            return f"PersistentVolumeClaim {claim} does not exist"
    return None


def reconcile_dataset(spec: DatasetSpec, observed: Observed, logger: Any) -> Outcome:
    status, now, namespace = dict(observed.status), observed.now, observed.namespace
    active = status.get("activeCheck")
    if active:
        job = kube.read_or_none(kube.batch().read_namespaced_job, active, namespace)
        result = {"ok": False, "reason": c.SOURCE_UNAVAILABLE, "message": f"check Job {active} disappeared"}
        if job is not None:
            result = _finished_check_result(job, namespace)
        if result is not None:
            before = status.get("version")
            status = apply_check_result(status, result, spec=spec, now=now)
            status["activeCheck"] = None
            if result.get("ok") and result["version"] != before:
                kopf.info(observed.body, reason="NewVersion", message=f"{result['version']}: {result['rows']} rows")
            elif not result.get("ok"):
                kopf.warn(observed.body, reason=status["lastCheck"]["reason"], message=status["lastCheck"]["message"])
    due = not status.get("activeCheck") and check_due(spec, status, generation=observed.generation, now=now)
    store_problem = artifact_store_problem(namespace) if due else None
    if store_problem:  # no check is consumed: retried at every resync until the claim exists
        if (status.get("lastCheck") or {}).get("reason") != c.ARTIFACT_STORE_MISSING:
            status["lastCheck"] = {"succeeded": False, "reason": c.ARTIFACT_STORE_MISSING, "message": store_problem,
                                   "at": now}  # fmt: skip
            kopf.warn(observed.body, reason=c.ARTIFACT_STORE_MISSING, message=store_problem)
    elif due:
        status["checkedGeneration"] = observed.generation
        problem = _source_problem(spec, namespace)
        if problem:
            status = apply_check_result(
                status, {"ok": False, "reason": c.SOURCE_UNAVAILABLE, "message": problem}, spec=spec, now=now
            )
        else:
            number = int(status.get("checks") or 0) + 1
            job = desired_dataset_check_job(
                name=observed.name,
                namespace=namespace,
                uid=observed.uid,
                spec=spec,
                check=number,
                config=OperatorConfig.from_env(),
            )
            kube.create_or_get(kube.batch().create_namespaced_job, kube.batch().read_namespaced_job, namespace, job)
            status.update(checks=number, activeCheck=job["metadata"]["name"])
            kopf.info(observed.body, reason="CheckStarted", message=f"Job {job['metadata']['name']} checks the source")
    conditions, phase = dataset_conditions(status, generation=observed.generation, now=now)
    return Outcome(
        status={**status, "conditions": conditions, "phase": phase, "observedGeneration": observed.generation}
    )


register_reconciler("datasets", DatasetSpec, reconcile_dataset, resync_seconds=3)
