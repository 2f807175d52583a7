"""Champion bookkeeping on the Kubernetes API: find the champion, hand the title over.

Handing over demotes every other champion before labelling the new one, under a per-model lock,
so that two champions of one model never coexist (there can be a moment with none).
"""

from __future__ import annotations

import threading
from collections import defaultdict

from ..registry import MODEL_LABEL, PROMOTED_LABEL
from ..registry.promotion import Champion
from . import kube

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def model_lock(namespace: str, model: str) -> threading.Lock:
    with _locks_guard:
        return _locks[(namespace, model)]


def champions(namespace: str, model: str) -> list[dict]:
    """Listed from the API, not the cache: a promotion must see a title handed over a moment ago."""
    return kube.list_custom("trainingruns", namespace, f"{MODEL_LABEL}={model},{PROMOTED_LABEL}=true")


def current_champion(namespace: str, model: str, *, exclude: str) -> Champion | None:
    found = [run for run in champions(namespace, model) if run["metadata"]["name"] != exclude]
    if not found:
        return None
    run = max(found, key=lambda r: (r.get("status") or {}).get("promotion", {}).get("decidedAt") or "")
    return Champion(name=run["metadata"]["name"], metrics=(run.get("status") or {}).get("metrics") or {})


def hand_over(namespace: str, model: str, *, to: str) -> list[str]:
    """Make `to` the only champion of `model`; returns the runs demoted."""
    demoted = [run["metadata"]["name"] for run in champions(namespace, model) if run["metadata"]["name"] != to]
    for name in demoted:
        kube.patch_labels("trainingruns", namespace, name, {PROMOTED_LABEL: "false"})
    kube.patch_labels("trainingruns", namespace, to, {MODEL_LABEL: model, PROMOTED_LABEL: "true"})
    return demoted
