"""Prometheus's HTTP API: the instant queries that measure a model version.

The only place the operator talks to Prometheus. What to query and how to judge the numbers is pure
(`rollout.analysis`); this module sends the queries, with timeouts, and turns every transport or
response problem into an Inconclusive result rather than an exception.
"""

from __future__ import annotations

import json
import math
import time

import requests

from ..api.modeldeployment import AnalysisMetric
from ..rollout.analysis import DEFAULT_METRICS, MetricResult, combine, promql, result

TIMEOUT = (3, 5)  # seconds: connect, and between two bytes of the answer
DEADLINE_SECONDS = 10.0  # one query, however slowly a Prometheus trickles its answer
MEASUREMENT_DEADLINE_SECONDS = 20.0  # all the metrics of one measurement
MAX_ANSWER_BYTES = 1 << 20  # an instant query judged here returns one number: 1 MiB is plenty


class AnswerRefused(ValueError):
    """Prometheus answered too slowly, too much, or something that is not a query result."""


def _read_answer(response: requests.Response, *, deadline: float) -> bytes:
    body = bytearray()
    # read1: whatever has arrived (a bounded read would wait for a full chunk of a trickling answer).
    while chunk := response.raw.read1(65536, decode_content=True):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise AnswerRefused(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() > deadline:
            raise AnswerRefused("no complete answer before the deadline")
    return bytes(body)


def query(prometheus_url: str, expression: str, *, deadline: float | None = None) -> float | None:
    """The single number an instant query returns; None when there is no data.
    Raises on transport errors and on answers refused (too slow, too large, not a result)."""
    deadline = min(deadline or math.inf, time.monotonic() + DEADLINE_SECONDS)
    url = f"{prometheus_url.rstrip('/')}/api/v1/query"
    # POSTed as a form, as Prometheus's API allows: a template's query (F1 is about 5 KB) need not fit a URL.
    with requests.post(url, data={"query": expression}, timeout=TIMEOUT, stream=True) as response:
        response.raise_for_status()
        body = _read_answer(response, deadline=deadline)
    try:
        return _number(json.loads(body)["data"])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise AnswerRefused(f"not an instant query result: {type(error).__name__}: {error}") from None


def _number(data: dict) -> float | None:
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    else:
        values = [sample["value"][1] for sample in data["result"]]
    numbers = [float(v) for v in values if math.isfinite(float(v))]
    return max(numbers) if numbers else None


def measure(
    metrics: list[AnalysisMetric],
    *,
    prometheus_url: str | None,
    namespace: str,
    model: str,
    version: str,
    window: str = "1m",
) -> tuple[str, str, list[MetricResult]]:
    """(phase, message, per-metric results) of one measurement of a version; no metrics: the defaults."""
    results = []
    deadline = time.monotonic() + MEASUREMENT_DEADLINE_SECONDS
    for metric in metrics or DEFAULT_METRICS:
        if not prometheus_url:
            results.append(result(metric, None, missing="no Prometheus URL is configured"))
            continue
        if time.monotonic() > deadline:
            results.append(result(metric, None, missing="not measured: the measurement ran out of time"))
            continue
        expression = promql(metric, namespace=namespace, model=model, version=version, window=window)
        try:
            value = query(prometheus_url, expression, deadline=deadline)
        except (requests.RequestException, ValueError) as error:  # AnswerRefused is a ValueError
            results.append(result(metric, None, missing=f"Prometheus query failed: {error}"))
            continue
        results.append(result(metric, value))
    phase, message = combine(results)
    return phase, message, results
