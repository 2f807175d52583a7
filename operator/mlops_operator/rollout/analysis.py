"""Judging a model version on Prometheus: built-in templates and raw PromQL, each with a verdict.

A measurement is Successful when every metric passes, Failed when any metric fails, and Inconclusive
when Prometheus cannot be reached or has no data for a metric: never a pass on missing evidence.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

import requests

from ..api.modeldeployment import AnalysisMetric

TIMEOUT = (3, 10)
# {selector} is replaced by the version's label selector, {window} by the range.
TEMPLATES = {
    "errorRate": (
        'sum(rate(mlops_requests_total{{{selector},code=~"5.."}}[{window}])) '
        "/ sum(rate(mlops_requests_total{{{selector}}}[{window}]))",
        "max",
    ),
    "latencyP95": (
        "histogram_quantile(0.95, sum by (le) (rate(mlops_request_duration_seconds_bucket{{{selector}}}[{window}])))",
        "max",
    ),
    "accuracy": (
        "sum(increase(mlops_feedback_correct_total{{{selector}}}[{window}])) "
        "/ sum(increase(mlops_feedback_labels_total{{{selector}}}[{window}]))",
        "min",
    ),
    "drift": ("max(mlops_feature_psi{{{selector}}})", "max"),
}
DEFAULT_METRICS = [
    AnalysisMetric(name="error-rate", template="errorRate", threshold=0.05),
    AnalysisMetric(name="latency-p95", template="latencyP95", threshold=0.5),
]
_CONDITION = re.compile(r"^result\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.eE+-]+)$")
_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
              "!=": operator.ne}  # fmt: skip


@dataclass(frozen=True)
class MetricResult:
    metric: str
    phase: str  # Successful | Failed | Inconclusive
    value: float | None
    message: str


def promql(metric: AnalysisMetric, *, namespace: str, model: str, version: str, window: str) -> str:
    selector = f'namespace="{namespace}",model="{model}",version="{version}"'
    if metric.template:
        return TEMPLATES[metric.template][0].format(selector=selector, window=window)
    return (metric.query or "").replace("{{version}}", version).replace("{{namespace}}", namespace)


def judge(metric: AnalysisMetric, value: float) -> tuple[bool, str]:
    """Whether a value passes, and the comparison in words (the words Events and status show)."""
    if metric.template:
        bound = TEMPLATES[metric.template][1]
        passed = value <= metric.threshold if bound == "max" else value >= metric.threshold
        sign = ("<=" if passed else ">") if bound == "max" else (">=" if passed else "<")
        return passed, f"{metric.name} {value:.4g} {sign} {metric.threshold:g}"
    op, bound = _CONDITION.match(metric.success_condition or "").groups()
    passed = _OPERATORS[op](value, float(bound))
    return passed, f"{metric.name} {value:.4g} ({'meets' if passed else 'fails'} {metric.success_condition})"


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
    """(phase, message, per-metric results) of one measurement of a version."""
    results = []
    for metric in metrics or DEFAULT_METRICS:
        if not prometheus_url:
            results.append(MetricResult(metric.name, "Inconclusive", None, "no Prometheus URL is configured"))
            continue
        try:
            value = query(prometheus_url, promql(metric, namespace=namespace, model=model, version=version,
                                                 window=window))  # fmt: skip
        except (requests.RequestException, ValueError, KeyError) as error:
            results.append(MetricResult(metric.name, "Inconclusive", None, f"Prometheus query failed: {error}"))
            continue
        if value is None:
            results.append(MetricResult(metric.name, "Inconclusive", None, f"{metric.name}: no data yet"))
            continue
        passed, words = judge(metric, value)
        results.append(MetricResult(metric.name, "Successful" if passed else "Failed", value, words))
    failed = [r for r in results if r.phase == "Failed"]
    unknown = [r for r in results if r.phase == "Inconclusive"]
    if failed:
        return "Failed", "; ".join(r.message for r in failed), results
    if unknown:
        return "Inconclusive", "; ".join(r.message for r in unknown), results
    return "Successful", "; ".join(r.message for r in results), results
