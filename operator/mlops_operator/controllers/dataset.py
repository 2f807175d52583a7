"""Dataset controller: run a check Job when one is due, fold its result into status, keep the last good version.

The check itself (read, validate, version, snapshot, profile) runs in a Job in the Dataset's namespace,
next to the artifact store: the operator never reads the data, so dataset work never blocks it. The Job
reports a CheckResult (resources/results.py) in its termination message: small facts, and for what grows
with the data (the column names) the profile's URI and sha256, since the operator cannot read the store.

A check whose pod cannot start (a missing store Secret, an image not pulled) is not a failed check:
nothing is known about the source. The Dataset says it waits for that cause (`status.blockedCheck`,
Ready=False PodCannotStart, phase Pending), keeps the Job, and takes its result once the pod runs. A Job
that ends before its pod ever started (its deadline) is followed by the next one after a backoff
(CHECK_RETRY_SECONDS), not at the next refresh; the wait is computed from `blockedCheck.endedAt`, so a
restarted operator keeps the same schedule.

The reconcile observes (the check Job and its pods, the artifact claim, the source objects), decides with
the pure functions above it (DatasetStatus in, DatasetStatus out), and acts (creates the Job, posts Events).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..adapters import kube
from ..api import conditions as c
from ..api.clock import format_time, parse_duration, parse_time
from ..api.common import Condition
from ..api.dataset import (
    REFRESH_ANNOTATION,
    CheckBlocked,
    DatasetCheck,
    DatasetSpec,
    DatasetStatus,
    DatasetVersion,
)
from ..api.reasons import ConditionStatus, DatasetPhase, EventReason, Reason
from ..config import OperatorConfig
from ..resources.jobs import (
    child_name,
    desired_dataset_check_job,
    job_finished,
    latest_result,
    pod_cannot_start,
    pod_started,
)
from ..resources.results import CheckResult, read_check_result
from ..resources.store import another_namespaces_artifacts
from ..storage import dataset_prefix
from .cache import CACHE
from .children import create_job, expire_recorded_job
from .contract import Events, Observed, Outcome
from .loop import register_reconciler
from .reads import artifact_store_problem, job_pods, namespace_config, read_child

EPOCH = "1970-01-01T00:00:00Z"
# After a check Job that ended before its pod started: the wait before the next, by how many ended so
# (the last one repeats). Each Job already waited its deadline (10 min) for the pod.
CHECK_RETRY_SECONDS = (10.0, 30.0, 60.0, 120.0, 300.0)


def check_retry_at(blocked: CheckBlocked | None) -> dt.datetime | None:
    """When the next check Job may start after one ended before its pod started; None when none did."""
    if blocked is None or blocked.ended_at is None or blocked.ended_jobs < 1:
        return None
    wait = CHECK_RETRY_SECONDS[min(blocked.ended_jobs, len(CHECK_RETRY_SECONDS)) - 1]
    return parse_time(blocked.ended_at) + dt.timedelta(seconds=wait)  # type: ignore[operator]


def next_check_at(
    spec: DatasetSpec, status: DatasetStatus, *, generation: int | None, refresh_requested: str | None = None
) -> dt.datetime | None:
    """When the next check is due: now for a new generation, or for a refresh requested (annotation
    mlops.dev/refresh-requested: a retraining trigger that fired needs data read after it) after the
    latest check started; after the backoff when the last check Job ended before its pod started (bundled
    data too: it was never read); for changeable sources once the refresh interval has passed since the
    last check; never again for bundled data (it does not change)."""
    if status.checked_generation != generation:
        return parse_time(EPOCH)
    requested = parse_time(refresh_requested) if refresh_requested else None
    started = parse_time(status.check_started_at) if status.check_started_at else None
    if requested is not None and (started is None or started < requested):
        return parse_time(EPOCH)
    retry = check_retry_at(status.blocked_check)
    if retry is not None:
        return retry
    if spec.source.builtin or not status.last_checked_at:
        return None  # bundled data never changes; or the check of this generation has not finished
    return parse_time(status.last_checked_at) + dt.timedelta(seconds=parse_duration(spec.refresh_interval))


def check_due(
    spec: DatasetSpec, status: DatasetStatus, *, generation: int | None, now: str, refresh_requested: str | None = None
) -> bool:
    """A new check is due for a new generation or a refresh requested, after a check that could not start,
    and for changeable sources once the refresh interval passed."""
    due = next_check_at(spec, status, generation=generation, refresh_requested=refresh_requested)
    return due is not None and due <= parse_time(now)


def apply_check_result(
    status: DatasetStatus, result: CheckResult | dict[str, Any], *, spec: DatasetSpec, now: str
) -> DatasetStatus:
    """Status after a finished check: a new version joins the history; a failure keeps the last good one.
    Either way the source was looked at: a wait for a pod that could not start is over. `result` is the
    typed envelope, or its wire form (data.check.run_check), read through read_check_result."""
    if not isinstance(result, CheckResult):
        result = read_check_result(result) or CheckResult(ok=False)
    generation = status.checked_generation
    status = status.model_copy(update={"blocked_check": None})
    if not result.ok:
        failed = DatasetCheck(
            succeeded=False,
            reason=result.reason or Reason.SOURCE_UNAVAILABLE,
            message=result.message,
            at=now,
            generation=generation,
        )
        return status.model_copy(update={"last_checked_at": now, "last_check": failed})
    assert result.version is not None and result.rows is not None and result.snapshot_uri  # CheckResult says so
    version, rows = result.version, result.rows
    # A version seen before keeps the entry (and the time) it was first seen with.
    entry = next((h for h in status.history if h.version == version), None) or DatasetVersion(
        version=version, rows=rows, snapshot_uri=result.snapshot_uri, created_at=now
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
            "source_read_at": status.check_started_at or now,
            "version": version,
            "rows": rows,
            "columns": list(result.columns or []),
            "column_count": result.column_count,
            "snapshot_uri": result.snapshot_uri,
            "profile_ref": result.profile_uri,
            "profile_sha256": result.profile_sha256,
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


def blocked_words(status: DatasetStatus) -> str:
    """What a check that cannot start waits for, in words (the Ready and Validated message)."""
    blocked = status.blocked_check
    assert blocked is not None
    ended = f"{blocked.ended_jobs} check Job(s) ended before their pod started" if blocked.ended_jobs else ""
    if status.active_check:
        words = f"{blocked.message}; check Job {status.active_check} waits for that and goes on once it is fixed"
        return words + (f" ({ended} before it)" if ended else "")
    retry = check_retry_at(blocked)
    return f"{blocked.message}; {ended}, the next starts at {format_time(retry) if retry else 'once due'}"


def dataset_conditions(
    status: DatasetStatus, *, generation: int | None, now: str
) -> tuple[list[Condition], DatasetPhase]:
    """Validated and Ready conditions, and the phase, from the status fields."""
    check, version = status.last_check, status.version
    true, false, unknown = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    pending, passed = Reason.VALIDATION_PENDING, Reason.VALIDATION_SUCCEEDED
    stale = check is not None and check.generation not in (None, generation)
    kept = f"; the last good version {version} stays available" if version else "; no version is available"
    if status.blocked_check is not None:
        # Not a failure: nothing is known about the source until a check's pod runs.
        words = blocked_words(status)
        validated = (unknown, status.blocked_check.reason, words)
        ready = (false, status.blocked_check.reason, words + kept)
        phase = DatasetPhase.PENDING
    elif check is None:
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
        ready = (false, check.reason, check.message + kept)
        phase = DatasetPhase.FAILED
    conditions = status.conditions
    for type_, (state, reason, message) in ((c.VALIDATED, validated), (c.READY, ready)):
        conditions = c.set_condition(
            conditions,
            type_=type_,
            status=state,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
            typed=True,
        )
    return conditions, phase


def with_conditions(status: DatasetStatus, *, generation: int | None, now: str) -> DatasetStatus:
    """The status as written: conditions and phase derived from the fields, the generation observed."""
    conditions, phase = dataset_conditions(status, generation=generation, now=now)
    return status.model_copy(update={"conditions": conditions, "phase": phase, "observed_generation": generation})


def wire(status: DatasetStatus) -> dict[str, Any]:
    """The status as the API stores it; a field left None is absent (the patch removes it)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class CheckJobSeen:
    """What the operator sees of the check Job under way (observe_check_job); fold_check_job decides on it."""

    name: str
    exists: bool = True
    finished: str | None = None  # its Complete or Failed condition; None while it runs
    failure: str = ""  # the reason of its Failed condition (DeadlineExceeded, BackoffLimitExceeded, ...)
    result: CheckResult | None = None  # what its pod reported, if it did
    cannot_start: str | None = None  # why its pod cannot start, in the kubelet's words (stuck long enough)
    started: bool = False  # a container of its pod runs or ran
    look_again: dt.datetime | None = None  # when its pod, still waiting, would count as stuck


