"""Evaluation metrics on held-out data, by task. A metric that is undefined is left out, never faked."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..api.estimators import CLASSIFICATION_METRICS, REGRESSION_METRICS


def classification_metrics(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    predicted = model.predict(x)
    result = {
        "accuracy": metrics.accuracy_score(y, predicted),
        "precision_macro": metrics.precision_score(y, predicted, average="macro", zero_division=0),
        "recall_macro": metrics.recall_score(y, predicted, average="macro", zero_division=0),
        "f1_macro": metrics.f1_score(y, predicted, average="macro", zero_division=0),
    }
    if hasattr(model, "predict_proba") and len(np.unique(y)) >= 2:
        try:
            proba = model.predict_proba(x)
            if proba.shape[1] == 2:
                result["roc_auc"] = metrics.roc_auc_score(y, proba[:, 1])
            else:
                result["roc_auc"] = metrics.roc_auc_score(
                    y, proba, multi_class="ovr", average="macro", labels=model.classes_
                )
        except ValueError:
            pass  # undefined for this split (e.g. a class missing from the test set)
    return result


def regression_metrics(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    predicted = model.predict(x)
    return {
        "rmse": math.sqrt(metrics.mean_squared_error(y, predicted)),
        "mae": metrics.mean_absolute_error(y, predicted),
        "r2": metrics.r2_score(y, predicted),
    }


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, *, task: str, wanted: list[str]) -> dict[str, float]:
    """The wanted metrics (default: all of the task), rounded, finite values only."""
    computed = classification_metrics(model, x, y) if task == "classification" else regression_metrics(model, x, y)
    names = wanted or list(CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    return {n: round(float(computed[n]), 6) for n in names if n in computed and math.isfinite(computed[n])}
