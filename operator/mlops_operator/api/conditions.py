"""Condition helpers, and the condition types and reasons under the short names the code uses (`c.READY`).

Conditions follow metav1.Condition: a condition's lastTransitionTime changes only when its status does.
The enums themselves live in api.reasons; the names below are the same members, kept flat so that
`c.SOURCE_UNAVAILABLE` reads as before.

The helpers work on `list[Condition]`. Callers that still hold status as dicts pass `list[dict]` and get
dicts back; an empty list cannot say which it is, so it gives dicts unless `typed=True`.
"""

from __future__ import annotations

from typing import Any, overload

from .common import Condition
from .reasons import ConditionStatus, ConditionType, Reason

# Condition types.
READY = ConditionType.READY
VALIDATED = ConditionType.VALIDATED
SUCCEEDED = ConditionType.SUCCEEDED
PROMOTED = ConditionType.PROMOTED
AVAILABLE = ConditionType.AVAILABLE
PROGRESSING = ConditionType.PROGRESSING
DEGRADED = ConditionType.DEGRADED

# Reasons shared by all kinds.
INVALID_SPEC = Reason.INVALID_SPEC
RECONCILING = Reason.RECONCILING
RECONCILE_ERROR = Reason.RECONCILE_ERROR
ARTIFACT_STORE_MISSING = Reason.ARTIFACT_STORE_MISSING

# Dataset reasons.
VALIDATION_PENDING = Reason.VALIDATION_PENDING
VALIDATION_SUCCEEDED = Reason.VALIDATION_SUCCEEDED
SOURCE_UNAVAILABLE = Reason.SOURCE_UNAVAILABLE
SCHEMA_VIOLATION = Reason.SCHEMA_VIOLATION
CHECKSUM_MISMATCH = Reason.CHECKSUM_MISMATCH

# TrainingRun reasons.
DATASET_NOT_READY = Reason.DATASET_NOT_READY
JOB_CREATED = Reason.JOB_CREATED
JOB_RUNNING = Reason.JOB_RUNNING
JOB_SUCCEEDED = Reason.JOB_SUCCEEDED
JOB_FAILED = Reason.JOB_FAILED
DEADLINE_EXCEEDED = Reason.DEADLINE_EXCEEDED

# ModelDeployment reasons.
MODEL_NOT_FOUND = Reason.MODEL_NOT_FOUND
ROLLOUT_PENDING = Reason.ROLLOUT_PENDING


def condition_status(status: bool | str) -> ConditionStatus:
    """True/False as a condition status; a status given as text is checked."""
    if isinstance(status, bool):
        return ConditionStatus.TRUE if status else ConditionStatus.FALSE
    return ConditionStatus(status)


@overload
def find_condition(conditions: list[Condition], type_: str) -> Condition | None: ...
@overload
def find_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None: ...
def find_condition(conditions: list[Any], type_: str) -> Any:
    """The condition of a type, or None."""
    return next((x for x in conditions if _type_of(x) == type_), None)


@overload
def set_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
    typed: bool = ...,
) -> list[Condition]: ...
@overload
def set_condition(
    conditions: list[dict[str, Any]],
    *,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
    typed: bool = ...,
) -> list[dict[str, Any]]: ...
def set_condition(
    conditions: list[Any],
    *,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
    typed: bool = False,
) -> list[Any]:
    """A new list of conditions with one condition set (last), keeping its transition time if status is unchanged.

    Models in, models out; dicts in, dicts out; an empty list gives models only with `typed=True`.
    """
    state = condition_status(status)
    previous = find_condition(conditions, type_)
    transition = now
    if previous is not None and _status_of(previous) == state and _transition_of(previous):
        transition = _transition_of(previous)
    new = Condition(
        type=str(type_),
        status=state.value,
        reason=str(reason),
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    kept = [x for x in conditions if _type_of(x) != type_]
    as_models = any(isinstance(x, Condition) for x in conditions) or (typed and not conditions)
    if as_models:
        return [*(Condition.model_validate(x) for x in kept), new]
    # The dict shape written so far: observedGeneration is present even when None.
    return [*kept, {**new.model_dump(mode="json", by_alias=True), "observedGeneration": generation}]


def _type_of(condition: Condition | dict[str, Any]) -> Any:
    return condition.type if isinstance(condition, Condition) else condition.get("type")


def _status_of(condition: Condition | dict[str, Any]) -> Any:
    return condition.status if isinstance(condition, Condition) else condition.get("status")


def _transition_of(condition: Condition | dict[str, Any]) -> Any:
    return condition.last_transition_time if isinstance(condition, Condition) else condition.get("lastTransitionTime")