def observe_check_job(namespace: str, name: str, *, uid: str, now: dt.datetime) -> CheckJobSeen:
    """The check Job and its pods, from the cache (reads only)."""
    job = read_child("jobs", namespace, name, uid=uid)
    if job is None:
        return CheckJobSeen(name=name, exists=False)
    pods = job_pods(namespace, job)
    finished = job_finished(job)
    cannot_start, look_again = pod_cannot_start(pods, now=now) if finished is None else (None, None)
    return CheckJobSeen(
        name=name,
        finished=finished["type"] if finished else None,
        failure=(finished or {}).get("reason") or "",
        result=read_check_result(latest_result(pods)) if finished else None,
        cannot_start=cannot_start,
        started=pod_started(pods),
        look_again=look_again,
    )


def _job_outcome(seen: CheckJobSeen, blocked: CheckBlocked | None) -> CheckResult | None:
    """What a finished (or vanished) check Job tells about the source; None when its pod never started
    (it tells nothing: the check is retried, not failed)."""
    if seen.result is not None:
        if seen.finished == "Complete" or not seen.result.ok:
            return seen.result
        message = f"the check Job failed ({seen.failure or 'no reason'}) after reporting a result"
        return CheckResult(ok=False, reason=Reason.SOURCE_UNAVAILABLE, message=message)
    if blocked is not None and blocked.job == seen.name and not seen.started:
        return None  # its pod was seen stuck and never ran
    if not seen.exists:
        return CheckResult(ok=False, reason=Reason.SOURCE_UNAVAILABLE, message=f"check Job {seen.name} disappeared")
    failed = f"the check Job failed ({seen.failure or 'no result'})"
    return CheckResult(ok=False, reason=Reason.SOURCE_UNAVAILABLE, message=failed)


