"""What every reconcile shares: parsing the body into its model, the status patch, timestamps, and
the liveness probe that says whether reconciles still finish.

A spec that fails the model (because it slipped past the CRD schema) is reported, not raised:
the object gets Ready=False with reason InvalidSpec and the handler returns normally, so kopf does
not retry it in a loop. The next spec change reconciles again.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..adapters import kube
from ..api import conditions as c
from ..api.clock import format_time, utc_now
from ..config import OperatorConfig
from ..operator_metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES
from ..resources.jobs import pods_of_job
from .cache import CACHE, WAKERS

M = TypeVar("M", bound=BaseModel)
LOG = logging.getLogger("mlops_operator.reconcile")


def now_iso() -> str:
    """The current time in the one timestamp format of status (api.clock)."""
    return format_time(utc_now())


def parse_spec(model: type[M], body: Any) -> tuple[M | None, str]:
    """The spec parsed into its model, or None and a message a person can act on."""
    try:
        return model.model_validate(dict(body.get("spec") or {})), ""
    except ValidationError as error:
        return None, describe_validation_error(error)


def describe_validation_error(error: ValidationError) -> str:
    """`spec.a.b: problem; spec.c: problem` — field paths as the user wrote them."""
    parts = []
    for problem in error.errors():
        path = ".".join(str(p) for p in ("spec", *problem["loc"]))
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{path}: {message}" if problem["loc"] else f"spec.{message}")
    return "; ".join(parts)


def invalid_spec_status(status: dict[str, Any], *, message: str, generation: int | None, now: str) -> dict[str, Any]:
    """The status of an object whose spec cannot be parsed: everything else is left as it was."""
    conditions = c.set_condition(
        status.get("conditions") or [],
        type_=c.READY,
        status=False,
        reason=c.INVALID_SPEC,
        message=message,
        generation=generation,
        now=now,
    )
    return {**status, "conditions": conditions, "observedGeneration": generation, "phase": "Failed"}


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns status `old` into `new`; kopf's keys kept."""
    return merge_patch(old, new, keep=("kopf",))


