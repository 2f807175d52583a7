"""What the server measures about its model, as Prometheus metrics labelled by model and version.

- requests, errors (by HTTP code) and latency;
- predicted classes;
- drift: PSI of the last `window` rows against the dataset profile, per feature (decile bins, or the
  frequencies of a feature of few values), and of their predictions against the training target;
- live quality from labels posted back with a receipt (server/receipts.py), labelled by the version the
  receipt names — the one that made the prediction, maybe not this pod's: for classifiers a confusion
  count (label × prediction, over the model's classes and `other`), from which accuracy, precision,
  recall and F1 follow (per class and macro, rollout.analysis has the PromQL); for regressors the count
  and the sums of absolute and squared errors (MAE, RMSE); and the feedback refused, by reason;
- a label-free estimate of accuracy, from the model's calibrated confidence (EstimateWindow).

Counters let PromQL judge a canary over any range; the gauges give the current sliding-window values.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..data.profile import bin_shares, class_key, psi
from .receipts import REASONS

disable_created_metrics()  # *_created series only double the scrape size here

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _category_shares(keys: list[str], known: list[str]) -> list[float]:
    """Shares of `keys` among the `known` categories, and last the share of any other."""
    counted = collections.Counter(keys)
    total = max(len(keys), 1)
    shares = [counted.get(k, 0) / total for k in known]
    return [*shares, 1 - sum(shares)]


def _keys(values: np.ndarray) -> list[str]:
    """The class keys of many values, computed once per distinct value."""
    distinct, inverse = np.unique(values, return_inverse=True)
    keys = [class_key(v) for v in distinct.tolist()]
    return [keys[i] for i in inverse.ravel()]


class DriftWindow:
    """The last `size` rows seen and their predictions, against the dataset profile: a PSI per feature
    (on its decile bins, or on its frequencies for a feature of few distinct values) and one for the
    predictions (predicted class shares against the training target's balance; a regressor's predicted
    values on the target's bins)."""

    def __init__(
        self, profile: dict[str, Any] | None, features: list[str], size: int = 1000, min_rows: int = 50
    ) -> None:
        known = (profile or {}).get("features", {})
        self.categorical = [
            (i, name, list(known[name]["frequencies"]), list(known[name]["frequencies"].values()))
            for i, name in enumerate(features)
            if known.get(name, {}).get("frequencies")
        ]
        categorical = {name for _, name, _, _ in self.categorical}
        self.features = [
            (i, name, known[name])
            for i, name in enumerate(features)
            if name not in categorical and known.get(name, {}).get("kind") == "numeric" and known[name].get("edges")
        ]
        target = (profile or {}).get("target") or {}
        self._target_classes: dict[str, float] = {}
        for label, share in (target.get("shares") or {}).items() if target.get("kind") == "classes" else []:
            key = class_key(label)
            self._target_classes[key] = self._target_classes.get(key, 0.0) + share
        self._target_bins = (
            (target["edges"], target["shares"]) if target.get("kind") == "numeric" and target.get("edges") else None
        )
        self._rows: collections.deque[np.ndarray] = collections.deque(maxlen=size)
        self._predictions: collections.deque[Any] = collections.deque(maxlen=size)
        self._min_rows = min_rows  # below this, PSI says more about the sample than about drift
        self._lock = threading.Lock()

    def add(self, rows: np.ndarray, predictions: np.ndarray | None = None) -> None:
        with self._lock:
            self._rows.extend(rows)
            if predictions is not None:
                self._predictions.extend(predictions.tolist())

    def psi_by_feature(self) -> dict[str, float]:
        with self._lock:
            if len(self._rows) < self._min_rows:
                return {}
            matrix = np.asarray(self._rows)
        drift = {name: psi(ref["shares"], bin_shares(matrix[:, i], ref["edges"])) for i, name, ref in self.features}
        for i, name, categories, shares in self.categorical:
            column = matrix[:, i]
            live = _category_shares(_keys(column[~np.isnan(column)]), categories)
            drift[name] = psi([*shares, max(0.0, 1 - sum(shares))], live)
        return drift

    def prediction_psi(self) -> float | None:
        """PSI of the recent predictions against the training target; None without enough of them or a reference."""
        with self._lock:
            if len(self._predictions) < self._min_rows:
                return None
            predicted = list(self._predictions)
        if self._target_classes:
            classes = list(self._target_classes)
            expected = [*self._target_classes.values(), max(0.0, 1 - sum(self._target_classes.values()))]
            return psi(expected, _category_shares([class_key(p) for p in predicted], classes))
        if self._target_bins is not None:
            edges, shares = self._target_bins
            return psi(shares, bin_shares(np.asarray(predicted, dtype=np.float64), edges))
        return None

    def __len__(self) -> int:
        return len(self._rows)


class EstimateWindow:
    """The label-free accuracy estimate of live traffic (modelformat/calibration.py says what it can and cannot
    see), off the request path: rows predicted since the last scrape are kept (a uniform sample of at
    most `sample` of them), and at scrape time their calibrated confidence — one predict_proba call —
    adds to two counters, the estimated correct predictions and the rows, so PromQL can judge any range."""

    def __init__(self, model: Any, calibration: dict[str, Any], *, sample: int = 2000, seed: int = 0) -> None:
        self._model, self._calibration, self._sample = model, calibration, sample
        self._pending: list[np.ndarray] = []
        self._kept = 0
        self._seen = 0  # rows predicted since the last scrape
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.correct = 0.0  # cumulative: the counters' values
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        with self._lock:
            self._seen += len(rows)
            if self._kept + len(rows) <= self._sample:
                self._pending.append(rows)
                self._kept += len(rows)
            elif self._rng.random() < self._sample / self._seen:  # keeps the sample about uniform
                self._pending[self._rng.integers(len(self._pending))] = rows

    def flush(self) -> tuple[float, int]:
        """Score what is pending; (estimated correct, rows) so far."""
        from ..modelformat.calibration import calibrated_confidence, prediction_confidence

        with self._lock:
            pending, seen = self._pending, self._seen
            self._pending, self._kept, self._seen = [], 0, 0
        if pending:
            matrix = np.vstack(pending)
            confidence = prediction_confidence(self._model, matrix)
            if confidence is not None:
                calibrated = calibrated_confidence(self._calibration, confidence)
                finite = calibrated[np.isfinite(calibrated)]
                if finite.size:
                    with self._lock:
                        self.correct += float(finite.mean()) * seen  # the sample's mean stands for all rows seen
                        self.rows += seen
        with self._lock:
            return self.correct, self.rows


OTHER_CLASS = "other"  # a label (or an echoed prediction) that is none of the model's classes


@dataclass(frozen=True)
class Scores:
    """Labels posted for earlier predictions, scored: what the feedback counters add."""

    labelled: int
    correct: int = 0  # classifiers: predictions that were the label
    pairs: tuple[tuple[str, str], ...] = ()  # classifiers: (label, prediction) class keys, one per row
    absolute_error: float = 0.0  # regressors: sum of |label - prediction|
    squared_error: float = 0.0  # regressors: sum of (label - prediction)²


def score(predicted: list, labels: list, *, classify: bool) -> Scores:
    """Scores of `labels` against the `predicted` values of the same rows; ValueError if they do not pair up
    (or, for a regressor, a label is not a number)."""
    if len(labels) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions, but {len(labels)} labels")
    if classify:
        pairs = tuple((class_key(label), class_key(p)) for p, label in zip(predicted, labels, strict=True))
        return Scores(labelled=len(pairs), correct=sum(label == p for label, p in pairs), pairs=pairs)
    try:
        errors = np.asarray(labels, dtype=np.float64) - np.asarray(predicted, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("a regressor's labels (and predictions) must be numbers") from None
    if not np.all(np.isfinite(errors)):
        raise ValueError("labels and predictions must be finite numbers")
    return Scores(
        labelled=len(errors), absolute_error=float(np.abs(errors).sum()), squared_error=float(np.square(errors).sum())
    )


class AccuracyWindow:
    """The last `size` scored predictions of each version, for the accuracy gauge (a pod scores receipts of
    other versions of its ModelDeployment too). At most `versions` versions are kept, the least recently
    scored forgotten first: receipts are signed, but old versions should not pile up in a long-lived pod."""

    def __init__(self, size: int = 1000, versions: int = 8) -> None:
        self._size, self._versions = size, versions
        self._scores: collections.OrderedDict[str, collections.deque[bool]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def record(self, version: str, scores: Scores) -> None:
        """A classifier's scored predictions of `version` join its sliding window."""
        with self._lock:
            window = self._scores.pop(version, None)
            if window is None:
                window = collections.deque(maxlen=self._size)
            self._scores[version] = window
            window.extend(label == p for label, p in scores.pairs)
            while len(self._scores) > self._versions:
                self._scores.popitem(last=False)

    def accuracy(self, version: str) -> float | None:
        with self._lock:
            window = self._scores.get(version)
            return sum(window) / len(window) if window else None

    def versions(self) -> list[str]:
        with self._lock:
            return list(self._scores)


class ServerMetrics:
    """The registry of one served version. `classes` bounds the confusion count's label values: the
    model's classes (as class keys), anything else counted as `other`."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        drift: DriftWindow,
        accuracy: AccuracyWindow,
        classes: list | None = None,
        estimate: EstimateWindow | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        labels = {"model": model, "version": version}
        names = list(labels)
        self._requests = Counter(
            "mlops_requests", "Inference requests by HTTP code.", [*names, "code"], registry=self.registry
        )
        self.latency = Histogram(
            "mlops_request_duration_seconds",
            "Inference latency.",
            names,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.batch_rows = Histogram(
            "mlops_batch_rows",
            "Rows per predict call.",
            names,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        ).labels(**labels)
        self._predictions = Counter(
            "mlops_predictions", "Predicted values (classes).", [*names, "prediction"], registry=self.registry
        )
        self._labelled = Counter(
            "mlops_feedback_labels", "Predictions scored with a posted label.", names, registry=self.registry
        )
        self._correct = Counter(
            "mlops_feedback_correct", "Scored predictions that were right.", names, registry=self.registry
        )
        self._confusion = Counter(
            "mlops_feedback_confusion",
            "Scored predictions by label and prediction (classifiers); correct: whether they are the same class.",
            [*names, "label", "prediction", "correct"],
            registry=self.registry,
        )
        self._absolute = Counter(
            "mlops_feedback_absolute_error", "Sum of |label - prediction| (regressors).", names, registry=self.registry
        )
        self._squared = Counter(
            "mlops_feedback_squared_error", "Sum of (label - prediction)^2 (regressors).", names, registry=self.registry
        )
        self._refused = Counter(
            "mlops_feedback_refused",
            "Feedback not scored, by reason (a forged, altered, "
            "replayed or expired receipt, an old feedback form, ...).",
            [*names, "reason"],
            registry=self.registry,
        )
        self.environment_differs = Gauge(
            "mlops_model_environment_differs",
            "1 if this version is served on other libraries than those that trained it (its golden rows "
            "predicted the same: modelformat/replay.py), else 0.",
            names,
            registry=self.registry,
        ).labels(**labels)
        self._refused_series = {reason: self._refused.labels(**labels, reason=reason) for reason in REASONS}
        self._labelled_series = self._labelled.labels(**labels)  # the own version's series exist from the start
        self._correct_series = self._correct.labels(**labels)
        self._absolute_series = self._absolute.labels(**labels)
        self._squared_series = self._squared.labels(**labels)
        self._labels = labels
        self._classes = {class_key(c) for c in classes or []}
        self._drift = drift
        self._accuracy = accuracy
        self.estimate = estimate
        self.registry.register(_WindowCollector(self))
        self._by_code = {code: self._requests.labels(**labels, code=str(code)) for code in (200, 400, 404, 413, 500)}
        self._by_prediction: dict[Any, Any] = {}

    def _bounded(self, key: str) -> str:
        return key if key in self._classes else OTHER_CLASS

    def feedback(self, scores: Scores, *, classify: bool, version: str | None = None) -> None:
        """Scores of predictions made by `version` (the receipt's; by default the one served here), whichever
        pod of the ModelDeployment made them."""
        labels = self._labels if version in (None, self._labels["version"]) else {**self._labels, "version": version}
        own = labels is self._labels
        (self._labelled_series if own else self._labelled.labels(**labels)).inc(scores.labelled)
        if not classify:
            (self._absolute_series if own else self._absolute.labels(**labels)).inc(scores.absolute_error)
            (self._squared_series if own else self._squared.labels(**labels)).inc(scores.squared_error)
            return
        (self._correct_series if own else self._correct.labels(**labels)).inc(scores.correct)
        for (label, prediction), count in collections.Counter(scores.pairs).items():
            cell = {
                "label": self._bounded(label),
                "prediction": self._bounded(prediction),
                "correct": "true" if label == prediction else "false",
            }
            self._confusion.labels(**labels, **cell).inc(count)
        self._accuracy.record(labels["version"], scores)

    def refused(self, reason: str) -> None:
        """Feedback not scored, and why (one of server.receipts.REASONS)."""
        self._refused_series[reason].inc()

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
                key = self._bounded(class_key(value)) if self._classes else class_key(value)
                counter = self._by_prediction[value] = self._predictions.labels(**self._labels, prediction=key)
            counter.inc(count)


class _WindowCollector:
    """Gauges computed at scrape time from the sliding windows."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self):
        labels = self._metrics._labels
        drift = GaugeMetricFamily(
            "mlops_feature_psi", "PSI of recent rows vs the dataset profile, per feature.", labels=[*labels, "feature"]
        )
        for feature, value in self._metrics._drift.psi_by_feature().items():
            drift.add_metric([*labels.values(), feature], value)
        yield drift
        words = "PSI of recent predictions vs the training target (class shares, or a regressor's value bins)."
        predictions = GaugeMetricFamily("mlops_prediction_psi", words, labels=list(labels))
        value = self._metrics._drift.prediction_psi()
        if value is not None:
            predictions.add_metric(list(labels.values()), value)
        yield predictions
        if self._metrics.estimate is not None:
            correct, counted = self._metrics.estimate.flush()
            for name, text, value in (
                ("mlops_estimated_correct", "Predictions estimated right, from the calibrated confidence.", correct),
                ("mlops_estimated_rows", "Predictions the estimate covers.", counted),
            ):
                family = CounterMetricFamily(name, text, labels=list(labels))
                family.add_metric(list(labels.values()), value)
                yield family
        rows = GaugeMetricFamily("mlops_drift_window_rows", "Rows in the drift window.", labels=list(labels))
        rows.add_metric(list(labels.values()), len(self._metrics._drift))
        yield rows
        gauge = GaugeMetricFamily("mlops_accuracy", "Accuracy over the last labelled predictions.", labels=list(labels))
        for version in self._metrics._accuracy.versions():
            accuracy = self._metrics._accuracy.accuracy(version)
            if accuracy is not None:
                gauge.add_metric([labels["model"], version], accuracy)
        yield gauge
