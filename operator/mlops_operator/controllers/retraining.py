"""Continuous training, observed and acted on: evaluate a ModelDeployment's retraining triggers (drift
and quality measured on Prometheus beside the reconcile, like an analysis; the schedule; the template's
Dataset), let the pure decision (rollout.retraining) say whether a run is due, and create it.

A module of its own beside the rollout (controllers/modeldeployment.py calls `reconcile_retraining`
once the stable version serves): the rollout and the loop that feeds it new versions are two controllers.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..adapters import kube
from ..adapters.prometheus import measure
from ..api import GROUP, VERSION
from ..api.clock import format_time, parse_duration
from ..api.dataset import REFRESH_ANNOTATION
from ..api.modeldeployment import (
    AnalysisMetric,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    RetrainingSpec,
    RetrainingStatus,
)
from ..api.reasons import EventReason, Verdict
from ..config import OperatorConfig
from ..registry.rollbacks import rollback_record
from ..rollout.retraining import (
    RETRAINING_LABEL,
    TRIGGER_ANNOTATION,
    Fired,
    dataset_fired,
    next_retraining,
    schedule_fired,
)
from .cache import CACHE
from .contract import Events, Observed
from .measurements import take_measurement

DRIFT_STEP_SECONDS = 15  # the drift trigger's subquery resolution


def trigger_metrics(spec: RetrainingSpec, *, namespace: str, model: str, version: str) -> list[AnalysisMetric]:
    """The drift and quality triggers as analysis metrics of the served version: a Failed one fires."""
    metrics = []
    drift = spec.triggers.drift
    if drift is not None:
        series = "mlops_feature_psi" if drift.on == "features" else "mlops_prediction_psi"
        selector = f'namespace="{namespace}",model="{model}",version="{version}"'
        # Above the threshold over the whole window: its lowest point, and only once points cover the
        # window (a version's series begins when its servers have seen enough rows: a shorter one is no
        # evidence of a drift lasting `for`).
        sampled = f"max({series}{{{selector}}})[{drift.for_}:{DRIFT_STEP_SECONDS}s]"
        points = int(parse_duration(drift.for_) // DRIFT_STEP_SECONDS)
        query = f"min_over_time({sampled}) and count_over_time({sampled}) >= {points}"
        metrics.append(
            AnalysisMetric(name="retraining-drift", query=query, success_condition=f"result <= {drift.threshold}")
        )
    quality = spec.triggers.quality
    if quality is not None:
        metrics.append(
            AnalysisMetric(
                name="retraining-quality",
                template=quality.template,
                threshold=quality.bound,
                min_samples=quality.min_samples,
            )
        )
    return metrics


# When each ModelDeployment's triggers were last evaluated. In memory, not in status: evaluating triggers
# that do not fire must not write (an idle object stays silent); a restarted operator evaluates at once,
# and decides the same from status.
TRIGGERS_CHECKED: dict[tuple[str, str], dt.datetime] = {}


def reconcile_retraining(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    *,
    observed: Observed,
    model: str,
    now: Any,
    events: Events,
) -> tuple[Any, Any]:
    """Evaluate the triggers when due (drift and quality measured beside the reconcile, like an analysis)
    and create the TrainingRun the decision asks for (its Event added to `events`); (retraining status,
    when to look again)."""
    retraining, namespace, name = spec.retraining, observed.namespace, observed.name
    assert retraining is not None and status.stable is not None
    current = status.retraining
    due = TRIGGERS_CHECKED.get((namespace, name))
    if due is not None:
        due += dt.timedelta(seconds=parse_duration(retraining.check_interval))
        if now < due:
            return current, due
    metrics = trigger_metrics(retraining, namespace=namespace, model=model, version=status.stable.version)
    fired: list[Fired] = []
    if metrics:
        prometheus = spec.prometheus_url or OperatorConfig.from_env().prometheus_url
        window = {"retraining-quality": retraining.triggers.quality.for_ if retraining.triggers.quality else "1m"}
        taken = take_measurement(
            ("retraining", namespace, name),
            version=status.stable.version,
            measure=lambda: [
                measure(
                    [m],
                    prometheus_url=prometheus,
                    namespace=namespace,
                    model=model,
                    version=status.stable.version,
                    window=window.get(m.name, "1m"),
                )[2][0]
                for m in metrics
            ],
            wake=("modeldeployments", namespace, name),
        )
        if taken is None:
            return current, None  # measuring: its end wakes this object
        for result in taken:
            if result.phase == Verdict.FAILED:
                trigger = "drift" if result.metric == "retraining-drift" else "quality"
                source = retraining.triggers.drift if trigger == "drift" else retraining.triggers.quality
                fired.append(
                    Fired(
                        trigger,
                        metric=result.metric,
                        value=result.value,
                        bound=getattr(source, "threshold", None) or getattr(source, "bound", None),
                        window=source.for_,
                        message=result.message,
                    )
                )
    dataset = CACHE.get("datasets", namespace, retraining.template.dataset_ref.name)
    version = ((dataset or {}).get("status") or {}).get("version")
    base = current or RetrainingStatus()
    fired += [f for f in (schedule_fired(retraining, base, now), dataset_fired(retraining, base, version)) if f]
    in_flight = [
        r["metadata"]["name"]
        for r in CACHE.list("trainingruns", namespace, labels={RETRAINING_LABEL: name})
        if ((r.get("status") or {}).get("phase")) not in ("Succeeded", "Failed")
    ]
    runs = CACHE.list("trainingruns", namespace)
    taken = frozenset(r["metadata"]["name"] for r in runs)
    rolled_back = frozenset(status.failed_versions) | {r["metadata"]["name"] for r in runs if rollback_record(r)}
    decision = next_retraining(
        retraining,
        current,
        md=name,
        fired=fired,
        now=now,
        in_flight=in_flight,
        dataset_version=version,
        taken=taken,
        rolled_back=rolled_back,
    )
    TRIGGERS_CHECKED[(namespace, name)] = now
    if decision.evidence is not None:
        words = f"{decision.evidence.trigger}: {decision.evidence.message}"
        if decision.create:
            fired_at = format_time(now)
            run = desired_retraining_run(
                retraining, md=name, run=decision.create, evidence=decision.evidence, read_after=fired_at
            )
            request_refresh(namespace, retraining.template.dataset_ref.name, at=fired_at)
            CACHE.observe("trainingruns", kube.create_custom("trainingruns", namespace, run))
            events.info(reason=EventReason.RETRAINING_STARTED, message=f"TrainingRun {decision.create} ({words})")
        else:
            events.info(
                reason=EventReason.RETRAINING_SUGGESTED,
                message=f"would create TrainingRun {decision.status.history[0].run} ({words})",
            )
    return decision.status, decision.wake_at


def request_refresh(namespace: str, dataset: str, *, at: str) -> None:
    """Ask the template's Dataset to read its source again now (controllers.dataset REFRESH_ANNOTATION): the
    run a trigger creates trains on data read after the trigger fired, which includes what fired it."""
    try:
        patch = {"annotations": {REFRESH_ANNOTATION: at}}
        CACHE.observe("datasets", kube.patch_metadata("datasets", namespace, dataset, patch))
    except kube.ApiException as error:
        if error.status != 404:  # no such Dataset: the run waits for it, and says so
            raise


def desired_retraining_run(
    spec: RetrainingSpec, *, md: str, run: str, evidence: Fired, read_after: str | None = None
) -> dict[str, Any]:
    """A TrainingRun of the template, labelled for the ModelDeployment that triggered it and carrying the
    trigger's evidence; no owner reference: a model version outlives the ModelDeployment. With `read_after`
    (when the trigger fired) it trains on the Dataset's data only once read after that moment."""
    trigger = {
        "trigger": evidence.trigger,
        "metric": evidence.metric,
        "value": evidence.value,
        "bound": evidence.bound,
        "window": evidence.window,
        "message": evidence.message,
    }
    body = spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    if read_after and not spec.template.dataset_ref.version:
        body["datasetRef"]["readAfter"] = read_after
        trigger["trainsOnDataReadAfter"] = read_after
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingRun",
        "metadata": {
            "name": run,
            "labels": {RETRAINING_LABEL: md[:63]},
            "annotations": {TRIGGER_ANNOTATION: json.dumps(trigger)},
        },
        "spec": body,
    }
