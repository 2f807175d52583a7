"""Dataset controller: run a check Job when one is due, fold its result into status, keep the last good version.

The check itself (read, validate, version, snapshot, profile) runs in a Job in the Dataset's namespace,
next to the artifact store: the operator never reads the data, so dataset work never blocks it.

The reconcile observes (the check Job and its pods, the artifact claim, the source objects), decides with
the pure functions above it (DatasetStatus in, DatasetStatus out), and acts (creates the Job, posts Events).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from ..adapters import kube
from ..api import conditions as c
from ..api.clock import parse_duration, parse_time, utc_now
from ..api.common import Condition
from ..api.dataset import DatasetCheck, DatasetSpec, DatasetStatus, DatasetVersion
from ..api.reasons import ConditionStatus, DatasetPhase, EventReason, Reason
from ..resources.jobs import desired_dataset_check_job, job_finished, latest_result, pod_cannot_start
from .cache import CACHE
from .common import (
    Observed,
    Outcome,
    artifact_store_problem,
    job_pods,
    namespace_config,
    read_child,
    register_reconciler,
)

EPOCH = "1970-01-01T00:00:00Z"


def next_check_at(spec: DatasetSpec, status: DatasetStatus, *, generation: int | None) -> dt.datetime | None:
    """When the next check is due: now for a new generation; for changeable sources once the refresh
    interval has passed since the last check; never for bundled data (it does not change)."""
    if status.checked_generation != generation:
        return parse_time(EPOCH)
    if spec.source.builtin or not status.last_checked_at:
        return None  # bundled data never changes; or the check of this generation has not finished
    return parse_time(status.last_checked_at) + dt.timedelta(seconds=parse_duration(spec.refresh_interval))


def check_due(spec: DatasetSpec, status: DatasetStatus, *, generation: int | None, now: str) -> bool:
    """A new check is due for a new generation, and for changeable sources once the refresh interval passed."""
    due = next_check_at(spec, status, generation=generation)
    return due is not None and due <= parse_time(now)


def apply_check_result(status: DatasetStatus, result: dict[str, Any], *, spec: DatasetSpec, now: str) -> DatasetStatus:
    """Status after a finished check: a new version joins the history; a failure keeps the last good one.

    `result` is what the check Job reported (data.check.run_check): {ok, version, rows, ...} or
    {ok: false, reason, message}.
    """
    generation = status.checked_generation
    if not result.get("ok"):
        failed = DatasetCheck(
            succeeded=False,
            reason=result.get("reason") or Reason.SOURCE_UNAVAILABLE,
            message=result.get("message", ""),
            at=now,
            generation=generation,
        )
        return status.model_copy(update={"last_checked_at": now, "last_check": failed})
    version, rows = result["version"], int(result["rows"])
    # A version seen before keeps the entry (and the time) it was first seen with.
    entry = next((h for h in status.history if h.version == version), None) or DatasetVersion(
        version=version, rows=rows, snapshot_uri=result["snapshotUri"], created_at=now
    )
    others = [h for h in status.history if h.version != version]
    passed = DatasetCheck(
        succeeded=True,
        reason=Reason.VALIDATION_SUCCEEDED,
        message=f"version {version} with {rows} rows",
        at=now,
        generation=generation,
    )
    return status.model_copy(
        update={
            "last_checked_at": now,
            "version": version,
            "rows": rows,
            "columns": list(result.get("columns", [])),
            "snapshot_uri": result["snapshotUri"],
            "profile_ref": result.get("profileUri"),
            "history": [entry, *others][: spec.history_limit],
            "last_check": passed,
        }
    )


def artifact_store_missing(status: DatasetStatus, *, problem: str, now: str) -> DatasetStatus | None:
    """The status that reports a missing artifact claim, or None when it already does (reported once).

    No check is consumed (checkedGeneration and lastCheckedAt stay): it is retried until the claim exists.
    """
    if status.last_check is not None and status.last_check.reason == Reason.ARTIFACT_STORE_MISSING:
        return None
    missing = DatasetCheck(succeeded=False, reason=Reason.ARTIFACT_STORE_MISSING, message=problem, at=now)
    return status.model_copy(update={"last_check": missing})


def dataset_conditions(
    status: DatasetStatus, *, generation: int | None, now: str
) -> tuple[list[Condition], DatasetPhase]:
    """Validated and Ready conditions, and the phase, from the status fields."""
    check, version = status.last_check, status.version
    true, false, unknown = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    pending, passed = Reason.VALIDATION_PENDING, Reason.VALIDATION_SUCCEEDED
    stale = check is not None and check.generation not in (None, generation)
    if check is None:
        validated = (unknown, pending, "the first check of the source is under way")
        ready = (false, pending, "waiting for the first validated version of the data")
        phase = DatasetPhase.PENDING
    elif stale:
        # The spec changed since the last finished check: nothing is validated against it yet.
        words = f"checking the source against generation {generation}"
        kept = f"; version {version} (checked against generation {check.generation}) stays available"
        validated = (unknown, pending, words)
        ready = (false, pending, words + (kept if version else ""))
        phase = DatasetPhase.PENDING
    elif check.succeeded:
        validated = (true, passed, check.message)
        ready = (true, passed, f"version {version} is available")
        phase = DatasetPhase.READY
    else:
        validated = (false, check.reason, check.message)
        kept = f"; the last good version {version} stays available" if version else "; no version is available"
        ready = (false, check.reason, check.message + kept)
        phase = DatasetPhase.FAILED
    conditions = status.conditions
    for type_, (state, reason, message) in ((c.VALIDATED, validated), (c.READY, ready)):
        conditions = c.set_condition(conditions, type_=type_, status=state, reason=reason, message=message,
                                     generation=generation, now=now, typed=True)  # fmt: skip
    return conditions, phase


def with_conditions(status: DatasetStatus, *, generation: int | None, now: str) -> DatasetStatus:
    """The status as written: conditions and phase derived from the fields, the generation observed."""
    conditions, phase = dataset_conditions(status, generation=generation, now=now)
    return status.model_copy(update={"conditions": conditions, "phase": phase, "observed_generation": generation})


def wire(status: DatasetStatus) -> dict[str, Any]:
    """The status as the API stores it; a field left None is absent (the patch removes it)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def _finished_check_result(job: dict[str, Any], namespace: str) -> tuple[dict[str, Any] | None, dt.datetime | None]:
    """The result of a finished check Job, or None while it runs (and when to look again if its pod
    may turn out stuck)."""
    finished = job_finished(job)
    if finished is None:
        stuck, look_again = pod_cannot_start(job_pods(namespace, job), now=utc_now())
        # Failed now rather than at the Job's deadline; a spec change or the next refresh checks again.
        return ({"ok": False, "reason": Reason.POD_CANNOT_START, "message": stuck} if stuck else None), look_again
    result = latest_result(job_pods(namespace, job))
    if result is not None:
        return (result if finished["type"] == "Complete" or not result.get("ok") else {**result, "ok": False}), None
    return {"ok": False, "reason": Reason.SOURCE_UNAVAILABLE,
            "message": f"the check Job failed ({finished.get('reason') or 'no result'})"}, None  # fmt: skip


