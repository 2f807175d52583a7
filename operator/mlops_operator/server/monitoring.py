"""What the server measures about its model, as Prometheus metrics labelled by model and version.

- requests, errors (by HTTP code) and latency;
- predicted classes;
- per-feature drift: PSI of the last `window` rows against the dataset profile's bins;
- accuracy: predictions kept by request id, compared with labels posted back later.

Counters (labels, correct) let PromQL judge a canary over any range; the gauges give the current
sliding-window values.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from ..data.profile import bin_shares, psi

disable_created_metrics()  # *_created series only double the scrape size here

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class DriftWindow:
    """The last `size` rows seen, and their PSI per feature against the profile's bins."""

    def __init__(
        self, profile: dict[str, Any] | None, features: list[str], size: int = 1000, min_rows: int = 50
    ) -> None:
        known = (profile or {}).get("features", {})
        self.features = [(i, name, known[name]) for i, name in enumerate(features)
                         if known.get(name, {}).get("kind") == "numeric" and known[name].get("edges")]  # fmt: skip
        self._rows: collections.deque[np.ndarray] = collections.deque(maxlen=size)
        self._min_rows = min_rows  # below this, PSI says more about the sample than about drift
        self._lock = threading.Lock()

    def add(self, rows: np.ndarray) -> None:
        with self._lock:
            self._rows.extend(rows)

    def psi_by_feature(self) -> dict[str, float]:
        with self._lock:
            if len(self._rows) < self._min_rows:
                return {}
            matrix = np.asarray(self._rows)
        return {name: psi(ref["shares"], bin_shares(matrix[:, i], ref["edges"])) for i, name, ref in self.features}

    def __len__(self) -> int:
        return len(self._rows)


class AccuracyWindow:
    """Predictions remembered by request id; labels posted later score them over a sliding window.

    Memory is bounded whatever clients send: at most `remember` ids (the codec caps an id at 128
    characters) holding at most `max_rows` predicted rows in all, oldest forgotten first; a request with
    more rows than that is not remembered. With the defaults, a few MB at most.
    """

    def __init__(self, remember: int = 10_000, size: int = 1000, max_rows: int = 100_000) -> None:
        self._predictions: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._remember = remember
        self._max_rows = max_rows
        self._rows = 0
        self._scores: collections.deque[bool] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def remember(self, request_id: str, predictions: np.ndarray | list) -> None:
        if len(predictions) > self._max_rows:
            return
        kept = np.array(predictions)  # a copy: a view would keep a whole batch's predictions alive
        with self._lock:
            previous = self._predictions.pop(request_id, None)
            if previous is not None:
                self._rows -= len(previous)
            self._predictions[request_id] = kept
            self._rows += len(kept)
            while len(self._predictions) > self._remember or self._rows > self._max_rows:
                _, forgotten = self._predictions.popitem(last=False)
                self._rows -= len(forgotten)

    def __len__(self) -> int:
        return len(self._predictions)

    @property
    def rows(self) -> int:
        return self._rows

    def score(self, request_id: str, labels: list) -> tuple[int, int]:
        """(correct, labelled) for the labels of one earlier request; KeyError if it is unknown."""
        with self._lock:
            predicted = self._predictions[request_id]
            if len(labels) != len(predicted):
                raise ValueError(f"request {request_id} had {len(predicted)} rows, got {len(labels)} labels")
            del self._predictions[request_id]
            self._rows -= len(predicted)
        return self.score_predictions(predicted.tolist(), labels)

    def score_predictions(self, predicted: list, labels: list) -> tuple[int, int]:
        if len(labels) != len(predicted):
            raise ValueError(f"{len(predicted)} predictions, but {len(labels)} labels")
        hits = [str(p) == str(label) for p, label in zip(predicted, labels, strict=True)]
        with self._lock:
            self._scores.extend(hits)
        return sum(hits), len(hits)

    def accuracy(self) -> float | None:
        with self._lock:
            return sum(self._scores) / len(self._scores) if self._scores else None


class ServerMetrics:
    def __init__(self, *, model: str, version: str, drift: DriftWindow, accuracy: AccuracyWindow) -> None:
        self.registry = CollectorRegistry()
        labels = {"model": model, "version": version}
        names = list(labels)
        self._requests = Counter("mlops_requests", "Inference requests by HTTP code.", [*names, "code"],
                                 registry=self.registry)  # fmt: skip
        self.latency = Histogram("mlops_request_duration_seconds", "Inference latency.", names,
                                 buckets=LATENCY_BUCKETS, registry=self.registry).labels(**labels)  # fmt: skip
        self.batch_rows = Histogram("mlops_batch_rows", "Rows per predict call.", names,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                                    registry=self.registry).labels(**labels)  # fmt: skip
        self._predictions = Counter("mlops_predictions", "Predicted values (classes).", [*names, "prediction"],
                                    registry=self.registry)  # fmt: skip
        self._labelled = Counter("mlops_feedback_labels", "Predictions scored with a posted label.", names,
                                 registry=self.registry)  # fmt: skip
        self._correct = Counter("mlops_feedback_correct", "Scored predictions that were right.", names,
                                registry=self.registry)  # fmt: skip
        self._labelled_series = self._labelled.labels(**labels)
        self._correct_series = self._correct.labels(**labels)
        self._labels = labels
        self._drift = drift
        self._accuracy = accuracy
        self.registry.register(_WindowCollector(self))
        self._by_code = {code: self._requests.labels(**labels, code=str(code)) for code in (200, 400, 404, 413, 500)}
        self._by_prediction: dict[str, Any] = {}

    def feedback(self, *, correct: int, labelled: int) -> None:
        """Scores of predictions made by the version served here (possibly by another pod of it)."""
        self._labelled_series.inc(labelled)
        self._correct_series.inc(correct)

    def request(self, code: int) -> None:
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self._requests.labels(**self._labels, code=str(code))
        counter.inc()

    def predicted(self, predictions: np.ndarray, *, classify: bool) -> None:
        if not classify:
            return
        for value, count in collections.Counter(predictions.tolist()).items():
            counter = self._by_prediction.get(value)
            if counter is None:
                counter = self._by_prediction[value] = self._predictions.labels(**self._labels, prediction=str(value))
            counter.inc(count)


class _WindowCollector:
    """Gauges computed at scrape time from the sliding windows."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self):
        labels = self._metrics._labels
        drift = GaugeMetricFamily("mlops_feature_psi", "PSI of recent rows vs the dataset profile, per feature.",
                                  labels=[*labels, "feature"])  # fmt: skip
        for feature, value in self._metrics._drift.psi_by_feature().items():
            drift.add_metric([*labels.values(), feature], value)
        yield drift
        rows = GaugeMetricFamily("mlops_drift_window_rows", "Rows in the drift window.", labels=list(labels))
        rows.add_metric(list(labels.values()), len(self._metrics._drift))
        yield rows
        accuracy = self._metrics._accuracy.accuracy()
        gauge = GaugeMetricFamily("mlops_accuracy", "Accuracy over the last labelled predictions.", labels=list(labels))
        if accuracy is not None:
            gauge.add_metric(list(labels.values()), accuracy)
        yield gauge
