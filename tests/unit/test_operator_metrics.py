"""The operator's own metrics: the canary weight a dashboard plots, and one count per rollback."""

from __future__ import annotations

from prometheus_client import REGISTRY

from mlops_operator.api.modeldeployment import ModelDeploymentStatus
from mlops_operator.controllers.contract import Observed
from mlops_operator.controllers.modeldeployment import record_metrics

LABELS = {"namespace": "ml", "modeldeployment": "metrics-test"}


def observed(status: dict) -> Observed:
    return Observed(
        body={"metadata": {"name": "metrics-test", "namespace": "ml"}},
        status=status,
        generation=1,
        now="2026-01-01T00:00:00Z",
    )


def rollbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("mlops_modeldeployment_rollbacks_total", {**LABELS, "reason": reason}) or 0


def status(body: dict) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate(body)


def test_weight_follows_the_canary_and_drops_to_zero_without_one() -> None:
    canary = status({"stable": {"version": "a"}, "canary": {"version": "b", "weight": 25}})
    record_metrics(observed({}), previous=status({}), status=canary)
    assert REGISTRY.get_sample_value("mlops_modeldeployment_canary_weight", LABELS) == 25
    record_metrics(observed({}), previous=canary, status=status({"stable": {"version": "b"}}))
    assert REGISTRY.get_sample_value("mlops_modeldeployment_canary_weight", LABELS) == 0


def test_a_rollback_is_counted_once_however_often_it_is_reconciled() -> None:
    before = rollbacks("AnalysisFailed")
    degraded = status(
        {"stable": {"version": "a"}, "degraded": {"reason": "AnalysisFailed", "message": "accuracy 0.3 < 0.8"}}
    )
    record_metrics(observed({}), previous=status({"stable": {"version": "a"}}), status=degraded)
    record_metrics(observed({}), previous=degraded, status=degraded)
    assert rollbacks("AnalysisFailed") == before + 1
