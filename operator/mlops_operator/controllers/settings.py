"""Startup settings of the operator, so that kopf's bookkeeping stays out of what users own.

- handler progress lives in `status.kopf` (never in annotations Argo CD could diff);
- the last handled spec (kopf's diff base) sits in one annotation under our group;
- the finalizer is `mlops.dev/finalizer`;
- the children's watches are filtered by the API server (our labels), not in the operator.
"""

from __future__ import annotations

import logging

import kopf

from ..api import GROUP
from ..config import OperatorConfig
from .watches import watch_selectors

FINALIZER = f"{GROUP}/finalizer"
FIELD_MANAGER = "mlops-operator"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    settings.batching.error_delays = (1, 2, 5, 10, 30, 60)
    labels, fields = watch_selectors(OperatorConfig.from_env())
    for resource, selector in labels.items():
        settings.watching.label_selectors[resource] = selector
    for resource, selector in fields.items():
        settings.watching.field_selectors[resource] = selector
