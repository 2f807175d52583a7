"""Judging a model version: which metrics a measurement judges, their PromQL, and the verdict.

A measurement is Successful when every metric passes, Failed when any metric fails, and Inconclusive
when a metric has no data (or Prometheus cannot be reached): never a pass on missing evidence. An
analysis step judges the metrics it names; every other measurement (during other steps, and of the
stable version after promotion) judges all of them. The queries themselves run in
`adapters.prometheus`: this module stays pure, so the verdicts are table-tested without Prometheus.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from ..api.modeldeployment import AnalysisMetric, ModelDeploymentSpec, ModelDeploymentStatus
from .timing import current_step

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


def metrics_to_judge(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> list[AnalysisMetric]:
    """The metrics the next measurement judges: at an analysis step that names metrics, those; otherwise all.

    All is spec.analysis.metrics, or DEFAULT_METRICS when it is empty. The spec validation refuses a
    step naming a metric that is neither; should one get through, all are judged rather than nothing.
    """
    defined = spec.analysis.metrics or DEFAULT_METRICS
    step = current_step(spec, status.canary) if status.canary is not None else None
    names = set(step.analysis.metrics) if step is not None and step.analysis is not None else set()
    named = [metric for metric in defined if metric.name in names]
    return named or defined


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


def result(metric: AnalysisMetric, value: float | None, *, missing: str = "") -> MetricResult:
    """The verdict on one metric's value; without a value it is Inconclusive, saying why (`missing`)."""
    if value is None:
        return MetricResult(metric.name, "Inconclusive", None, missing or f"{metric.name}: no data yet")
    passed, words = judge(metric, value)
    return MetricResult(metric.name, "Successful" if passed else "Failed", value, words)


def combine(results: list[MetricResult]) -> tuple[str, str]:
    """(phase, message) of a measurement: Failed if any metric failed, else Inconclusive if any had no
    data (or none was judged), else Successful; the message names the metrics that decided it."""
    failed = [r for r in results if r.phase == "Failed"]
    unknown = [r for r in results if r.phase == "Inconclusive"]
    if failed:
        return "Failed", "; ".join(r.message for r in failed)
    if unknown:
        return "Inconclusive", "; ".join(r.message for r in unknown)
    if not results:
        return "Inconclusive", "no metric was judged"
    return "Successful", "; ".join(r.message for r in results)


def refused_queries(spec: ModelDeploymentSpec, *, allow_raw_queries: bool) -> str | None:
    """Why the spec's analysis is refused by the operator's configuration, if it is: with raw queries
    off, only the templates (which select the object's own namespace) may judge a version."""
    raw = [metric.name for metric in spec.analysis.metrics if metric.query]
    if allow_raw_queries or not raw:
        return None
    return (
        f"spec.analysis.metrics {raw} use a raw PromQL query, which this operator refuses "
        "(prometheus.allowRawQueries=false: analysis may read only the object's own namespace); "
        "use a template (errorRate, latencyP95, accuracy, drift)"
    )