def merge_patch(old: dict[str, Any], new: dict[str, Any], *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: objects are merged key by key, so a key
    gone from a nested object (a canary's pause start once its step completes) must be sent as None, or
    the API server keeps it; lists and values are replaced whole. Keys in `keep` are never removed."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before != value or key not in old:
            patch[key] = value
    patch.update({key: None for key in old if key not in new and key not in keep})
    return patch


def apply_merge_patch(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`document` after a JSON merge patch, as the API server applies it (the inverse of merge_patch)."""
    result = dict(document)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge_patch(result[key], value)
        else:
            result[key] = value
    return result


def ready_reason_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the Ready condition's status or reason differs: Events are posted on changes only."""
    before = c.find_condition(old.get("conditions") or [], c.READY) or {}
    after = c.find_condition(new.get("conditions") or [], c.READY) or {}
    return (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason"))


def namespace_config(namespace: str) -> tuple[OperatorConfig, str | None]:
    """The operator's configuration for the objects of a namespace: its own artifact store if the
    namespace names one (config.STORE_ANNOTATION), and why that annotation is refused, if it is."""
    found = CACHE.get("namespaces", "", namespace)
    if found is None and (found := kube.read_namespace(namespace)) is not None:  # watch not listed yet
        CACHE.observe("namespaces", found)
    return OperatorConfig.from_env().for_namespace(((found or {}).get("metadata") or {}).get("annotations"))


def artifact_store_problem(namespace: str) -> str | None:
    """Jobs and servers mount the namespace's artifact claim: say so plainly when it is missing. (With
    the artifacts in object storage there is no claim: what the pods cannot reach, they report.)"""
    config, refused = namespace_config(namespace)
    if refused:
        return refused
    if config.uses_object_store:
        return None
    claim = config.artifact_pvc
    # The claims are watched (by name): the cache answers, and a new claim wakes who waits for it.
    found = CACHE.get("persistentvolumeclaims", namespace, claim)
    if found is None and (found := kube.read_pvc(namespace, claim)) is not None:  # watch not listed yet
        CACHE.observe("persistentvolumeclaims", found)
    if found is None:
        return (
            f"the artifact store PersistentVolumeClaim {claim} does not exist in namespace {namespace}; "
            "create it (ReadWriteMany, or ReadWriteOnce on a single node) and this resumes by itself"
        )
    return None


def plain_status(body: Any) -> dict[str, Any]:
    """A deep copy of the object's status, without kopf's bookkeeping (reconcilers may change what they get)."""
    return copy.deepcopy({k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"})


@dataclass(frozen=True)
class Observed:
    """What a reconcile starts from: the object, its current status and the moment."""

    body: Any
    status: dict[str, Any]
    generation: int | None
    now: str

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.body["metadata"]["namespace"]

    @property
    def uid(self) -> str:
        return self.body["metadata"]["uid"]


@dataclass
class Outcome:
    """What a reconcile wants written: the whole status, and labels of the object itself (None removes one)."""

    status: dict[str, Any]
    labels: dict[str, str | None] = field(default_factory=dict)
    # When the reconcile wants to look again by itself (a pause ending, the next measurement, a wait
    # timing out); None: only when something it depends on changes.
    wake_at: dt.datetime | None = None


MIN_WAKE_SECONDS = 0.05  # a deadline already past is looked at again after this, never in a busy loop
SAFETY_RESYNC_SECONDS = 600.0  # a settled object is looked at this often, in case an event was missed
ERROR_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # after an unexpected failure, then steady
# Reconciles run in these threads: the API client and Prometheus client are synchronous.
RECONCILE_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="reconcile")


# A reconcile reads the cache, writes a few objects and starts measurements in their own pool: it takes
# milliseconds, seconds on a slow API server. One running longer than this is stuck (a request that
# never returns, a deadlock), and a replica whose reconcile threads are stuck serves nobody: the
# liveness probe then fails and the kubelet restarts it. Default: twice kopf's API request timeout
# (60 s, settings.py); the reconcilers' API client gives up on a request after 30 s (adapters/kube.py),
# so what trips it is a reconcile that waits on something no timeout covers (a lock, a bug).
# MLOPS_STUCK_RECONCILE_SECONDS sets it (config.py).
STUCK_RECONCILE_SECONDS = OperatorConfig.from_env().stuck_reconcile_seconds


@dataclass(frozen=True)
class RunningReconcile:
    key: tuple[str, str, str]  # (plural, namespace, name)
    seconds: float  # how long it has been running


class RunningReconciles:
    """When each running reconcile started; thread-safe (reconciles run in RECONCILE_THREADS, the probe
    reads from the event loop). A monotonic clock: a change of the wall clock is no age."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started: dict[int, tuple[tuple[str, str, str], float]] = {}
        self._tokens = itertools.count()

    @contextmanager
    def running(self, key: tuple[str, str, str]) -> Iterator[None]:
        """Record a reconcile of `key` while the block runs (however it ends)."""
        token = next(self._tokens)
        with self._lock:
            self._started[token] = (key, self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._started[token]

    def oldest(self) -> RunningReconcile | None:
        """The reconcile running longest, and for how long; None when none runs."""
        with self._lock:
            started = list(self._started.values())
        if not started:
            return None
        key, since = min(started, key=lambda entry: entry[1])
        return RunningReconcile(key=key, seconds=max(0.0, self._clock() - since))

    def __len__(self) -> int:
        with self._lock:
            return len(self._started)


RUNNING = RunningReconciles()
HANG_FOR_TESTS = OperatorConfig.from_env().test_hang_reconcile


def stuck_reconcile(running: RunningReconciles, *, bound: float = STUCK_RECONCILE_SECONDS) -> str | None:
    """Why the reconciles are stuck, in words; None while the oldest running one is within `bound`."""
    oldest = running.oldest()
    if oldest is None or oldest.seconds <= bound:
        return None
    plural, namespace, name = oldest.key
    return (
        f"the reconcile of {plural} {namespace}/{name} has run for {oldest.seconds:.0f}s "
        f"(more than {bound:.0f}s): reconciles are stuck"
    )


_probe_registered = False


def register_liveness_probe() -> None:
    """Make kopf's /healthz (`--liveness-port`) fail while a reconcile is stuck, not only when the event
    loop is: kopf answers /healthz by running the probe handlers, and a handler raising PermanentError
    fails the activity, which its HTTP server answers with 500. (A plain exception would be retried
    after kopf's backoff, 60 s, holding the request unanswered meanwhile: a failure only by the
    kubelet's timeout.) Registered once, with the first reconcile loop."""
    global _probe_registered
    if _probe_registered:
        return
    import kopf

    @kopf.on.probe(id="reconciles")
    async def reconciles(**_: Any) -> dict[str, Any]:  # async: no thread needed to answer
        problem = stuck_reconcile(RUNNING)
        if problem is not None:
            raise kopf.PermanentError(problem)
        oldest = RUNNING.oldest()
        return {"running": len(RUNNING), "oldestSeconds": round(oldest.seconds, 1) if oldest else 0.0}

    _probe_registered = True


def seconds_until(moment: dt.datetime | None, *, now: dt.datetime, cap: float) -> float:
    """How long to sleep before `moment` (at most `cap`; no moment: `cap`)."""
    if moment is None:
        return cap
    return min(cap, max(MIN_WAKE_SECONDS, (moment - now).total_seconds()))


def register_reconciler(plural: str, spec_model: type[BaseModel], reconcile: Any) -> None:
    """Run one kind's reconcile when something it depends on changes, and at the deadline it names.

    Each object gets one loop (a kopf daemon, so HA peering stops it on a standby replica): it
    reconciles, then sleeps until it is woken (a watch event that concerns it, see watches.py), or
    until the moment the reconcile returned in `Outcome.wake_at` (a pause ending, the next
    measurement, a wait timing out), or the slow safety resync. A settled object sleeps for the
    resync: no timer, no poll. Reconciles of one object never overlap; the reconcile reads from the
    cache and writes status once, only if it changed.
    `reconcile(spec, observed, logger)` gets a valid spec and returns an Outcome (the whole desired
    status).
    """
    import kopf

    from ..api import GROUP, VERSION

    register_liveness_probe()

    async def run(name: str, namespace: str, logger: Any, stopped: Any, **_: Any) -> None:
        key = (plural, namespace, name)
        woken = WAKERS.register(key)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # kopf's Event posting works from the threads too
        failures, trigger = 0, "start"
        try:
            while not stopped:
                woken.clear()  # before reading: an event during the reconcile wakes it again
                RECONCILES.labels(plural, trigger).inc()
                try:
                    wake_at = await loop.run_in_executor(
                        RECONCILE_THREADS, context.copy().run, reconcile_once, namespace, name, logger
                    )
                    failures, delay = 0, seconds_until(wake_at, now=utc_now(), cap=SAFETY_RESYNC_SECONDS)
                except Exception as error:  # reported and retried; the operator keeps serving the others
                    RECONCILE_ERRORS.labels(plural).inc()
                    delay = ERROR_RETRY_SECONDS[min(failures, len(ERROR_RETRY_SECONDS) - 1)]
                    failures += 1
                    logger.error(f"reconcile failed, retrying in {delay:.0f}s: {type(error).__name__}: {error}")
                trigger = await _sleep(woken, stopped, delay)
        finally:
            WAKERS.unregister(key, woken)

    def reconcile_once(namespace: str, name: str, logger: Any) -> dt.datetime | None:
        with RUNNING.running((plural, namespace, name)), RECONCILE_SECONDS.labels(plural).time():
            if HANG_FOR_TESTS and f"{namespace}/{name}" == HANG_FOR_TESTS:
                threading.Event().wait()  # fault injection (config.test_hang_reconcile): a stuck reconcile
            fresh = CACHE.get(plural, namespace, name)
            if fresh is None:  # not delivered by the watch yet: read it once
                fresh = kube.get_custom(plural, namespace, name)
                if fresh is not None:
                    CACHE.observe(plural, fresh)
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return None
            observed = Observed(
                body=fresh, status=plain_status(fresh), generation=fresh["metadata"].get("generation"), now=now_iso()
            )
            spec, error = parse_spec(spec_model, fresh)
            if spec is None:
                status = invalid_spec_status(
                    observed.status, message=error, generation=observed.generation, now=observed.now
                )
                outcome = Outcome(status=status)
            else:
                outcome = reconcile(spec, observed, logger)
            patch = status_patch(observed.status, outcome.status)
            if patch:
                CACHE.observe(plural, kube.patch_status(plural, namespace, name, patch))
                # Not kopf's per-object logger: that one posts every INFO line as an Event (a write).
                LOG.info(f"[{namespace}/{name}] {plural} reconciled: status.{{{','.join(sorted(patch))}}} written")
            current = fresh["metadata"].get("labels") or {}
            labels = {k: v for k, v in outcome.labels.items() if current.get(k) != v}
            if labels:
                CACHE.observe(plural, kube.patch_labels(plural, namespace, name, labels))
            ready = c.find_condition(outcome.status.get("conditions") or [], c.READY) or {}
            if ready.get("reason") == c.INVALID_SPEC and ready_reason_changed(observed.status, outcome.status):
                kopf.warn(fresh, reason=c.INVALID_SPEC, message=ready.get("message", ""))
            return outcome.wake_at

    kopf.daemon(GROUP, VERSION, plural, id=f"reconcile-{plural}", cancellation_timeout=10)(run)


async def _sleep(woken: asyncio.Event, stopped: Any, delay: float) -> str:
    """Wait for a wake-up, the operator stopping this object's loop, or `delay`; say which it was."""

    async def until_stopped() -> None:
        await stopped.wait()

    waits = [asyncio.ensure_future(woken.wait()), asyncio.ensure_future(until_stopped())]
    try:
        done, _ = await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    if waits[0] in done:
        return "event"
    return "deadline" if delay < SAFETY_RESYNC_SECONDS else "resync"


def read_child(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """A child from the cache; on a miss (just deleted, or its watch has not listed yet) from the API.
    A miss is a moment of change (the child is about to be created), never the idle state."""
    found = CACHE.get(plural, namespace, name)
    if found is None:
        read = {"jobs": kube.read_job, "deployments": kube.read_deployment}[plural]
        found = read(namespace, name)
        if found is not None:
            CACHE.observe(plural, found)
    return found


def job_pods(namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods this Job made (resources.jobs.pods_of_job: owned by its uid, running its template), from
    the cache; listed from the API when a finished Job has none there. Pods that only carry its labels
    are not its pods: their termination messages are never read."""
    selector = {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    pods = pods_of_job(CACHE.list("pods", namespace, labels=selector), job)
    if not pods:
        listed = kube.list_pods(namespace, selector)
        for pod in listed:
            CACHE.observe("pods", pod)
        pods = pods_of_job(listed, job)
    return pods