def attributed_check(result: CheckResult, *, namespace: str, name: str) -> CheckResult:
    """A passed check whose snapshot or profile is not where this Dataset's version of that content is
    stored (storage.dataset_prefix) is no evidence of this Dataset: it fails, saying so."""
    if not result.ok or result.version is None:
        return result
    key = dataset_prefix(namespace, name, result.version)
    wrong = [
        f"{field} {uri}"
        for field, uri, file in (
            ("snapshot", result.snapshot_uri, "data.csv"),
            ("profile", result.profile_uri, "profile.json"),
        )
        if uri is not None and not uri.endswith(f"/{key}/{file}")
    ]
    if not wrong:
        return result
    message = f"the check Job reported {' and '.join(wrong)}, not this Dataset's version (…/{key}/)"
    return CheckResult(ok=False, reason=Reason.UNATTRIBUTED_RESULT, message=message[:1000])


def fold_check_job(
    status: DatasetStatus, seen: CheckJobSeen, *, spec: DatasetSpec, now: str, dataset: tuple[str, str] | None = None
) -> DatasetStatus:
    """Status after looking at the check Job under way (pure): its result once it finished; while its pod
    cannot start, the wait for that cause (not a failure, the Job stays); once its pod runs, the wait is
    over; a Job that ended before its pod ever started leaves the time the next may start."""
    blocked = status.blocked_check
    if seen.exists and seen.finished is None:
        if seen.cannot_start:
            waiting = (
                CheckBlocked(reason=Reason.POD_CANNOT_START, message=seen.cannot_start, job=seen.name, since=now)
                if blocked is None
                else blocked.model_copy(update={"message": seen.cannot_start, "job": seen.name})
            )
            return status.model_copy(update={"blocked_check": waiting})
        if seen.started and blocked is not None:
            return status.model_copy(update={"blocked_check": None})
        return status
    result = _job_outcome(seen, blocked)
    if result is None:
        assert blocked is not None
        ended = blocked.model_copy(update={"ended_jobs": blocked.ended_jobs + 1, "ended_at": now})
        return status.model_copy(update={"active_check": None, "blocked_check": ended})
    if dataset is not None:
        result = attributed_check(result, namespace=dataset[0], name=dataset[1])
    return apply_check_result(status, result, spec=spec, now=now).model_copy(update={"active_check": None})


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
        return None, (
            f"Dataset {source.base} has the target {base_target!r}, this one {spec.target!r}: the "
            "captured labels are added as the base's target, so the two must be the same column"
        )
    config, _ = namespace_config(namespace)
    if not config.uses_object_store:
        return None, f"capture needs an object store (s3://); this namespace's artifact store is {config.store_uri}"
    return {"baseSnapshotUri": snapshot, "capturePrefix": f"captures/{namespace}/{source.model_deployment}"}, None


