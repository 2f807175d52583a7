"""ModelDeployment controller: serve the chosen model version and roll new ones out through canary steps."""

from __future__ import annotations

from typing import Any

from ..api import conditions as c
from ..api.modeldeployment import ModelDeploymentSpec
from .common import Observed, Outcome, register_reconciler


def reconcile_modeldeployment(spec: ModelDeploymentSpec, observed: Observed, logger: Any) -> Outcome:
    """The desired status of a ModelDeployment."""
    wanted = spec.model.name or spec.model.training_run
    conditions = c.set_condition(
        observed.status.get("conditions") or [],
        type_=c.READY,
        status=False,
        reason=c.MODEL_NOT_FOUND,
        message=f"no servable model version found for {wanted!r} yet",
        generation=observed.generation,
        now=observed.now,
    )
    status = {
        **observed.status,
        "observedGeneration": observed.generation,
        "phase": "Pending",
        "conditions": conditions,
    }
    return Outcome(status=status)


register_reconciler("modeldeployments", ModelDeploymentSpec, reconcile_modeldeployment, resync_seconds=30)
