"""What every reconcile shares: parsing the body into its model, the status patch, timestamps.

A spec that fails the model (because it slipped past the CRD schema) is reported, not raised:
the object gets Ready=False with reason InvalidSpec and the handler returns normally, so kopf does
not retry it in a loop. The next spec change reconciles again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..api import conditions as c

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


def plain_status(body: Any) -> dict[str, Any]:
    """The object's status as a plain dict, without kopf's bookkeeping."""
    return {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}


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


def register_reconciler(plural: str, spec_model: type[BaseModel], reconcile: Any, *, resync_seconds: float) -> None:
    """Route create, update, resume and a periodic resync of one kind to its one reconcile function.

    `reconcile(spec, observed, logger)` gets a valid spec and returns an Outcome (the whole desired
    status); this parses the body (reporting InvalidSpec instead of calling it), then writes the
    difference once. Handlers are synchronous: kopf runs them in its thread pool, so blocking API
    calls and dataset work never block the event loop.
    """
    import kopf

    from ..api import GROUP, VERSION

    def apply(body: Any, patch: Any, logger: Any, **_: Any) -> None:
        observed = Observed(
            body=body, status=plain_status(body), generation=body.get("metadata", {}).get("generation"), now=now_iso()
        )
        spec, error = parse_spec(spec_model, body)
        if spec is None:
            logger.warning(f"invalid spec: {error}")
            status = invalid_spec_status(
                observed.status, message=error, generation=observed.generation, now=observed.now
            )
            outcome = Outcome(status=status)
        else:
            outcome = reconcile(spec, observed, logger)
        patch.status.update(status_patch(observed.status, outcome.status))
        current = dict(body.get("metadata", {}).get("labels") or {})
        for key, value in outcome.labels.items():
            if current.get(key) != value:
                patch.metadata.labels[key] = value
        if ready_reason_changed(observed.status, outcome.status):
            ready = c.find_condition(outcome.status.get("conditions") or [], c.READY) or {}
            post = kopf.info if ready.get("status") == "True" else kopf.warn
            post(body, reason=ready.get("reason", ""), message=ready.get("message", ""))

    handler_id = f"reconcile-{plural}"
    kopf.on.resume(GROUP, VERSION, plural, id=handler_id)(apply)
    kopf.on.create(GROUP, VERSION, plural, id=handler_id)(apply)
    kopf.on.update(GROUP, VERSION, plural, id=handler_id)(apply)
    kopf.timer(GROUP, VERSION, plural, id=f"resync-{plural}", interval=resync_seconds, initial_delay=resync_seconds)(
        apply
    )
