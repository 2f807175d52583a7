"""Builds scikit-learn pipelines from allow-listed class paths only: no arbitrary import is possible."""

from __future__ import annotations

import importlib
from typing import Any

from ..api.estimators import CLASSIFIERS, PREPROCESSORS, REGRESSORS


class PermanentTrainingError(Exception):
    """A problem that retrying cannot fix (bad parameters, unusable data): the Job fails at once."""


def allowed_class(path: str) -> type:
    if path not in CLASSIFIERS + REGRESSORS + PREPROCESSORS:
        raise PermanentTrainingError(f"{path!r} is not in the allow-list of estimators and preprocessing steps")
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_pipeline(estimator: str, *, params: dict[str, Any], preprocessing: list[str], seed: int) -> Any:
    from sklearn.pipeline import Pipeline

    try:
        model = allowed_class(estimator)(**params)
    except TypeError as error:
        raise PermanentTrainingError(f"invalid parameters for {estimator}: {error}") from None
    if "random_state" in model.get_params() and "random_state" not in params:
        model.set_params(random_state=seed)
    steps = [(path.rsplit(".", 1)[1].lower(), allowed_class(path)()) for path in preprocessing]
    return Pipeline([*steps, ("model", model)])
