"""The profile of a dataset version: the reference the model server measures drift against.

Per numeric feature: decile bin edges and the share of rows in each bin, so that the Population
Stability Index (PSI) of live traffic can be computed bin by bin. For the target: class balance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .table import Table, TableError

BINS = 10
MAX_CLASSES = 50


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


def build_profile(table: Table, target: str) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for name in table.header:
        if name == target:
            continue
        try:
            values = table.numeric_matrix([name])[:, 0]
        except TableError:
            categories, counts = np.unique(np.asarray(table.column(name)), return_counts=True)
            order = np.argsort(-counts)[:20]
            features[name] = {
                "kind": "categorical",
                "frequencies": {str(categories[i]): float(counts[i] / counts.sum()) for i in order},
            }
            continue
        finite = values[~np.isnan(values)]
        edges = sorted(set(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]).tolist())) if finite.size else []
        features[name] = {
            "kind": "numeric",
            "edges": edges,
            "shares": bin_shares(values, edges),
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
            "missing": float(np.isnan(values).mean()),
        }
    labels, counts = np.unique(np.asarray(table.column(target)), return_counts=True)
    target_profile: dict[str, Any]
    if len(labels) <= MAX_CLASSES:
        shares = {str(k): float(c / counts.sum()) for k, c in zip(labels, counts, strict=True)}
        target_profile = {"kind": "classes", "shares": shares}
    else:
        values = table.numeric_matrix([target])[:, 0]
        target_profile = {"kind": "numeric", "mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}
    return {"rows": len(table.rows), "features": features, "target": {"name": target, **target_profile}}
