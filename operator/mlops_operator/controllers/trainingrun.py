"""TrainingRun controller: pin the dataset version, run the training Job, record results, promote."""

from __future__ import annotations

from typing import Any

from ..api import conditions as c
from ..api.trainingrun import TrainingRunSpec
from .common import Observed, register_reconciler


async def reconcile_trainingrun(spec: TrainingRunSpec, observed: Observed, logger: Any) -> dict[str, Any]:
    """The desired status of a TrainingRun."""
    conditions = c.set_condition(
        observed.status.get("conditions") or [],
        type_=c.READY,
        status=False,
        reason=c.DATASET_NOT_READY,
        message=f"waiting for Dataset {spec.dataset_ref.name} to have a validated version",
        generation=observed.generation,
        now=observed.now,
    )
    return {**observed.status, "observedGeneration": observed.generation, "phase": "Pending", "conditions": conditions}


register_reconciler("trainingruns", TrainingRunSpec, reconcile_trainingrun, resync_seconds=30)
