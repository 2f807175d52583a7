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
from ..api.reasons import Verdict
from .timing import current_step

# {selector} is replaced by the version's label selector, {window} by the range.
TEMPLATES = {
    "errorRate": (
        'sum(rate(mlops_requests_total{{{selector},code=~"5..|4..",code!~"404|429"}}[{window}])) '
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
    "predictionDrift": ("max(mlops_prediction_psi{{{selector}}})", "max"),
    "precision": ("", "min"),  # built by class_metric_query
    "recall": ("", "min"),
    "f1": ("", "min"),
    "mae": (
        "sum(increase(mlops_feedback_absolute_error_total{{{selector}}}[{window}])) "
        "/ sum(increase(mlops_feedback_labels_total{{{selector}}}[{window}]))",
        "max",
    ),
    "rmse": (
        "sqrt(sum(increase(mlops_feedback_squared_error_total{{{selector}}}[{window}])) "
        "/ sum(increase(mlops_feedback_labels_total{{{selector}}}[{window}])))",
        "max",
    ),
    "estimatedAccuracy": (
        "sum(increase(mlops_estimated_correct_total{{{selector}}}[{window}])) "
        "/ sum(increase(mlops_estimated_rows_total{{{selector}}}[{window}]))",
        "min",
    ),
}
# Templates judged on labels posted back (or, estimatedAccuracy, on predictions): no verdict on fewer
# than the metric's minSamples of them in the window — fewer is Inconclusive.
SAMPLED = {
    "accuracy": "mlops_feedback_labels_total",
    "precision": "mlops_feedback_labels_total",
    "recall": "mlops_feedback_labels_total",
    "f1": "mlops_feedback_labels_total",
    "mae": "mlops_feedback_labels_total",
    "rmse": "mlops_feedback_labels_total",
    "estimatedAccuracy": "mlops_estimated_rows_total",
}
CLASS_TEMPLATES = ("precision", "recall", "f1")
ESTIMATE_CAVEAT = "a label-free estimate: blind to concept drift with unchanged inputs"


def _per_class(selector: str, window: str, by: str, klass: str | None) -> str:
    """Scored predictions per class in the window, the class taken from the `label` or `prediction` label
    (only `klass`'s, when one is given)."""
    only = f',{by}="{klass}"' if klass is not None else ""
    return (
        f"sum by (class) (label_replace(increase(mlops_feedback_confusion_total{{{selector}{only}}}[{window}]), "
        f'"class", "$1", "{by}", "(.*)"))'
    )


def class_metric_query(template: str, *, selector: str, window: str, klass: str | None) -> str:
    """Precision, recall or F1 of one class, or their macro average, as scikit-learn computes them
    (`zero_division=0`, over the classes seen in the window as a label or a prediction).

    From the confusion count: true positives are the cells with correct="true" (by prediction, which
    there is the label too); predicted and actual counts are its sums by prediction and by label.
    """
    tp = _per_class(f'{selector},correct="true"', window, "prediction", klass)
    predicted = f"({_per_class(selector, window, 'prediction', klass)} > 0)"
    actual = f"({_per_class(selector, window, 'label', klass)} > 0)"
    seen = f"({predicted} * 0 or {actual} * 0)"  # every class seen, valued 0
    hits = f"({tp} or {seen})"
    precision = f"(({hits} / {predicted}) or {seen})"
    recall = f"(({hits} / {actual}) or {seen})"
    value = {
        "precision": precision,
        "recall": recall,
        "f1": f"((2 * {precision} * {recall} / ({precision} + {recall} > 0)) or {seen})",
    }[template]
    return f"sum({value})" if klass is not None else f"avg({value})"


def enough_samples(query: str, *, template: str, selector: str, window: str, minimum: int) -> str:
    """`query`, answered only when the window holds `minimum` labelled predictions (or predictions, for the
    estimate): an empty answer is no evidence, so fewer is Inconclusive."""
    counted = f"sum(increase({SAMPLED[template]}{{{selector}}}[{window}])) >= {minimum}"
    return f"({query}) and on() ({counted})"


DEFAULT_METRICS = [
    AnalysisMetric(name="error-rate", template="errorRate", threshold=0.05),
    AnalysisMetric(name="latency-p95", template="latencyP95", threshold=0.5),
]
_CONDITION = re.compile(r"^result\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.eE+-]+)$")
_OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class MetricResult:
    metric: str
    phase: Verdict
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
    template = metric.template
    if not template:
        return (metric.query or "").replace("{{version}}", version).replace("{{namespace}}", namespace)
    if template in CLASS_TEMPLATES:
        query = class_metric_query(template, selector=selector, window=window, klass=metric.class_)
    else:
        query = TEMPLATES[template][0].format(selector=selector, window=window)
    if template in SAMPLED:
        query = enough_samples(query, template=template, selector=selector, window=window, minimum=metric.min_samples)
    return query


def judge(metric: AnalysisMetric, value: float) -> tuple[bool, str]:
    """Whether a value passes, and the comparison in words (the words Events and status show)."""
    if metric.template:
        bound = TEMPLATES[metric.template][1]
        passed = value <= metric.threshold if bound == "max" else value >= metric.threshold
        sign = ("<=" if passed else ">") if bound == "max" else (">=" if passed else "<")
        caveat = f" ({ESTIMATE_CAVEAT})" if metric.template == "estimatedAccuracy" else ""
        return passed, f"{metric.name} {value:.4g} {sign} {metric.threshold:g}{caveat}"
    op, bound = _CONDITION.match(metric.success_condition or "").groups()
    passed = _OPERATORS[op](value, float(bound))
    return passed, f"{metric.name} {value:.4g} ({'meets' if passed else 'fails'} {metric.success_condition})"


def result(metric: AnalysisMetric, value: float | None, *, missing: str = "") -> MetricResult:
    """The verdict on one metric's value; without a value it is Inconclusive, saying why (`missing`)."""
    if value is None:
        if not missing and metric.template in SAMPLED:
            what = "predictions" if metric.template == "estimatedAccuracy" else "labelled predictions"
            missing = f"{metric.name}: no data yet, or fewer than {metric.min_samples} {what} in the window"
        return MetricResult(metric.name, Verdict.INCONCLUSIVE, None, missing or f"{metric.name}: no data yet")
    passed, words = judge(metric, value)
    return MetricResult(metric.name, Verdict.SUCCESSFUL if passed else Verdict.FAILED, value, words)


def combine(results: list[MetricResult]) -> tuple[str, str]:
    """(phase, message) of a measurement: Failed if any metric failed, else Inconclusive if any had no
    data (or none was judged), else Successful; the message names the metrics that decided it."""
    failed = [r for r in results if r.phase == Verdict.FAILED]
    unknown = [r for r in results if r.phase == Verdict.INCONCLUSIVE]
    if failed:
        return Verdict.FAILED, "; ".join(r.message for r in failed)
    if unknown:
        return Verdict.INCONCLUSIVE, "; ".join(r.message for r in unknown)
    if not results:
        return Verdict.INCONCLUSIVE, "no metric was judged"
    return Verdict.SUCCESSFUL, "; ".join(r.message for r in results)


def refused_queries(spec: ModelDeploymentSpec, *, allow_raw_queries: bool) -> str | None:
    """Why the spec's analysis is refused by the operator's configuration, if it is: with raw queries
    off, only the templates (which select the object's own namespace) may judge a version."""
    raw = [metric.name for metric in spec.analysis.metrics if metric.query]
    if allow_raw_queries or not raw:
        return None
    return (
        f"spec.analysis.metrics {raw} use a raw PromQL query, which this operator refuses "
        "(prometheus.allowRawQueries=false: analysis may read only the object's own namespace); "
        f"use a template ({', '.join(TEMPLATES)})"
    )


def refused_prometheus_url(spec: ModelDeploymentSpec, *, default: str | None, allowed: tuple[str, ...]) -> str | None:
    """Why the spec's own Prometheus is refused, if it is: the operator queries it from its own network
    position and decides rollouts on its answers, so only the operator's Prometheus and the URLs the
    administrator lists (prometheus.allowedUrls) may be named — never one a tenant picks."""
    url = spec.prometheus_url
    if url is None:
        return None
    permitted = {u.rstrip("/") for u in (default, *allowed) if u}
    if url.rstrip("/") in permitted:
        return None
    return (
        f"spec.prometheusUrl {url} is not a Prometheus this operator may query (the chart's prometheus.url and "
        f"prometheus.allowedUrls list those{': ' + ', '.join(sorted(permitted)) if permitted else ''}); "
        "remove it to judge on the operator's Prometheus, or ask the operator's administrator to list it"
    )


def refused_estimate(spec: ModelDeploymentSpec, uncalibrated: list[str]) -> str | None:
    """Why the spec's analysis is refused for these versions, if it is: the label-free estimate needs a
    model calibrated on its held-out split, which a model without probabilities never is."""
    estimated = [m.name for m in spec.analysis.metrics if m.template == "estimatedAccuracy"]
    if not estimated or not uncalibrated:
        return None
    return (
        f"spec.analysis.metrics {estimated} use the estimatedAccuracy template, but model version "
        f"{', '.join(uncalibrated)} has no confidence calibration (its estimator gives no probabilities, "
        "predict_proba, or its held-out split could not calibrate it): judge it on labels posted back "
        "(accuracy, precision, recall, f1) instead"
    )
