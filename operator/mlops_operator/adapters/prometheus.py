"""Prometheus's HTTP API: the instant queries that measure a model version.

The only place the operator talks to Prometheus. What to query and how to judge the numbers is pure
(`rollout.analysis`); this module sends the queries, with timeouts, and turns every transport or
response problem into an Inconclusive result rather than an exception.
"""

from __future__ import annotations

import math

import requests

from ..api.modeldeployment import AnalysisMetric
from ..rollout.analysis import DEFAULT_METRICS, MetricResult, combine, promql, result

TIMEOUT = (3, 10)  # seconds: connect, read


def query(prometheus_url: str, expression: str) -> float | None:
    """The single number an instant query returns; None when there is no data. Raises on transport errors."""
    response = requests.get(f"{prometheus_url.rstrip('/')}/api/v1/query", params={"query": expression}, timeout=TIMEOUT)
    response.raise_for_status()
    data = response.json()["data"]
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    else:
        values = [sample["value"][1] for sample in data["result"]]
    numbers = [float(v) for v in values if math.isfinite(float(v))]
    return max(numbers) if numbers else None


def measure(
    metrics: list[AnalysisMetric], *, prometheus_url: str | None, namespace: str, model: str, version: str,
    window: str = "1m",
) -> tuple[str, str, list[MetricResult]]:  # fmt: skip
    """(phase, message, per-metric results) of one measurement of a version; no metrics: the defaults."""
    results = []
    for metric in metrics or DEFAULT_METRICS:
        if not prometheus_url:
            results.append(result(metric, None, missing="no Prometheus URL is configured"))
            continue
        expression = promql(metric, namespace=namespace, model=model, version=version, window=window)
        try:
            value = query(prometheus_url, expression)
        except (requests.RequestException, ValueError, KeyError) as error:
            results.append(result(metric, None, missing=f"Prometheus query failed: {error}"))
            continue
        results.append(result(metric, value))
    phase, message = combine(results)
    return phase, message, results
