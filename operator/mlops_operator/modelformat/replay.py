"""The golden set: rows of a version's held-out data with what the fitted model predicted for them, stored
with the version (golden.json, covered by MANIFEST.json). A server that loads the version predicts the
rows again before it reports ready: scikit-learn does not promise that a model loads or predicts the same
on other library versions, so a version whose predictions changed is not served (`ModelNotReproducible`),
and one served on other libraries that still predicts the same says so (`EnvironmentDiffers`). Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

GOLDEN_ROWS = 200  # held-out rows kept by default (TrainingRun spec.evaluation.goldenRows)
GOLDEN_MAX_BYTES = 512 * 1024  # fewer rows when they would take more
# The environment keys whose versions decide what a model predicts (modelformat/environment.py).
DECIDING = ("python", "scikitLearn", "numpy", "scipy", "skops")
POLICIES = ("strict", "replay", "off")


def _plain(values: np.ndarray) -> list[Any]:
    return np.asarray(values).tolist()


def golden_set(
    model: Any, rows: np.ndarray, *, max_rows: int = GOLDEN_ROWS, max_bytes: int = GOLDEN_MAX_BYTES
) -> bytes:
    """golden.json: the first rows of `rows` (at most `max_rows`, fewer if they would exceed `max_bytes`)
    with the labels or values `model` predicts for them and, for a classifier that has them, its
    probabilities (classes in `model.classes_` order). Floats are written exactly (shortest repr)."""
    count = min(max_rows, len(rows))
    while True:
        chosen = rows[:count]
        golden: dict[str, Any] = {"rows": _plain(chosen), "predictions": _plain(model.predict(chosen))}
        if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
            golden["classes"] = _plain(model.classes_)
            golden["probabilities"] = _plain(model.predict_proba(chosen))
        text = json.dumps(golden, separators=(",", ":")).encode()
        if len(text) <= max_bytes or count <= 1:
            return text
        count = max(1, count * max_bytes // len(text) - 1)


@dataclass(frozen=True)
class Replay:
    """What predicting the golden rows again gave: equal, or the first row that differs, in words."""

    rows: int
    equal: bool
    difference: str = ""
    largest_probability_difference: float = 0.0


def replay(golden: dict[str, Any], model: Any, *, rtol: float = 1e-9, atol: float = 1e-12) -> Replay:
    """Predict the golden rows with `model` and compare: class labels exactly, regressors' values and
    probabilities within `rtol` (relative) or `atol` (absolute, for values near 0)."""
    rows = np.asarray(golden["rows"], dtype=np.float64)
    if rows.size == 0:
        return Replay(rows=0, equal=True)
    recorded, got = golden["predictions"], _plain(model.predict(rows))
    classify = "classes" in golden
    if classify and _plain(getattr(model, "classes_", [])) != golden["classes"]:
        return Replay(len(rows), False, f"classes {_plain(model.classes_)} where training had {golden['classes']}")
    for i, (want, have) in enumerate(zip(recorded, got, strict=True)):
        same = want == have if classify or not isinstance(want, float) else bool(np.isclose(have, want, rtol, atol))
        if not same:
            return Replay(len(rows), False, f"row {i}: predicted {have!r} where training predicted {want!r}")
    largest = 0.0
    if golden.get("probabilities") is not None:
        want_p = np.asarray(golden["probabilities"], dtype=np.float64)
        have_p = np.asarray(model.predict_proba(rows), dtype=np.float64)
        if want_p.shape != have_p.shape:
            return Replay(len(rows), False, f"probabilities of shape {have_p.shape} where training had {want_p.shape}")
        largest = float(np.max(np.abs(have_p - want_p))) if want_p.size else 0.0
        close = np.isclose(have_p, want_p, rtol=rtol, atol=atol)
        if not close.all():
            i = int(np.argwhere(~close)[0][0])
            return Replay(
                len(rows),
                False,
                f"row {i}: probabilities {_plain(have_p[i])} where training gave {_plain(want_p[i])}",
                largest,
            )
    return Replay(len(rows), True, "", largest)


def environment_differences(recorded: dict[str, str], current: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{key: (trained with, serving with)} for the deciding keys whose versions differ (unknown ones
    recorded by an older trainer are not compared)."""
    return {
        key: (recorded[key], current.get(key, "missing"))
        for key in DECIDING
        if recorded.get(key) and recorded[key] != current.get(key)
    }


def served_on_other_libraries(recorded: dict[str, dict[str, str]], here: dict[str, str]) -> str:
    """In words, which served versions ({version: the environment it was trained with}) the libraries
    `here` differ for, and how; "" when none does."""
    said = []
    for version, environment in sorted(recorded.items()):
        differences = environment_differences(environment, here)
        if differences:
            changed = ", ".join(f"{key} {a} (trained) != {b} (served)" for key, (a, b) in differences.items())
            said.append(f"{version}: {changed}")
    return "; ".join(said)


@dataclass(frozen=True)
class Verdict:
    """Whether a server may serve the version, and the reason and words it reports."""

    serve: bool
    reason: str  # Reproduced | EnvironmentDiffers | ModelNotReproducible | ReplaySkipped
    message: str


def verdict(policy: str, differences: dict[str, tuple[str, str]], result: Replay | None) -> Verdict:
    """`strict`: only on the libraries that trained it; `replay`: on others too if the golden rows are
    predicted the same; `off`: no check. `result` is None when the version has no golden set (trained
    before it existed), which only `strict` refuses when the libraries differ."""
    changed = ", ".join(f"{k} {a} (trained) != {b} (here)" for k, a, b in ((k, *v) for k, v in differences.items()))
    if policy == "off":
        return Verdict(True, "ReplaySkipped", "the replay is off (reproducibility: off)")
    if result is not None and not result.equal:
        where = f" on other libraries ({changed})" if differences else ""
        return Verdict(
            False, "ModelNotReproducible", f"the golden rows are predicted differently{where}: {result.difference}"
        )
    if not differences:
        said = f"{result.rows} golden rows predicted as in training" if result else "no golden set to replay"
        return Verdict(True, "Reproduced", f"the libraries that trained it; {said}")
    if policy == "strict":
        return Verdict(False, "ModelNotReproducible", f"reproducibility strict and the libraries differ: {changed}")
    if result is None:
        return Verdict(True, "EnvironmentDiffers", f"{changed}; the version has no golden set to replay")
    return Verdict(
        True,
        "EnvironmentDiffers",
        f"{changed}; its {result.rows} golden rows are predicted as in training "
        f"(probabilities within {result.largest_probability_difference:.1e})",
    )