def _refused_source(spec: DatasetSpec, namespace: str) -> CheckResult | None:
    """An s3 source inside the artifact store under another namespace's artifacts: refused, never read (the
    check Job holds the store's credentials, which could read them)."""
    if not spec.source.s3:
        return None
    config, _ = namespace_config(namespace)
    stores = {config.store_uri, OperatorConfig.from_env().store_uri}
    for store in sorted(stores):
        other = another_namespaces_artifacts(spec.source.s3.uri, store_uri=store, namespace=namespace)
        if other:
            message = (
                f"{spec.source.s3.uri} is inside the artifact store {store}, among the artifacts of {other}: "
                f"a Dataset of namespace {namespace} may read its own namespace's artifacts or data outside the store"
            )
            return CheckResult(ok=False, reason=Reason.SOURCE_REFUSED, message=message)
    return None


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
    spec: DatasetSpec, observed: Observed, status: DatasetStatus, events: Events
) -> tuple[DatasetStatus, dt.datetime | None]:
    """Fold what the check Job under way shows into status, and add the Events a person wants: a new
    version, a failed check, a pod that cannot start; while its pod might still turn out stuck, when to
    look again."""
    if not status.active_check:
        return status, None
    seen = observe_check_job(observed.namespace, status.active_check, uid=observed.uid, now=parse_time(observed.now))
    before = status
    status = fold_check_job(status, seen, spec=spec, now=observed.now, dataset=(observed.namespace, observed.name))
    blocked, was = status.blocked_check, before.blocked_check
    if status.active_check is None and blocked is not None:  # ended before its pod started
        events.warn(reason=blocked.reason, message=blocked_words(status))
    elif blocked is not None and (was is None or was.job != blocked.job):  # once per Job seen stuck
        events.warn(reason=blocked.reason, message=blocked.message)
    elif status.active_check is None and status.last_check is not None:
        check = status.last_check
        if check.succeeded and status.version != before.version:
            events.info(reason=EventReason.NEW_VERSION, message=f"{status.version}: {status.rows} rows")
        elif not check.succeeded:
            events.warn(reason=check.reason, message=check.message)
    return status, seen.look_again if status.active_check else None


def start_check(spec: DatasetSpec, observed: Observed, status: DatasetStatus, events: Events) -> DatasetStatus:
    """Start the check that is due: a missing source object fails it at once, otherwise a Job runs it."""
    namespace = observed.namespace
    status = status.model_copy(update={"checked_generation": observed.generation})
    refused = _refused_source(spec, namespace)
    if refused:
        return apply_check_result(status, refused, spec=spec, now=observed.now)
    problem = _source_problem(spec, namespace)
    if problem:
        missing = CheckResult(ok=False, reason=Reason.SOURCE_UNAVAILABLE, message=problem)
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
    CACHE.observe("jobs", create_job(namespace, job, uid=observed.uid))
    job_name = job["metadata"]["name"]
    blocked = status.blocked_check
    again = f" (again: Job {blocked.job} ended before its pod started)" if blocked and blocked.ended_at else ""
    events.info(reason=EventReason.CHECK_STARTED, message=f"Job {job_name} checks the source{again}")
    return status.model_copy(update={"checks": number, "active_check": job_name, "check_started_at": observed.now})


def reconcile_dataset(spec: DatasetSpec, observed: Observed, logger: Any) -> Outcome:
    events = Events()
    recorded = DatasetStatus.model_validate(observed.status)
    if recorded.checks and not recorded.active_check:  # the last check's outcome is recorded in status
        ttl = OperatorConfig.from_env().finished_job_ttl_seconds
        last = child_name(observed.name, f"check-{recorded.checks}")
        expire_recorded_job(observed.namespace, last, uid=observed.uid, seconds=ttl)
    status, look_again = finish_active_check(spec, observed, DatasetStatus.model_validate(observed.status), events)
    refresh = (observed.body["metadata"].get("annotations") or {}).get(REFRESH_ANNOTATION)
    due = not status.active_check and check_due(
        spec, status, generation=observed.generation, now=observed.now, refresh_requested=refresh
    )
    store_problem = artifact_store_problem(observed.namespace) if due else None
    if store_problem:
        reported = artifact_store_missing(status, problem=store_problem, now=observed.now)
        if reported is not None:
            status = reported
            events.warn(reason=Reason.ARTIFACT_STORE_MISSING, message=store_problem)
    elif due:
        status = start_check(spec, observed, status, events)
    status = with_conditions(status, generation=observed.generation, now=observed.now)
    # A running check wakes the Dataset through its Job's and its pods' events (a pod that cannot start
    # is looked at again once it counts as stuck); otherwise the next check (a retry after a Job whose
    # pod never started, or the refresh) is the deadline. A missing claim wakes it when the claim appears
    # (the claims are watched).
    waiting = status.active_check or store_problem
    wake_at = (
        look_again
        if waiting
        else next_check_at(spec, status, generation=observed.generation, refresh_requested=refresh)
    )
    return Outcome(status=wire(status), wake_at=wake_at, events=events)


register_reconciler("datasets", DatasetSpec, reconcile_dataset)
