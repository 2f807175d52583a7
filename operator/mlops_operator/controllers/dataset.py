"""Dataset controller: parse, validate the source content, version it, keep the profile."""

from __future__ import annotations

from typing import Any

from ..api import conditions as c
from ..api.dataset import DatasetSpec
from .common import Observed, register_reconciler


async def reconcile_dataset(spec: DatasetSpec, observed: Observed, logger: Any) -> dict[str, Any]:
    """The desired status of a Dataset."""
    conditions = c.set_condition(
        observed.status.get("conditions") or [],
        type_=c.VALIDATED,
        status="Unknown",
        reason=c.VALIDATION_PENDING,
        message="the source has not been validated yet",
        generation=observed.generation,
        now=observed.now,
    )
    conditions = c.set_condition(
        conditions,
        type_=c.READY,
        status=False,
        reason=c.VALIDATION_PENDING,
        message="waiting for the first validated version of the data",
        generation=observed.generation,
        now=observed.now,
    )
    return {**observed.status, "observedGeneration": observed.generation, "phase": "Pending", "conditions": conditions}


register_reconciler("datasets", DatasetSpec, reconcile_dataset, resync_seconds=60)
