"""What a reconcile is given and what it returns: the spec parsed into its model (or why it cannot be),
`Observed` (the object, its status, the moment) and `Outcome` (the whole desired status, the object's
labels, the Events to post, when to look again); and the merge patch that turns one status into the other.

A spec that fails the model (because it slipped past the CRD schema) is reported, not raised:
the object gets Ready=False with reason InvalidSpec and the handler returns normally, so kopf does
not retry it in a loop. The next spec change reconciles again.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..api import conditions as c
from ..api.clock import format_time, parse_time, utc_now
from ..api.reasons import Reason
from ..resources.ownership import NameConflict

M = TypeVar("M", bound=BaseModel)


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


@dataclass(frozen=True)
class Event:
    """An Event on the reconciled object: a CamelCase reason and words; Normal, or Warning."""

    reason: str
    message: str
    warning: bool = False


class Events(list[Event]):
    """The Events a reconcile decides on, in order. It only collects them: the loop posts them once the
    status that records the change is written, so a reconcile that fails before that posts none, and the
    next one, seeing the same change, posts them then (once)."""

    def info(self, *, reason: str, message: str) -> None:
        self.append(Event(str(reason), message))

    def warn(self, *, reason: str, message: str) -> None:
        self.append(Event(str(reason), message, warning=True))


@dataclass
class Outcome:
    """What a reconcile wants written: the whole status, labels of the object itself (None removes one),
    and the Events to post on it."""

    status: dict[str, Any]
    labels: dict[str, str | None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # When the reconcile wants to look again by itself (a pause ending, the next measurement, a wait
    # timing out); None: only when something it depends on changes.
    wake_at: dt.datetime | None = None


def invalid_spec_outcome(observed: Observed, message: str) -> Outcome:
    """What a reconcile returns for a spec it cannot act on: Ready=False, InvalidSpec, with `message`, and
    a Warning Event with the same words when that is news (not on every look at the same spec)."""
    status = invalid_spec_status(observed.status, message=message, generation=observed.generation, now=observed.now)
    news = ready_reason_changed(observed.status, status)
    return Outcome(status=status, events=[Event(c.INVALID_SPEC, message, warning=True)] if news else [])


# How soon an object whose child's name is taken looks again: the object holding the name is not ours, so
# it is not watched, and its removal wakes nothing.
NAME_CONFLICT_RETRY_SECONDS = 30


def name_conflict_outcome(observed: Observed, conflict: NameConflict) -> Outcome:
    """What a reconcile that met a NameConflict comes to: nothing else of the status changes (the next
    reconcile, once the name is free, does what this one could not), Ready=False NameConflict naming the
    object, a Warning Event when that is news, and a look again soon."""
    conditions = c.set_condition(
        observed.status.get("conditions") or [],
        type_=c.READY,
        status=False,
        reason=Reason.NAME_CONFLICT,
        message=conflict.message,
        generation=observed.generation,
        now=observed.now,
    )
    status = {**observed.status, "conditions": conditions}
    news = ready_reason_changed(observed.status, status)
    wake = parse_time(observed.now) + dt.timedelta(seconds=NAME_CONFLICT_RETRY_SECONDS)
    events = [Event(Reason.NAME_CONFLICT, conflict.message, warning=True)] if news else []
    return Outcome(status=status, events=events, wake_at=wake)
