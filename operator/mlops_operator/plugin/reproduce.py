"""`kubectl mlops reproduce RUN`: train a finished run again and say whether it came out the same.

The copy trains on the dataset version the run was pinned to (status.dataset), with the same estimator,
parameters, preprocessing, split and seed (spec.evaluation: the seed fixes the split and the estimator's
randomness), and is never promoted by itself (policy manual, no gates: it competes for nothing). When it
has finished, its evidence is compared with the run's: the metrics, value for value, and the golden set
(status.model.goldenSha256: the same held-out rows with what the model predicted for them and, for a
classifier, its probabilities, written exactly), beside any library the two were trained with that
differs. The plans and the comparison are pure; `reproduce` is the one place that creates and polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import GROUP, VERSION
from ..api.common import TRAINING_RUN_NAME
from ..api.names import REPRODUCES_LABEL, TRAINING_RUN
from ..api.reasons import TrainingPhase
from ..api.trainingrun import TrainingRunStatus
from .args import PluginError
from .views import parse_status

GENERATED_SUFFIX = 5  # characters the API server appends to a generateName
SUFFIX = "-repro-"
# Exit codes: 0 identical, 1 an error (the plugin's for any), 2 the copy differs or failed.
DIFFERS = 2


def reproduction_manifest(run: dict[str, Any]) -> dict[str, Any]:
    """The TrainingRun that repeats `run`; PluginError when the run has nothing to repeat yet."""
    meta, spec = run.get("metadata") or {}, dict(run.get("spec") or {})
    name = meta.get("name", "?")
    status: TrainingRunStatus = parse_status(TrainingRunStatus, run)
    if status.phase != TrainingPhase.SUCCEEDED or status.model is None or status.dataset is None:
        phase = status.phase or "not started"
        raise PluginError(f"TrainingRun {name} is {phase}: only a run that stored a model can be reproduced")
    spec["datasetRef"] = {"name": status.dataset.name, "version": status.dataset.version}
    spec["promotion"] = {"policy": "manual"}
    room = TRAINING_RUN_NAME.max_length - len(SUFFIX) - GENERATED_SUFFIX
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith("app.kubernetes.io/")}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": TRAINING_RUN.kind,
        "metadata": {
            "generateName": name[:room].rstrip("-") + SUFFIX,
            "labels": {**labels, REPRODUCES_LABEL: name},
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class Comparison:
    identical: bool
    lines: list[str]


def compare_runs(original: dict[str, Any], copy: dict[str, Any]) -> Comparison:
    """Whether `copy` (a finished reproduction) predicted and scored as `original` did, in words."""
    name, copy_name = original["metadata"]["name"], copy["metadata"]["name"]
    was: TrainingRunStatus = parse_status(TrainingRunStatus, original)
    now: TrainingRunStatus = parse_status(TrainingRunStatus, copy)
    if now.phase != TrainingPhase.SUCCEEDED or now.model is None or was.model is None:
        why = f"{now.reason}: {now.message}" if now.reason else "it stored no model"
        return Comparison(False, [f"{copy_name} did not reproduce {name}: {now.phase} ({why})"])
    lines, same = [], True
    if was.model.golden_sha256 is None or now.model.golden_sha256 is None:
        lines.append("golden set   not compared: the run has none (trained before golden sets, or goldenRows 0)")
        same = False
    elif was.model.golden_sha256 == now.model.golden_sha256:
        lines.append(f"golden set   the same predictions on the same rows (golden.json {now.model.golden_sha256[:12]})")
    else:
        lines.append(
            f"golden set   DIFFERS (golden.json {was.model.golden_sha256[:12]} != {now.model.golden_sha256[:12]})"
        )
        same = False
    for metric in sorted(set(was.metrics) | set(now.metrics)):
        a, b = was.metrics.get(metric), now.metrics.get(metric)
        equal = a == b
        same = same and equal
        lines.append(f"{metric:<12} {a!r} {'==' if equal else '!='} {b!r}")
    differences = environment_differences(was, now)
    lines.append(
        "environment  the same libraries"
        if not differences
        else "environment  " + ", ".join(f"{key} {a} -> {b}" for key, (a, b) in differences.items())
    )
    verdict = "identical" if same else "NOT identical"
    return Comparison(same, [f"{copy_name} reproduces {name}: {verdict}", *("  " + line for line in lines)])


def environment_differences(was: TrainingRunStatus, now: TrainingRunStatus) -> dict[str, tuple[str, str]]:
    from ..modelformat.replay import environment_differences as differing

    def versions(status: TrainingRunStatus) -> dict[str, str]:
        environment = status.model.environment if status.model else None
        return environment.model_dump(by_alias=True, exclude_none=True) if environment else {}

    return differing(versions(was), versions(now))


def finished(run: dict[str, Any]) -> bool:
    phase = (run.get("status") or {}).get("phase")
    return any(phase == known for known in TrainingPhase if known.terminal)


def reproduce(
    create: Callable[[dict[str, Any]], dict[str, Any]],
    fetch: Callable[[str], dict[str, Any]],
    name: str,
    *,
    wait: bool,
    timeout: float,
    say: Callable[[str], None] = print,
    poll_seconds: float = 2.0,
) -> int:
    """Create the reproduction of `name`, wait for it and compare (exit code: 0 identical, 2 not)."""
    original = fetch(name)
    made = create(reproduction_manifest(original))
    copy_name = made["metadata"]["name"]
    namespace = made["metadata"].get("namespace", "")
    say(f"Created TrainingRun {copy_name}: {name} again, on its dataset version, never promoted by itself.")
    if not wait:
        say(f"Compare later with: kubectl get tr -n {namespace} {name} {copy_name}")
        return 0
    deadline = time.monotonic() + timeout
    copy = made
    while not finished(copy):
        if time.monotonic() >= deadline:
            raise PluginError(f"TrainingRun {copy_name} did not finish within {timeout:.0f}s (it goes on)")
        time.sleep(poll_seconds)
        copy = fetch(copy_name)
    compared = compare_runs(original, copy)
    say("\n".join(compared.lines))
    return 0 if compared.identical else DIFFERS
