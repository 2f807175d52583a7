"""When a rollout changes by itself: pause ends, progress deadlines, measurements, the guard window.

The state machine decides with these rules, the controller schedules its next look with `next_wake`,
and the kubectl plugin says how long is left with them: each rule is written once, so what the
plugin announces is what the operator does. Every moment is computed from timestamps in status, so a
restarted operator keeps the same schedule.
"""

from __future__ import annotations

import datetime as dt

from ..api.clock import parse_duration, parse_time
from ..api.modeldeployment import CanaryStatus, CanaryStep, ModelDeploymentSpec, ModelDeploymentStatus
from ..api.reasons import Reason


def _after(start: str | None, seconds: float) -> dt.datetime | None:
    moment = parse_time(start)
    return None if moment is None else moment + dt.timedelta(seconds=seconds)


def current_step(spec: ModelDeploymentSpec, canary: CanaryStatus) -> CanaryStep | None:
    """The step the canary is at; None once every step is done."""
    steps = spec.strategy.canary.steps
    return steps[canary.step_index] if canary.step_index < len(steps) else None


def steps_weight(steps: list[CanaryStep], step_index: int) -> int:
    """The canary weight the steps ask for at `step_index`: the last setWeight reached (the weights never
    decrease), 0 before the first. It is the steps', not status.canary.weight (the share achieved, which
    at another total differs: 1 of 3 pods is 33 %): fed back, the achieved share would drift."""
    weights = [s.set_weight for s in steps[: step_index + 1] if s.set_weight is not None]
    return weights[-1] if weights else 0


def pause_end(spec: ModelDeploymentSpec, canary: CanaryStatus) -> dt.datetime | None:
    """When the timed pause of the current step ends; None at other steps and before the pause began."""
    step = current_step(spec, canary)
    if step is None or step.pause is None or step.pause.duration is None:
        return None
    return _after(canary.pause_started_at, parse_duration(step.pause.duration))


def progress_deadline(spec: ModelDeploymentSpec, canary: CanaryStatus) -> dt.datetime | None:
    """When canary pods still not ready roll the canary back: progressDeadlineSeconds after its step
    began or, if later, after it last needed more pods (the total scaled out)."""
    start = max((t for t in (canary.step_started_at, canary.scaled_at) if t), key=parse_time, default=None)
    return _after(start, spec.progress_deadline_seconds)


def waiting_for_pods(canary: CanaryStatus) -> bool:
    """Whether fewer canary pods are ready than its weight needs."""
    return canary.ready_replicas < canary.replicas


def progress_deadline_exceeded(spec: ModelDeploymentSpec, canary: CanaryStatus, now: dt.datetime) -> bool:
    """Whether pods are still missing when the deadline has come (a look woken at the deadline acts)."""
    deadline = progress_deadline(spec, canary)
    return waiting_for_pods(canary) and deadline is not None and now >= deadline


def guard_window_end(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: dt.datetime) -> dt.datetime | None:
    """When the post-promotion guard stops judging the stable version; None when it is not judging it now
    (a rollout in progress, the guard disabled, nothing to roll back to, or the window over)."""
    if status.canary is not None or not spec.post_promotion.enabled or status.last_good is None:
        return None
    end = _after(status.promoted_at, parse_duration(spec.post_promotion.window))
    return end if end is not None and now < end else None


def measuring(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: dt.datetime) -> bool:
    """Whether a version is being judged: a canary once one of its pods serves (a version with no ready
    pod has no metrics to judge), or the stable version inside the post-promotion window."""
    if status.canary is not None:
        return status.canary.ready_replicas > 0
    return guard_window_end(spec, status, now) is not None


def next_measurement(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> dt.datetime | None:
    """One analysis interval after the last measurement of the judged version; None before its first."""
    last = status.canary.last_analysis_at if status.canary is not None else status.last_analysis_at
    return _after(last, parse_duration(spec.analysis.interval))


def awaiting_measurement(canary: CanaryStatus) -> bool:
    """Whether the canary's steps wait for its next measurement: the latest one was inconclusive.

    A setWeight or timed pause step does not complete on missing evidence; the next measurement
    decides (Successful or Failed: the step goes on; inconclusive again: it waits on, and
    `inconclusiveLimit` of them in a row pause the rollout). `inconclusives` counts the inconclusive
    measurements since the last conclusive one, so it is nonzero exactly when the latest was one.
    """
    return canary.inconclusives > 0


def awaiting_evidence(spec: ModelDeploymentSpec, canary: CanaryStatus) -> bool:
    """Whether the canary lacks the evidence to be promoted by itself: its steps gave it traffic (so it
    can be measured) and no measurement of it in this rollout was Successful yet.

    A canary the steps never give traffic has no pods and nothing to measure: it is a plain replacement,
    promoted when its steps are done and judged by the post-promotion guard.
    """
    gets_traffic = any(step.set_weight for step in spec.strategy.canary.steps)
    return gets_traffic and canary.successes == 0


def measurement_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: dt.datetime) -> bool:
    """Whether the controller should measure now."""
    if not measuring(spec, status, now):
        return False
    due = next_measurement(spec, status)
    return due is None or due <= now


def next_wake(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: dt.datetime, *, measurement_running: bool = False
) -> dt.datetime | None:
    """The earliest moment the rollout changes without anything else changing; None when it is settled.

    A moment at or before `now` means: look again at once (a first measurement is due). Pods becoming
    ready need no wake, since their Deployment's status changes wake the controller; the deadline by
    which they must be ready does. A held rollout (spec.paused, inconclusive analysis) keeps measuring
    and keeps its deadline, but its pause does not end by itself; a step waiting for the next
    measurement (`awaiting_measurement`) is woken by that measurement, not by the end of its pause
    (already past, it would wake the controller in a loop). A measurement already running wakes the
    controller when it finishes: its moment is not a deadline then.
    """
    moments = [guard_window_end(spec, status, now)]
    if measuring(spec, status, now) and not measurement_running:
        moments.append(next_measurement(spec, status) or now)
    canary = status.canary
    if canary is not None:
        held = status.pause_reason in (Reason.SPEC_PAUSED, Reason.INCONCLUSIVE_ANALYSIS, Reason.TARGET_MISSING)
        if not held and not awaiting_measurement(canary):
            moments.append(pause_end(spec, canary))
        if waiting_for_pods(canary):
            moments.append(progress_deadline(spec, canary))
    return min((m for m in moments if m is not None), default=None)
