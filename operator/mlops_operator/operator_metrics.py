"""The operator's own Prometheus metrics (`mlops-operator run --metrics-port`): what a dashboard plots
next to the model servers' metrics — the canary weight over time, rollbacks, reconcile cost."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "mlops_reconcile_duration_seconds",
    "Time one reconcile took, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RECONCILE_ERRORS = Counter("mlops_reconcile_errors", "Reconciles that raised (retried), by kind.", ["kind"])
CANARY_WEIGHT = Gauge(
    "mlops_modeldeployment_canary_weight",
    "Achieved share of traffic on the canary, percent.",
    ["namespace", "modeldeployment"],
)
ROLLBACKS = Counter(
    "mlops_modeldeployment_rollbacks", "Automatic or manual rollbacks.", ["namespace", "modeldeployment", "reason"]
)
API_REQUESTS = Counter(
    "mlops_operator_api_requests",
    "Requests the operator sent to the Kubernetes API, by client (reconciler or kopf), verb and resource.",
    ["client", "verb", "resource"],
)
RECONCILES = Counter(
    "mlops_reconciles", "Reconciles run, by kind and by what woke them (event, deadline, resync).", ["kind", "trigger"]
)