def capture_inputs(spec: DatasetSpec, namespace: str) -> tuple[dict[str, Any] | None, str | None]:
    """(what the check Job reads for a capture source, or why it cannot): the base Dataset's current
    snapshot and the ModelDeployment's capture prefix in the namespace's object store."""
    source = spec.source.capture
    assert source is not None
    base = CACHE.get("datasets", namespace, source.base)
    if base is None:
        return None, f"Dataset {source.base} (the capture's base) does not exist"
    snapshot = (base.get("status") or {}).get("snapshotUri")
    if not snapshot:
        return None, f"Dataset {source.base} (the capture's base) has no version yet"
    base_target = (base.get("spec") or {}).get("target", "target")
    if base_target != spec.target:
        return None, (f"Dataset {source.base} has the target {base_target!r}, this one {spec.target!r}: the "
                      "captured labels are added as the base's target, so the two must be the same column")  # fmt: skip
    config, _ = namespace_config(namespace)
    if not config.uses_object_store:
        return None, f"capture needs an object store (s3://); this namespace's artifact store is {config.store_uri}"
    return {"baseSnapshotUri": snapshot, "capturePrefix": f"captures/{namespace}/{source.model_deployment}"}, None


def _source_problem(spec: DatasetSpec, namespace: str) -> str | None:
    """A source the check Job could not read: reported at once instead of a pod stuck on its volume.

    A missing object, and the artifact claim itself: the check Job mounts that claim already (read-write,
    for the snapshot); a pod given the same claim twice never starts (ContainerCreating until the
    deadline). The claim's name is operator configuration, so the CRD cannot refuse it.
    """
    # Read only when a check is due: not cached, since they are the user's objects, not ours.
    if spec.source.config_map:
        cm = kube.read_config_map(namespace, spec.source.config_map.name)
        if cm is None:
            return f"ConfigMap {spec.source.config_map.name} does not exist"
        keys = {*(cm.get("data") or {}), *(cm.get("binaryData") or {})}  # a Parquet file is binaryData
        if spec.source.config_map.key not in keys:
            return f"ConfigMap {spec.source.config_map.name} has no key {spec.source.config_map.key!r}"
    if spec.source.capture:
        return capture_inputs(spec, namespace)[1]
    if spec.source.pvc:
        claim = spec.source.pvc.claim_name
        config, _ = namespace_config(namespace)
        if claim == config.artifact_pvc and not config.uses_object_store:
            return (
                f"PersistentVolumeClaim {claim} is the artifact store, which the check Job mounts already; "
                "a pod cannot mount one claim twice: put the file on another claim"
            )
        if kube.read_pvc(namespace, claim) is None:
            return f"PersistentVolumeClaim {claim} does not exist"
    return None


