"""Judging a version: each metric's verdict and words, the verdict of a measurement, the PromQL sent,
and the Prometheus adapter against a fake Prometheus (no data and failures are never a pass)."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from mlops_operator.adapters import prometheus as prom
from mlops_operator.adapters.prometheus import measure
from mlops_operator.api.modeldeployment import AnalysisMetric
from mlops_operator.rollout.analysis import MetricResult, combine, judge, promql, result

ERRORS = AnalysisMetric(name="errors", template="errorRate", threshold=0.05)
ACCURACY = AnalysisMetric(name="accuracy", template="accuracy", threshold=0.8)
CUSTOM = AnalysisMetric(
    name="p99", query='p99{version="{{version}}",ns="{{namespace}}"}', successCondition="result < 2"
)


@pytest.mark.parametrize(
    ("metric", "value", "passed", "words"),
    [
        (ERRORS, 0.01, True, "errors 0.01 <= 0.05"),
        (ERRORS, 0.2, False, "errors 0.2 > 0.05"),
        (ACCURACY, 0.9, True, "accuracy 0.9 >= 0.8"),
        (ACCURACY, 0.31, False, "accuracy 0.31 < 0.8"),
        (CUSTOM, 1.5, True, "p99 1.5 (meets result < 2)"),
        (CUSTOM, 2.0, False, "p99 2 (fails result < 2)"),
    ],
)
def test_judge(metric: AnalysisMetric, value: float, passed: bool, words: str) -> None:
    assert judge(metric, value) == (passed, words)


def ok(name: str) -> MetricResult:
    return MetricResult(name, "Successful", 0.0, f"{name} ok")


def bad(name: str) -> MetricResult:
    return MetricResult(name, "Failed", 1.0, f"{name} bad")


def unknown(name: str) -> MetricResult:
    return MetricResult(name, "Inconclusive", None, f"{name}: no data yet")


@pytest.mark.parametrize(
    ("results", "verdict"),
    [
        ([ok("a"), ok("b")], ("Successful", "a ok; b ok")),
        ([ok("a"), bad("b"), unknown("c")], ("Failed", "b bad")),
        ([ok("a"), unknown("c")], ("Inconclusive", "c: no data yet")),
        ([], ("Inconclusive", "no metric was judged")),
    ],
)
def test_combine(results: list[MetricResult], verdict: tuple[str, str]) -> None:
    assert combine(results) == verdict


def test_a_missing_value_is_inconclusive_and_says_why() -> None:
    assert result(ERRORS, None) == MetricResult("errors", "Inconclusive", None, "errors: no data yet")
    assert result(ERRORS, None, missing="down").message == "down"
    assert result(ERRORS, 0.2).phase == "Failed"


def test_promql_selects_the_version() -> None:
    selector = 'namespace="ml",model="iris",version="v2"'
    assert f'mlops_requests_total{{{selector},code=~"5..|4..",code!~"404|429"}}[1m]' in promql(
        ERRORS, namespace="ml", model="iris", version="v2", window="1m"
    )
    assert promql(CUSTOM, namespace="ml", model="iris", version="v2", window="1m") == 'p99{version="v2",ns="ml"}'


class FakePrometheus(http.server.ThreadingHTTPServer):
    """Answers instant queries from a table keyed by a word of the query; records the queries."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakePrometheusHandler)
        self.answers: dict[str, tuple[int, dict]] = {}
        self.queries: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class FakePrometheusHandler(http.server.BaseHTTPRequestHandler):
    server: FakePrometheus

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # the operator POSTs its queries as a form
        form = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        expression = urllib.parse.parse_qs(form)["query"][0]
        self.server.queries.append(expression)
        code, body = next((a for word, a in self.server.answers.items() if word in expression), (200, vector()))
        if code == TRICKLE:  # accepts, answers 200 and then a byte now and then, never the end
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)  # the fake's pacing (the behaviour under test), not synchronisation
            except OSError:  # the client gave up, as it should
                pass
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if code == GZIP:  # as Prometheus answers a client that accepts gzip
            code, data = 200, gzip.compress(data)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if data[:2] == b"\x1f\x8b":
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


TRICKLE, GZIP = 0, 1


def vector(*values: str) -> dict:
    samples = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": samples}}


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def run(metrics: list[AnalysisMetric], url: str | None) -> tuple[str, str, list[MetricResult]]:
    return measure(metrics, prometheus_url=url, namespace="ml", model="iris", version="v2", window="1m")


def test_measure_judges_each_metric(prometheus: FakePrometheus) -> None:
    prometheus.answers = {"mlops_requests_total": (200, vector("0.01")), "feedback": (200, vector("0.5", "0.31"))}
    phase, message, results = run([ERRORS, ACCURACY], prometheus.url)
    assert (phase, message) == ("Failed", "accuracy 0.5 < 0.8"), "the largest sample is judged"
    assert [r.phase for r in results] == ["Successful", "Failed"] and len(prometheus.queries) == 2


def test_measure_without_data_or_prometheus_is_inconclusive(prometheus: FakePrometheus) -> None:
    prometheus.answers = {"mlops_requests_total": (200, vector("NaN"))}
    assert run([ERRORS], prometheus.url)[:2] == ("Inconclusive", "errors: no data yet")
    prometheus.answers = {"mlops_requests_total": (503, {"status": "error"})}
    phase, message, _ = run([ERRORS], prometheus.url)
    assert phase == "Inconclusive" and message.startswith("Prometheus query failed: 503")
    assert run([ERRORS], None)[:2] == ("Inconclusive", "no Prometheus URL is configured")


