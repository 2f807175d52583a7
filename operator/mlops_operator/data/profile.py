"""The profile of a dataset version: the reference the model server measures drift against.

Per numeric feature: decile bin edges and the share of rows in each bin, so that the Population
Stability Index (PSI) of live traffic can be computed bin by bin; a numeric feature of few distinct
values (a category coded as numbers, a flag) also gets their frequencies, for a frequency-based PSI.
For the target: class balance, or for a numeric target its decile bins too (the reference of the
predictions' drift). The JSON is the model server's drift reference (server/monitoring.py): keys are
only ever added to it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pyarrow.compute as pc

from .table import Table, TableError, in_order

BINS = 10
MAX_CLASSES = 50
MAX_CATEGORIES = 20  # a numeric feature with at most this many distinct values is also a categorical one


def class_key(value: Any) -> str:
    """One text per class or category, whatever JSON or CSV made of it: 1, 1.0 and "1" are "1"; "setosa" is itself."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return class_key(number) if math.isfinite(number) else value
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Share of the values in each of the len(edges)+1 bins (-inf, e0], (e0, e1], … (e_last, inf)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)
    return (counts / values.size).tolist()


def psi(expected: list[float], actual: list[float], *, floor: float = 1e-4) -> float:
    """Population Stability Index between two bin-share vectors (0: same; > 0.2: a real shift)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, floor), max(a, floor)
        total += (a - e) * math.log(a / e)
    return total


def value_counts(table: Table, name: str) -> tuple[list[str], np.ndarray]:
    """The column's distinct texts in code-point order and their counts: what np.unique of the texts gave."""
    counted = pc.value_counts(table.text(name))
    values = counted.field("values")
    order = pc.sort_indices(values)  # UTF-8 byte order is code-point order
    return values.take(order).to_pylist(), np.asarray(counted.field("counts").take(order), dtype=np.int64)


def feature_profile(table: Table, name: str) -> dict[str, Any]:
    """One feature: decile bins when every cell is a number (or blank), else its 20 most frequent texts."""
    try:
        values = table.numeric_column(name)
    except TableError:
        categories, counts = value_counts(table, name)
        order = np.argsort(-counts)[:20]
        return {
            "kind": "categorical",
            "frequencies": {categories[i]: float(counts[i] / counts.sum()) for i in order},
        }
    finite = values[~np.isnan(values)]
    profile = {
        "kind": "numeric",
        **numeric_bins(values),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std()) if finite.size else None,
        "missing": float(np.isnan(values).mean()) if values.size else 0.0,
    }
    distinct, counts = np.unique(finite, return_counts=True)
    if 0 < distinct.size <= MAX_CATEGORIES:
        profile["frequencies"] = {class_key(v): float(c / finite.size) for v, c in zip(distinct, counts, strict=True)}
    return profile


def numeric_bins(values: np.ndarray) -> dict[str, list[float]]:
    """Decile edges of the finite values, and the share of the values in each bin."""
    finite = values[~np.isnan(values)]
    edges = sorted(set(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]).tolist())) if finite.size else []
    return {"edges": edges, "shares": bin_shares(values, edges)}


def build_profile(table: Table, target: str) -> dict[str, Any]:
    """The profile; features are worked out on a few threads (numpy and pyarrow release the GIL)."""
    names = [name for name in table.header if name != target]
    features = dict(zip(names, in_order(functools.partial(feature_profile, table), names), strict=True))
    labels, counts = value_counts(table, target)
    target_profile: dict[str, Any]
    if len(labels) <= MAX_CLASSES:
        shares = {k: float(c / counts.sum()) for k, c in zip(labels, counts, strict=True)}
        target_profile = {"kind": "classes", "shares": shares}
    else:
        values = table.numeric_column(target)
        target_profile = {
            "kind": "numeric",
            "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values)),
            **numeric_bins(values),
        }
    return {"rows": table.num_rows, "features": features, "target": {"name": target, **target_profile}}
