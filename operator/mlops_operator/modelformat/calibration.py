"""A label-free accuracy estimate: how often the model is right, judged from its own confidence (CBPE).

Labels of live traffic arrive late or never, so the server cannot measure accuracy when it matters.
What it always has is the model's confidence in each prediction (the predicted class's probability,
the maximum of `predict_proba`). Raw probabilities are often not honest (naive Bayes is overconfident,
trees of pure leaves are always sure), so the trainer learns on the held-out split how often a
prediction of a given confidence was right — an isotonic (monotone) step function — and stores it with
the model (`calibration.json`). The mean calibrated confidence of a batch of live predictions is the
estimated accuracy of that batch: confidence-based performance estimation, as NannyML does it.

What the estimate can see: a shift of the inputs (covariate shift) that changes the model's
confidence — more traffic near the decision boundary lowers it, as it lowers the true accuracy.
What it cannot see:
- concept drift with unchanged inputs: the same features now meaning another label; the confidence
  does not change, so neither does the estimate, however wrong the model has become;
- inputs that lost part of their meaning, e.g. noise added to the features: the labels no longer
  follow the observed features as they did, a concept change too; a linear model's confidence may
  even rise (the margins spread) while its accuracy falls;
- a model that is confidently wrong in a region the held-out split never showed: the calibration
  only knows the confidences it was fitted on.
It assumes that what it learned on the held-out split — P(right | confidence) — still holds for live
traffic. It is an estimate to watch between labels, not a replacement for the accuracy from labels.

Pure: numpy here, scikit-learn imported inside the function that uses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Fewer held-out rows than this leave the step function to a handful of predictions: no honest estimate.
MIN_CALIBRATION_ROWS = 20
CALIBRATION_KIND = "isotonic"
CONFIDENCE_INPUT = "maxPredictProba"  # what `x` of the step function is: the server must compute the same
_DIGITS = 6


def prediction_confidence(model: Any, x: np.ndarray) -> np.ndarray | None:
    """The model's confidence in each of its predictions (the largest class probability), or None.

    None when the model has no usable `predict_proba`: an SVC without `probability=True` (scikit-learn
    raises AttributeError, also through a Pipeline) or an estimator that raises NotImplementedError.
    Such a model gets no calibration, rather than one made up from scores that are not probabilities.
    """
    try:
        proba = model.predict_proba(x)
    except (AttributeError, NotImplementedError):
        return None
    return np.asarray(proba, dtype=float).max(axis=1)


def fit_calibration(confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any] | None:
    """The calibration learned on the held-out split, as a small JSON-able dict, or None.

    `confidence` is each held-out row's `prediction_confidence`, `correct` whether its prediction was
    right. The result is the isotonic step function P(right | confidence) — its thresholds `x` and values
    `y` — plus the number of `rows` it was fitted on and the `heldOutAccuracy` it reproduces there.

    None, because the held-out split gives no evidence of how confidence relates to being right, when:
    - it has fewer than MIN_CALIBRATION_ROWS rows;
    - every prediction was right (or every one wrong): isotonic regression then returns a constant —
      the held-out accuracy — whatever the confidence; we choose None over that constant, because it
      would report the held-out accuracy for any traffic, blind to the very shift it exists to see;
    - the confidence is the same for every row (a tree of pure leaves is always 1.0): same reason;
    - some confidence is not a finite number.
    Raises ValueError for arrays of different lengths (a caller's mistake, not missing evidence).
    """
    confidence = np.asarray(confidence, dtype=float).ravel()
    correct = np.asarray(correct, dtype=bool).ravel()
    if confidence.shape != correct.shape:
        raise ValueError(f"{confidence.size} confidences but {correct.size} correctness values")
    if (
        confidence.size < MIN_CALIBRATION_ROWS
        or not np.all(np.isfinite(confidence))
        or correct.all()
        or not correct.any()
        or np.ptp(confidence) == 0
    ):
        return None

    from sklearn.isotonic import IsotonicRegression

    isotonic = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(confidence, correct.astype(float))
    return {
        "kind": CALIBRATION_KIND,
        "input": CONFIDENCE_INPUT,
        "x": [round(float(v), _DIGITS) for v in isotonic.X_thresholds_],
        "y": [round(float(v), _DIGITS) for v in isotonic.y_thresholds_],
        "rows": int(confidence.size),
        "heldOutAccuracy": round(float(correct.mean()), _DIGITS),
    }


def calibrated_confidence(calibration: dict[str, Any], confidence: np.ndarray) -> np.ndarray:
    """The calibrated probability that each prediction is right, from the model's confidence in it.

    Between thresholds the step function is interpolated linearly (as scikit-learn's isotonic predict
    does), outside them it is held at the end values. A non-finite confidence stays NaN.
    Raises ValueError for a calibration that is not one `fit_calibration` makes.
    """
    xs, ys = _thresholds(calibration)
    confidence = np.asarray(confidence, dtype=float).ravel()
    return np.clip(np.interp(confidence, xs, ys), 0.0, 1.0)


def estimated_accuracy(calibration: dict[str, Any], confidence: np.ndarray) -> float | None:
    """The estimated accuracy of a batch of predictions: the mean calibrated confidence of its rows.

    None for a batch without a row of finite confidence: no predictions, no estimate.
    """
    calibrated = calibrated_confidence(calibration, confidence)
    calibrated = calibrated[np.isfinite(calibrated)]
    if calibrated.size == 0:
        return None
    return float(calibrated.mean())


def _thresholds(calibration: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    if calibration.get("kind") != CALIBRATION_KIND or calibration.get("input") != CONFIDENCE_INPUT:
        raise ValueError(f"not a calibration of kind {CALIBRATION_KIND!r} on {CONFIDENCE_INPUT!r}")
    try:
        xs = np.asarray(calibration["x"], dtype=float)
        ys = np.asarray(calibration["y"], dtype=float)
    except (KeyError, TypeError, ValueError):
        raise ValueError("a calibration holds the numbers x and y of its step function") from None
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0 or np.any(np.diff(xs) < 0):
        raise ValueError("a calibration's x and y are lists of one length, x not decreasing")
    return xs, ys