def test_measure_with_no_metrics_judges_the_defaults(prometheus: FakePrometheus) -> None:
    phase, _, results = run([], prometheus.url)
    assert [r.metric for r in results] == ["error-rate", "latency-p95"] and phase == "Inconclusive"


def test_a_prometheus_that_trickles_its_answer_is_cut_off_at_the_deadline(prometheus, monkeypatch) -> None:
    monkeypatch.setattr(prom, "DEADLINE_SECONDS", 0.5)
    prometheus.answers = {"mlops_requests_total": (TRICKLE, {})}
    started = time.monotonic()
    phase, message, _ = run([ERRORS], prometheus.url)
    assert time.monotonic() - started < 2, "one query never takes longer than its deadline (plus a read)"
    assert phase == "Inconclusive" and "deadline" in message


def test_a_measurement_stops_querying_when_its_own_deadline_passed(prometheus, monkeypatch) -> None:
    monkeypatch.setattr(prom, "DEADLINE_SECONDS", 0.3)
    monkeypatch.setattr(prom, "MEASUREMENT_DEADLINE_SECONDS", 0.5)
    prometheus.answers = {"mlops": (TRICKLE, {})}
    started = time.monotonic()
    _, _, results = run([ERRORS, ACCURACY, ERRORS.model_copy(update={"name": "third"})], prometheus.url)
    assert time.monotonic() - started < 2
    assert "ran out of time" in results[-1].message and len(prometheus.queries) < 3


def test_a_huge_or_odd_answer_is_refused_not_raised(prometheus, monkeypatch) -> None:
    monkeypatch.setattr(prom, "MAX_ANSWER_BYTES", 10_000)
    prometheus.answers = {"mlops_requests_total": (200, b"[" * 50_000)}
    phase, message, _ = run([ERRORS], prometheus.url)
    assert phase == "Inconclusive" and "exceeds 10000 bytes" in message
    for odd in (
        {"data": {"resultType": "vector", "result": [{"value": "x"}]}},
        {"data": {"resultType": "matrix", "result": [{"values": [[0, "1"]]}]}},
        {"data": ["not", "a", "result"]},
        [1, 2],
        {"data": {"resultType": "string", "result": [0, "abc"]}},
    ):
        prometheus.answers = {"mlops_requests_total": (200, odd)}
        phase, message, _ = run([ERRORS], prometheus.url)
        assert phase == "Inconclusive" and "not an instant query result" in message, (odd, message)


def test_a_compressed_answer_is_read(prometheus) -> None:
    prometheus.answers = {"mlops_requests_total": (GZIP, vector("0.01"))}
    assert run([ERRORS], prometheus.url)[:2] == ("Successful", "errors 0.01 <= 0.05")


def test_raw_queries_are_refused_when_the_operator_confines_analysis_to_templates() -> None:
    from mlops_operator.api.modeldeployment import ModelDeploymentSpec
    from mlops_operator.rollout.analysis import refused_queries

    raw = {"name": "other-teams", "query": 'sum(up{namespace="other"})', "successCondition": "result > 0"}
    templated = {"name": "errors", "template": "errorRate", "threshold": 0.05}
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "m"}, "analysis": {"metrics": [templated, raw]}})
    assert refused_queries(spec, allow_raw_queries=True) is None
    message = refused_queries(spec, allow_raw_queries=False)
    assert "['other-teams']" in message and "allowRawQueries=false" in message
    only_templates = ModelDeploymentSpec.model_validate({"model": {"name": "m"}, "analysis": {"metrics": [templated]}})
    assert refused_queries(only_templates, allow_raw_queries=False) is None


def test_the_error_rate_counts_client_errors_but_not_found_and_throttled(tmp_path) -> None:
    """A version that refuses what clients send (400: its inputs changed) fails the analysis like one that
    fails on them (500); a 404 (another model's name) or a 429 is no fault of the version. Evaluated by
    Prometheus's own engine: per minute, 60 answered 200, 10 each 400, 404, 413, 429 and 500."""
    from support import promtool_value

    selector = 'namespace="ml",model="iris",version="v2"'
    counts = {"200": 60, "400": 10, "404": 10, "413": 10, "429": 10, "500": 10}
    series = {
        f'mlops_requests_total{{{selector},code="{code}"}}': f"0+{per_minute / 4:g}x8"
        for code, per_minute in counts.items()
    }
    query = promql(ERRORS, namespace="ml", model="iris", version="v2", window="1m")
    assert promtool_value(tmp_path, series, query, at_seconds=90) == pytest.approx(30 / 110)


def test_a_prometheus_url_the_administrator_did_not_list_is_refused_never_fetched() -> None:
    from mlops_operator.api.modeldeployment import ModelDeploymentSpec
    from mlops_operator.rollout.analysis import refused_prometheus_url

    default = "http://prometheus.monitoring:9090"

    def spec(url: str | None) -> ModelDeploymentSpec:
        return ModelDeploymentSpec.model_validate(
            {"model": {"name": "iris"}, **({"prometheusUrl": url} if url else {})}
        )

    assert refused_prometheus_url(spec(None), default=default, allowed=()) is None
    assert refused_prometheus_url(spec(default + "/"), default=default, allowed=()) is None
    team = "https://prom.team-a.svc:9090"
    assert refused_prometheus_url(spec(team), default=default, allowed=(team,)) is None
    for attacker in ("http://10.0.0.1:6443", "http://kubernetes.default.svc", team + "/other"):
        message = refused_prometheus_url(spec(attacker), default=default, allowed=(team,))
        assert message is not None and message.startswith(f"spec.prometheusUrl {attacker} is not a Prometheus")
        assert "prometheus.allowedUrls" in message
    assert refused_prometheus_url(spec(team), default=None, allowed=()) is not None
