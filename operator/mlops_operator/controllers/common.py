"""What every reconcile shares: parsing the body into its model, the status patch, timestamps.

A spec that fails the model (because it slipped past the CRD schema) is reported, not raised:
the object gets Ready=False with reason InvalidSpec and the handler returns normally, so kopf does
not retry it in a loop. The next spec change reconciles again.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..api import conditions as c
from .metrics import RECONCILE_ERRORS, RECONCILE_SECONDS

M = TypeVar("M", bound=BaseModel)


def now_iso() -> str:
    """The current time as RFC 3339 with seconds, UTC, as Kubernetes writes it."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


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
    """The merge patch that turns status `old` into `new` (removed keys become None); kopf's keys kept."""
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new and k != "kopf"})
    return patch


def ready_reason_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the Ready condition's status or reason differs: Events are posted on changes only."""
    before = c.find_condition(old.get("conditions") or [], c.READY) or {}
    after = c.find_condition(new.get("conditions") or [], c.READY) or {}
    return (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason"))


def artifact_store_problem(namespace: str) -> str | None:
    """Jobs and servers mount the namespace's artifact claim: say so plainly when it is missing."""
    from .. import kube
    from ..config import OperatorConfig

    claim = OperatorConfig.from_env().artifact_pvc
    if kube.read_or_none(kube.core().read_namespaced_persistent_volume_claim, claim, namespace) is None:
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
    # Seconds after which the reconcile wants to look again (a pause ending): within two resync
    # intervals, it is honoured in the same handler call (timers drift by the handlers' own duration).
    requeue_after: float | None = None


_object_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_object_locks_guard = threading.Lock()


def _object_lock(uid: str) -> threading.Lock:
    with _object_locks_guard:
        return _object_locks[uid]


def register_reconciler(plural: str, spec_model: type[BaseModel], reconcile: Any, *, resync_seconds: float) -> None:
    """Route create, update, resume and a periodic resync of one kind to its one reconcile function.

    kopf only triggers: the handlers of one object are serialised by a lock, and each reads the object
    afresh, so a timer and a change handler never decide twice on the same stale body.
    `reconcile(spec, observed, logger)` gets a valid spec and returns an Outcome (the whole desired
    status); the difference is written to the status subresource once, inside the lock.
    Handlers are synchronous: kopf runs them in its thread pool, so blocking API calls never block
    the event loop.
    """
    import kopf

    from .. import kube
    from ..api import GROUP, VERSION

    def apply(body: Any, logger: Any, **_: Any) -> None:
        for _ in range(3):  # a few short requeues at most; the resync timer takes over after that
            started = time.monotonic()
            requeue = reconcile_once(body, logger)
            if requeue is None or requeue > 2 * resync_seconds:  # the next resync or the one after would be late
                return
            # Counted from when the reconcile read the clock, not from when it finished writing.
            # A worker thread of kopf's pool: the event loop is not blocked.
            time.sleep(max(0.0, started + requeue - time.monotonic()))

    def reconcile_once(body: Any, logger: Any) -> float | None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        with _object_lock(body["metadata"]["uid"]), RECONCILE_ERRORS.labels(plural).count_exceptions(), \
                RECONCILE_SECONDS.labels(plural).time():  # fmt: skip
            fresh = kube.get_custom(plural, namespace, name)
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return None
            observed = Observed(
                body=fresh, status=plain_status(fresh), generation=fresh["metadata"].get("generation"), now=now_iso()
            )
            spec, error = parse_spec(spec_model, fresh)
            if spec is None:
                logger.warning(f"invalid spec: {error}")
                status = invalid_spec_status(
                    observed.status, message=error, generation=observed.generation, now=observed.now
                )
                outcome = Outcome(status=status)
            else:
                outcome = reconcile(spec, observed, logger)
            patch = status_patch(observed.status, outcome.status)
            if patch:
                kube.patch_status(plural, namespace, name, patch)
            current = fresh["metadata"].get("labels") or {}
            labels = {k: v for k, v in outcome.labels.items() if current.get(k) != v}
            if labels:
                kube.patch_labels(plural, namespace, name, labels)
            ready = c.find_condition(outcome.status.get("conditions") or [], c.READY) or {}
            if ready.get("reason") == c.INVALID_SPEC and ready_reason_changed(observed.status, outcome.status):
                kopf.warn(fresh, reason=c.INVALID_SPEC, message=ready.get("message", ""))
            return outcome.requeue_after

    handler_id, retry = f"reconcile-{plural}", 5  # seconds before an unexpected failure is retried
    kopf.on.resume(GROUP, VERSION, plural, id=handler_id, backoff=retry)(apply)
    kopf.on.create(GROUP, VERSION, plural, id=handler_id, backoff=retry)(apply)
    kopf.on.update(GROUP, VERSION, plural, id=handler_id, backoff=retry)(apply)
    kopf.timer(GROUP, VERSION, plural, id=f"resync-{plural}", interval=resync_seconds, initial_delay=resync_seconds)(
        apply
    )
