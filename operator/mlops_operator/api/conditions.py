"""Condition types, reasons (CamelCase constants, all in one place) and the pure condition helpers.

Conditions follow metav1.Condition: a condition's lastTransitionTime changes only when its status does.
"""

from __future__ import annotations

from typing import Any

# Condition types.
READY = "Ready"
VALIDATED = "Validated"  # Dataset: the current source content passed the schema
SUCCEEDED = "Succeeded"  # TrainingRun: the Job finished and results were recorded
PROMOTED = "Promoted"  # TrainingRun: this run is the champion of its model name
AVAILABLE = "Available"  # ModelDeployment: the stable version serves
PROGRESSING = "Progressing"  # ModelDeployment: a rollout is under way
DEGRADED = "Degraded"  # ModelDeployment: a version was rolled back

# Reasons shared by all kinds.
INVALID_SPEC = "InvalidSpec"
RECONCILING = "Reconciling"
RECONCILE_ERROR = "ReconcileError"
ARTIFACT_STORE_MISSING = "ArtifactStoreMissing"

# Dataset reasons.
VALIDATION_PENDING = "ValidationPending"
VALIDATION_SUCCEEDED = "ValidationSucceeded"
SOURCE_UNAVAILABLE = "SourceUnavailable"
SCHEMA_VIOLATION = "SchemaViolation"
CHECKSUM_MISMATCH = "ChecksumMismatch"

# TrainingRun reasons.
DATASET_NOT_READY = "DatasetNotReady"
JOB_CREATED = "JobCreated"
JOB_RUNNING = "JobRunning"
JOB_SUCCEEDED = "JobSucceeded"
JOB_FAILED = "JobFailed"
DEADLINE_EXCEEDED = "DeadlineExceeded"

# ModelDeployment reasons.
MODEL_NOT_FOUND = "ModelNotFound"
ROLLOUT_PENDING = "RolloutPending"


def find_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    """The condition of a type, or None."""
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(
    conditions: list[dict[str, Any]],
    *,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """A new list of conditions with one condition set, keeping its transition time if status is unchanged."""
    status_text = status if isinstance(status, str) else ("True" if status else "False")
    previous = find_condition(conditions, type_)
    transition = now
    if previous is not None and previous.get("status") == status_text and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    new = {
        "type": type_,
        "status": status_text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [new]
