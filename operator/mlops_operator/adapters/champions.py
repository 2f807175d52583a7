"""Champion bookkeeping on the Kubernetes API: find the champion, hand the title over.

Handing over demotes every other champion before labelling the new one, under a per-model lock,
so that two champions of one model never coexist (there can be a moment with none). Handing back (a
champion rolled back) gives the title to the version promoted last before it that was not rolled back.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from ..api.trainingrun import TrainingRunSpec
from ..registry import MODEL_LABEL, PROMOTED_LABEL, ROLLED_BACK_LABEL
from ..registry.promotion import Champion, held_out_rows
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
    status = run.get("status") or {}
    model, rows = status.get("model") or {}, None
    try:  # read as written: a champion whose spec no longer parses still names its rows
        spec = TrainingRunSpec.model_validate(run.get("spec") or {})
        rows = held_out_rows(spec, (status.get("dataset") or {}).get("version"))
    except ValueError:
        pass
    return Champion(
        name=run["metadata"]["name"],
        metrics=status.get("metrics") or {},
        model_uri=model.get("uri", ""),
        sha256=model.get("sha256", ""),
        rows=rows,
    )


def hand_over(namespace: str, model: str, *, to: str) -> list[str]:
    """Make `to` the only champion of `model`; returns the runs demoted."""
    demoted = [run["metadata"]["name"] for run in champions(namespace, model) if run["metadata"]["name"] != to]
    for name in demoted:
        kube.patch_labels("trainingruns", namespace, name, {PROMOTED_LABEL: "false"})
    kube.patch_labels("trainingruns", namespace, to, {MODEL_LABEL: model, PROMOTED_LABEL: "true"})
    return demoted


def _decided_at(run: dict) -> str:
    return ((run.get("status") or {}).get("promotion") or {}).get("decidedAt") or ""


def _rolled_back(run: dict) -> bool:
    return (run["metadata"].get("labels") or {}).get(ROLLED_BACK_LABEL) == "true"


def promoted_after(namespace: str, model: str, *, run: str, decided_at: str | None) -> str | None:
    """Another run of `model` promoted after `decided_at` (labelled champion, or recorded Promoted with the
    label still to come), not rolled back; None when `run` is the latest promotion."""
    later = [
        other
        for other in kube.list_custom("trainingruns", namespace, f"{MODEL_LABEL}={model}")
        if other["metadata"]["name"] != run
        and not _rolled_back(other)
        and _decided_at(other) > (decided_at or "")
        and (
            ((other.get("status") or {}).get("promotion") or {}).get("decision") == "Promoted"
            or (other["metadata"].get("labels") or {}).get(PROMOTED_LABEL) == "true"
        )
    ]
    return max(later, key=_decided_at)["metadata"]["name"] if later else None


def hand_back(namespace: str, model: str, *, from_: str) -> str | None:
    """Take the title from `from_` (rolled back) and give it to the last good version: the run promoted
    most recently before it that was not rolled back and still has its model. Returns that run's name."""
    runs = kube.list_custom("trainingruns", namespace, f"{MODEL_LABEL}={model}")
    good = [
        run
        for run in runs
        if run["metadata"]["name"] != from_
        and not _rolled_back(run)
        and (run.get("status") or {}).get("model")
        and ((run.get("status") or {}).get("promotion") or {}).get("decision") in ("Promoted", "Superseded")
    ]
    kube.patch_labels("trainingruns", namespace, from_, {PROMOTED_LABEL: "false"})
    if not good:
        return None
    back_to = max(good, key=_decided_at)["metadata"]["name"]
    hand_over(namespace, model, to=back_to)
    return back_to
