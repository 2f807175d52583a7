"""A rollback is a record on the version, not a memory of one ModelDeployment: pure functions.

The ModelDeployment that rolls a version back marks its TrainingRun (label and annotation
`mlops.dev/rolled-back`); the TrainingRun's reconcile then records it in status and hands the champion
title back to the last good version, and every ModelDeployment of the model skips the version. The mark
is level-based: a ModelDeployment writes it for each version it holds as failed whose run lacks it, so
a crash between the rollback and the mark only delays it. `kubectl mlops retry RUN` removes the mark
and stamps `mlops.dev/retried-at`: a rollback recorded before that moment no longer holds the version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..api.clock import parse_time
from ..api.modeldeployment import ModelDeploymentStatus
from ..api.trainingrun import RollbackRecord
from . import RETRIED_ANNOTATION, ROLLED_BACK_ANNOTATION, ROLLED_BACK_LABEL

ROLLBACK_OUTCOMES = ("RolledBack", "Aborted")  # what keeps a version out of the ModelDeployment that did it
# What marks the version for every ModelDeployment: the evidence of an analysis, a progress deadline or
# the guard. An abort is a person's decision about one rollout ("not now", "not here"), not evidence
# about the version: it holds the version in that ModelDeployment only.
MARKING_OUTCOMES = ("RolledBack",)


def rollback_record(run: Mapping[str, Any]) -> RollbackRecord | None:
    """The rollback mark a TrainingRun carries, or None. A label without a readable annotation still
    holds the version (the label is the query users see): the record then says only that."""
    meta = run.get("metadata") or {}
    if (meta.get("labels") or {}).get(ROLLED_BACK_LABEL) != "true":
        return None
    try:
        record = json.loads((meta.get("annotations") or {}).get(ROLLED_BACK_ANNOTATION) or "{}")
        return RollbackRecord.model_validate(record)
    except ValueError:
        return RollbackRecord(model_deployment="?", reason="RolledBack", message="the mark's record is unreadable")


def last_rollback_at(status: ModelDeploymentStatus, version: str) -> str | None:
    """When this ModelDeployment last rolled `version` back (its history), if it still says."""
    return next((h.at for h in status.history if h.version == version and h.outcome in ROLLBACK_OUTCOMES), None)


def retried_since(run: Mapping[str, Any] | None, rolled_back_at: str | None) -> bool:
    """Whether `kubectl mlops retry` cleared the version after the rollback at `rolled_back_at`."""
    stamp = (((run or {}).get("metadata") or {}).get("annotations") or {}).get(RETRIED_ANNOTATION)
    retried = parse_time(stamp) if stamp else None
    if retried is None:
        return False
    at = parse_time(rolled_back_at) if rolled_back_at else None
    return at is None or retried >= at


def retried_versions(status: ModelDeploymentStatus, runs: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The versions this ModelDeployment holds as failed that were retried since: they may be rolled out again."""
    return frozenset(v for v in status.failed_versions if retried_since(runs.get(v), last_rollback_at(status, v)))


def marks_to_write(
    status: ModelDeploymentStatus, runs: Mapping[str, Mapping[str, Any]], *, md: str
) -> dict[str, dict[str, Any]]:
    """The metadata patch (labels + annotations) for each version this ModelDeployment rolled back on
    evidence (not aborted) whose TrainingRun does not carry the mark yet (and was not retried since);
    empty when all are marked."""
    patches = {}
    for version in status.failed_versions:
        run = runs.get(version)
        if run is None or rollback_record(run) is not None:
            continue
        at = last_rollback_at(status, version)
        if retried_since(run, at):
            continue
        entry = next((h for h in status.history if h.version == version and h.outcome in ROLLBACK_OUTCOMES), None)
        if entry is None or entry.outcome not in MARKING_OUTCOMES:
            continue
        reason, _, message = (entry.reason if entry else "RolledBack").partition(": ")
        record = RollbackRecord(model_deployment=md, reason=reason or "RolledBack", message=message[:500], at=at)
        patches[version] = {
            "labels": {ROLLED_BACK_LABEL: "true"},
            "annotations": {ROLLED_BACK_ANNOTATION: record.model_dump_json(by_alias=True, exclude_none=True)},
        }
    return patches
