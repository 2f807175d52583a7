"""Continuous training, decided: which triggers fired, and whether that creates a TrainingRun now.

Pure, like the canary state machine: the controller evaluates the triggers (Prometheus for drift and
quality, the cache for the template's Dataset, the clock for the schedule), and this decides with the
status alone — at most one retraining run in flight, a cooldown after the last one, a cap per 24 hours,
Suggest recording instead of creating — so a restarted operator decides the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..api.clock import format_time, parse_duration, parse_time
from ..api.cron import next_run
from ..api.modeldeployment import RetrainingEvent, RetrainingSpec, RetrainingStatus
from ..api.names import RETRAINING_LABEL, TRIGGER_ANNOTATION  # noqa: F401 (read here, defined with every key)

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class Fired:
    """One trigger that fired, and its evidence."""

    trigger: str
    metric: str = ""
    value: float | None = None
    bound: float | None = None
    window: str = ""
    message: str = ""


@dataclass
class RetrainingDecision:
    status: RetrainingStatus
    create: str | None = None  # the name of the TrainingRun to create now
    evidence: Fired | None = None
    wake_at: dt.datetime | None = None


def run_name(md: str, number: int) -> str:
    """Deterministic: the n-th run this ModelDeployment created (a retried create finds it exists)."""
    return f"{md}-retrain-{number}"


def schedule_fired(spec: RetrainingSpec, status: RetrainingStatus, now: dt.datetime) -> Fired | None:
    """Whether a scheduled moment came since the schedule's last moment (or since retraining was set up)."""
    schedule, last = spec.triggers.schedule, parse_time(status.schedule_from)
    if not schedule or last is None:
        return None
    due = next_run(schedule, last)
    return Fired("schedule", message=f"the schedule {schedule!r} named {format_time(due)}") if due <= now else None


def dataset_fired(spec: RetrainingSpec, status: RetrainingStatus, version: str | None) -> Fired | None:
    """Whether the template's Dataset has a version other than the one last seen (the first seen is no trigger)."""
    if not spec.triggers.new_dataset_version or not version or status.dataset_version in (None, version):
        return None
    name = spec.template.dataset_ref.name
    return Fired("newDatasetVersion", metric=f"Dataset {name}", message=f"Dataset {name} has a new version {version}")


def next_retraining(
    spec: RetrainingSpec,
    status: RetrainingStatus | None,
    *,
    md: str,
    fired: list[Fired],
    now: dt.datetime,
    in_flight: list[str],
    dataset_version: str | None,
    taken: frozenset[str] = frozenset(),
    rolled_back: frozenset[str] = frozenset(),
) -> RetrainingDecision:
    """The retraining status after evaluating the triggers at `now`, and the run to create, if any.

    The status changes only when something happens (a trigger fires, the Dataset moves, what holds a
    trigger changes): evaluating triggers that do not fire writes nothing. `taken`: the TrainingRun names
    that exist — a run is never created under one (the ModelDeployment was re-created, an earlier create
    was not recorded): the next free number is used, so a trigger is never consumed by a name collision.
    `rolled_back`: runs whose version lost its canary (or was rolled back after): the loop did not heal,
    so they start no cooldown (the daily cap still counts them).
    """
    status = (status or RetrainingStatus()).model_copy(deep=True)
    if status.schedule_from is None or any(f.trigger == "schedule" for f in fired):
        status.schedule_from = format_time(now)  # a scheduled moment is consumed whether it creates or is held
    status.dataset_version = dataset_version or status.dataset_version
    wake_at = now + dt.timedelta(seconds=parse_duration(spec.check_interval))
    if not fired:
        status.waiting = None
        return RetrainingDecision(status, wake_at=wake_at)
    evidence = fired[0]
    decision = "Created" if spec.mode == "Auto" else "Suggested"  # a suggestion has its cooldown and cap too
    created = [e for e in status.history if e.decision == decision]
    healing = [e for e in created if e.run not in rolled_back]
    last = parse_time(healing[0].at) if healing else None
    cooldown_end = last + dt.timedelta(seconds=parse_duration(spec.cooldown)) if last else None
    day = [e for e in created if (t := parse_time(e.at)) is not None and now - t < dt.timedelta(days=1)]
    if in_flight:
        status.waiting = f"{evidence.trigger} fired, but the retraining run {in_flight[0]} is still in flight"
        return RetrainingDecision(status, wake_at=wake_at)
    if cooldown_end is not None and now < cooldown_end:
        status.waiting = f"{evidence.trigger} fired, but the cooldown lasts until {format_time(cooldown_end)}"
        return RetrainingDecision(status, wake_at=min(wake_at, cooldown_end))
    if len(day) >= spec.max_per_day:
        oldest = min(t for e in day if (t := parse_time(e.at)) is not None)
        status.waiting = (
            f"{evidence.trigger} fired, but {len(day)} runs in 24 hours is the cap (maxPerDay): the "
            f"next one from {format_time(oldest + dt.timedelta(days=1))}"
        )
        return RetrainingDecision(status, wake_at=wake_at)
    number = status.created + 1
    while run_name(md, number) in taken:
        number += 1
    name = run_name(md, number)
    event = RetrainingEvent(
        at=format_time(now),
        trigger=evidence.trigger,
        metric=evidence.metric,
        value=evidence.value,
        bound=evidence.bound,
        window=evidence.window,
        message=evidence.message,
        run=name,
        decision=decision,
    )
    status.history = [event, *status.history][:HISTORY_LIMIT]
    status.waiting = None
    if spec.mode == "Auto":
        status.created = number
        return RetrainingDecision(status, create=name, evidence=evidence, wake_at=wake_at)
    return RetrainingDecision(status, evidence=evidence, wake_at=wake_at)
