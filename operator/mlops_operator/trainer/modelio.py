"""Models on disk: skops format (no pickle), sha256-checked, loaded with an explicit trusted-type list.

A model file that needs any type outside `TRUSTED_TYPES` (beyond what skops trusts by default) is
refused before anything in it is loaded.
"""

from __future__ import annotations

import hashlib
from typing import Any

# skops already trusts scikit-learn's estimators and numpy's containers; these are the remaining
# internal types the allow-listed estimators store (tree structures, neighbour indexes, distances).
TRUSTED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)


class ModelIntegrityError(Exception):
    """The model file is not the one recorded, or needs types outside the trusted list."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_model(model: Any) -> bytes:
    import skops.io

    return skops.io.dumps(model)


def load_model(data: bytes, *, expected_sha256: str) -> Any:
    """The model in `data`, after checking its sha256 and that it needs only trusted types."""
    import skops.io

    actual = sha256_hex(data)
    if actual != expected_sha256.removeprefix("sha256:"):
        raise ModelIntegrityError(f"model sha256 is {actual}, expected {expected_sha256}")
    untrusted = skops.io.get_untrusted_types(data=data)
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelIntegrityError(f"model needs types outside the trusted list: {refused}")
    return skops.io.loads(data, trusted=untrusted)