def finish_active_check(
    spec: DatasetSpec, observed: Observed, status: DatasetStatus
) -> tuple[DatasetStatus, dt.datetime | None]:
    """Fold the result of the check Job under way into status once it has finished; and, while it runs,
    when to look at it again (its pod may turn out stuck)."""
    active = status.active_check
    if not active:
        return status, None
    job = read_child("jobs", observed.namespace, active)
    result: dict[str, Any] | None = {"ok": False, "reason": Reason.SOURCE_UNAVAILABLE,
                                     "message": f"check Job {active} disappeared"}  # fmt: skip
    look_again = None
    if job is not None:
        result, look_again = _finished_check_result(job, observed.namespace)
    if result is None:
        return status, look_again
    before = status.version
    status = apply_check_result(status, result, spec=spec, now=observed.now).model_copy(update={"active_check": None})
    if result.get("ok") and result["version"] != before:
        kopf.info(observed.body, reason=EventReason.NEW_VERSION, message=f"{result['version']}: {result['rows']} rows")
    elif not result.get("ok") and status.last_check is not None:
        kopf.warn(observed.body, reason=status.last_check.reason, message=status.last_check.message)
    return status, None


def start_check(spec: DatasetSpec, observed: Observed, status: DatasetStatus) -> DatasetStatus:
    """Start the check that is due: a missing source object fails it at once, otherwise a Job runs it."""
    namespace = observed.namespace
    status = status.model_copy(update={"checked_generation": observed.generation})
    problem = _source_problem(spec, namespace)
    if problem:
        missing = {"ok": False, "reason": Reason.SOURCE_UNAVAILABLE, "message": problem}
        return apply_check_result(status, missing, spec=spec, now=observed.now)
    number = status.checks + 1
    job = desired_dataset_check_job(
        name=observed.name,
        namespace=namespace,
        uid=observed.uid,
        spec=spec,
        check=number,
        config=namespace_config(namespace)[0],
        capture=capture_inputs(spec, namespace)[0] if spec.source.capture else None,
    )
    CACHE.observe("jobs", kube.create_job(namespace, job))
    job_name = job["metadata"]["name"]
    kopf.info(observed.body, reason=EventReason.CHECK_STARTED, message=f"Job {job_name} checks the source")
    return status.model_copy(update={"checks": number, "active_check": job_name})


def reconcile_dataset(spec: DatasetSpec, observed: Observed, logger: Any) -> Outcome:
    status, look_again = finish_active_check(spec, observed, DatasetStatus.model_validate(observed.status))
    due = not status.active_check and check_due(spec, status, generation=observed.generation, now=observed.now)
    store_problem = artifact_store_problem(observed.namespace) if due else None
    if store_problem:
        reported = artifact_store_missing(status, problem=store_problem, now=observed.now)
        if reported is not None:
            status = reported
            kopf.warn(observed.body, reason=Reason.ARTIFACT_STORE_MISSING, message=store_problem)
    elif due:
        status = start_check(spec, observed, status)
    status = with_conditions(status, generation=observed.generation, now=observed.now)
    # A running check wakes the Dataset through its Job's events; otherwise the next refresh is the deadline.
    # A missing claim wakes it when the claim appears (the claims are watched).
    waiting = status.active_check or store_problem
    wake_at = look_again if waiting else next_check_at(spec, status, generation=observed.generation)
    return Outcome(status=wire(status), wake_at=wake_at)


register_reconciler("datasets", DatasetSpec, reconcile_dataset)
