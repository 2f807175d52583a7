"""The canary state machine of a ModelDeployment, as one pure function.

`next_rollout(spec, status, observation)` takes the rollout fields of status and what the controller
observed (the target version, ready pods, the latest measurement, manual commands, the time) and
returns the new rollout fields, the traffic weight to apply, Events, and when to look again. All
state lives in status (step index, pause start, measurement counts), so a restarted operator resumes
the same step. Like Argo Rollouts' canary: steps set a weight, pause, or wait for a passing analysis;
failed measurements roll the canary back; a version rolled back here is not retried by itself.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ..api.modeldeployment import ModelDeploymentSpec

_DURATION = re.compile(r"([0-9.]+)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
HISTORY_LIMIT = 20
WAIT_FOR_PODS = 1.0  # seconds between looks while pods become ready

# Why a rollout holds, in status.pauseReason.
PAUSE_STEP = "PauseStep"  # an indefinite pause step: waits for promote
PAUSE_INCONCLUSIVE = "InconclusiveAnalysis"  # too many measurements without data: waits for resume
PAUSE_SPEC = "SpecPaused"  # spec.paused
# Manual controls: annotations whose every new value (a token) the controller acts on once.
COMMANDS = {"promote": "mlops.dev/promote", "abort": "mlops.dev/abort", "resume": "mlops.dev/resume"}


def seconds(duration: str) -> float:
    return sum(float(n) * _SECONDS[u] for n, u in _DURATION.findall(duration))


def _iso(moment: dt.datetime) -> str:
    """RFC 3339 with milliseconds: a pause or an interval is timed from these, so whole seconds would
    stretch or shorten it by up to a second."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass(frozen=True)
class Target:
    """The model version the deployment should serve (a champion, or a pinned run)."""

    version: str
    model_uri: str
    sha256: str

    def as_status(self) -> dict[str, str]:
        return {"version": self.version, "modelUri": self.model_uri, "sha256": self.sha256}


@dataclass(frozen=True)
class Observation:
    now: dt.datetime
    target: Target | None
    canary_ready_replicas: int = 0  # ready pods that run the canary version
    measurement: str | None = None  # Successful | Failed | Inconclusive, when one was taken now
    measurement_message: str = ""
    commands: dict[str, str] = field(default_factory=dict)  # promote / abort / resume annotation tokens


@dataclass
class RolloutDecision:
    status: dict[str, Any]
    canary_weight: int  # percent of traffic the canary should get now
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (Normal|Warning, reason, message)
    requeue_after: float | None = None


def measurement_due(spec: ModelDeploymentSpec, status: dict[str, Any], now: dt.datetime) -> bool:
    """Whether the controller should measure now: during a canary once one of its pods serves (a version
    with no ready pod has no metrics to judge), or in the post-promotion window."""
    canary = status.get("canary")
    if canary and not canary.get("readyReplicas"):
        return False
    guarding = (
        not canary
        and spec.post_promotion.enabled
        and status.get("lastGood")
        and (promoted := _parse(status.get("promotedAt"))) is not None
        and (now - promoted).total_seconds() < seconds(spec.post_promotion.window)
    )
    if not canary and not guarding:
        return False
    last = _parse((canary or status).get("lastAnalysisAt"))
    return last is None or (now - last).total_seconds() >= seconds(spec.analysis.interval)


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas that carry `weight` % to the canary by replica ratio behind one Service."""
    if weight <= 0:
        return total, 0
    if weight >= 100:
        return 0, total
    canary = min(total - 1, max(1, round(total * weight / 100))) if total > 1 else 1
    return max(total - canary, 1), canary


def next_rollout(spec: ModelDeploymentSpec, status: dict[str, Any], obs: Observation) -> RolloutDecision:
    status = copy.deepcopy(status)  # the caller's status stays as observed: it is the base of the patch
    events: list[tuple[str, str, str]] = []
    now = _iso(obs.now)
    handled = dict(status.get("handledCommands") or {})
    fresh = {k: v for k, v in obs.commands.items() if v and handled.get(k) != v}
    status["handledCommands"] = {**handled, **fresh}
    failed_versions = list(status.get("failedVersions") or [])
    target = obs.target

    if target is None:
        return RolloutDecision(status, _weight(status), events)
    if not status.get("stable"):
        status.update(stable=target.as_status(), promotedAt=now, lastGood=None)
        events.append(("Normal", "Deployed", f"serving {target.version}"))
        return RolloutDecision(status, 0, events)

    canary = status.get("canary")
    if canary and canary["version"] != target.version:
        events.append(("Normal", "CanaryReplaced", f"{canary['version']} replaced by {target.version} mid-rollout"))
        canary = None
    if not canary and target.version != status["stable"]["version"] and target.version not in failed_versions:
        canary = {**target.as_status(), "stepIndex": 0, "stepStartedAt": now, "weight": 0, "successes": 0,
                  "failures": 0, "inconclusives": 0, "stepSuccesses": 0, "startedAt": now}  # fmt: skip
        status.update(pauseReason=None, degraded=None)
        events.append(("Normal", "CanaryStarted", f"rolling out {target.version} over {status['stable']['version']}"))
    status["canary"] = canary

    if not canary:
        return _guard(spec, status, obs, events)

    if "abort" in fresh:
        return _rollback(status, reason="Aborted", message="aborted by the user", events=events, now=now)
    if "resume" in fresh and status.get("pauseReason") == PAUSE_INCONCLUSIVE:
        status["pauseReason"] = None
        canary["inconclusives"] = 0
    if obs.measurement:
        canary["lastAnalysisAt"] = now
        if obs.measurement == "Failed":
            canary["failures"] += 1
            if canary["failures"] >= spec.analysis.failure_limit:
                return _rollback(status, reason="AnalysisFailed", message=obs.measurement_message, events=events,
                                 now=now)  # fmt: skip
        elif obs.measurement == "Successful":
            canary["successes"] += 1
            canary["stepSuccesses"] = canary.get("stepSuccesses", 0) + 1
            canary["inconclusives"] = 0
        else:
            canary["inconclusives"] += 1
            if canary["inconclusives"] >= spec.analysis.inconclusive_limit:
                if status.get("pauseReason") != PAUSE_INCONCLUSIVE:
                    events.append(("Warning", PAUSE_INCONCLUSIVE, f"paused: {obs.measurement_message}"))
                status["pauseReason"] = PAUSE_INCONCLUSIVE
    progress_deadline = spec.progress_deadline_seconds
    started = _parse(canary["stepStartedAt"])
    wanted = replica_split(spec.replicas, canary["weight"])[1]
    if wanted and obs.canary_ready_replicas < wanted and (obs.now - started).total_seconds() > progress_deadline:
        message = f"canary pods of {canary['version']} not ready within progressDeadlineSeconds={progress_deadline}"
        return _rollback(status, reason="ProgressDeadlineExceeded", message=message, events=events, now=now)
    if spec.paused:
        status["pauseReason"] = PAUSE_SPEC
        return RolloutDecision(status, canary["weight"], events)
    if status.get("pauseReason") == PAUSE_SPEC:
        status["pauseReason"] = None
    promote = "promote" in fresh
    if status.get("pauseReason") == PAUSE_INCONCLUSIVE and not promote:
        return RolloutDecision(status, canary["weight"], events)

    requeue: float | None = None
    steps = spec.strategy.canary.steps
    while canary["stepIndex"] < len(steps):
        step = steps[canary["stepIndex"]]
        done = promote
        if step.set_weight is not None:
            canary["weight"] = step.set_weight
            done = done or obs.canary_ready_replicas >= replica_split(spec.replicas, step.set_weight)[1]
            requeue = None if done else WAIT_FOR_PODS
        elif step.pause is not None:
            if step.pause.duration is None:
                status["pauseReason"] = PAUSE_STEP
            else:
                canary["pauseStartedAt"] = canary.get("pauseStartedAt") or now
                remaining = seconds(step.pause.duration) - (obs.now - _parse(canary["pauseStartedAt"])).total_seconds()
                done = done or remaining <= 0
                requeue = None if done else max(remaining, 0.05)
        else:  # analysis: a passing measurement taken during this step
            done = done or canary.get("stepSuccesses", 0) > 0
            requeue = None if done else seconds(spec.analysis.interval)
        if not done:
            break
        promote = False  # a promote command skips one step
        canary.update(stepIndex=canary["stepIndex"] + 1, stepStartedAt=now, pauseStartedAt=None, stepSuccesses=0)
        status["pauseReason"] = None
        done_message = f"step {canary['stepIndex']}/{len(steps)} done, weight {canary['weight']}%"
        events.append(("Normal", "StepCompleted", done_message))
    if canary["stepIndex"] < len(steps):
        return RolloutDecision(status, canary["weight"], events, requeue)
    # Every step passed: the canary becomes the stable version at 100 %.
    previous = status["stable"]
    status.update(
        stable={k: canary[k] for k in ("version", "modelUri", "sha256")},
        canary=None,
        promotedAt=now,
        lastGood=previous,
        pauseReason=None,
        lastAnalysisAt=None,
        guardFailures=0,
    )
    status["history"] = _history(status, canary["version"], "Promoted", f"after {len(steps)} steps", now)
    events.append(("Normal", "Promoted", f"{canary['version']} is stable at 100 %, replacing {previous['version']}"))
    return RolloutDecision(status, 0, events)


def _guard(spec: ModelDeploymentSpec, status: dict[str, Any], obs: Observation, events: list) -> RolloutDecision:
    """After promotion: failed measurements within the window roll back to the last good version."""
    now = _iso(obs.now)
    if obs.measurement and status.get("lastGood"):
        status["lastAnalysisAt"] = now
        if obs.measurement == "Failed":
            status["guardFailures"] = int(status.get("guardFailures") or 0) + 1
            if status["guardFailures"] >= spec.analysis.failure_limit:
                bad, good = status["stable"], status["lastGood"]
                status.update(stable=good, lastGood=None, promotedAt=None, guardFailures=0)
                status["failedVersions"] = [*(status.get("failedVersions") or []), bad["version"]][-HISTORY_LIMIT:]
                message = f"{bad['version']} failed after promotion: {obs.measurement_message}"
                status["history"] = _history(status, bad["version"], "RolledBack", message, now)
                status["degraded"] = {"reason": "PostPromotionAnalysisFailed", "message": message}
                events.append(("Warning", "RolledBack", f"{message}; back to {good['version']}"))
    promoted = _parse(status.get("promotedAt"))
    guarding = (
        status.get("lastGood")
        and promoted
        and (obs.now - promoted).total_seconds() < seconds(spec.post_promotion.window)
    )
    return RolloutDecision(status, 0, events, seconds(spec.analysis.interval) if guarding else None)


def _rollback(status: dict[str, Any], *, reason: str, message: str, events: list, now: str) -> RolloutDecision:
    canary = status["canary"]
    status.update(canary=None, pauseReason=None, degraded={"reason": reason, "message": message})
    status["failedVersions"] = [*(status.get("failedVersions") or []), canary["version"]][-HISTORY_LIMIT:]
    outcome = "Aborted" if reason == "Aborted" else "RolledBack"
    status["history"] = _history(status, canary["version"], outcome, f"{reason}: {message}", now)
    events.append(("Warning", "RolledBack", f"{canary['version']} rolled back ({reason}): {message}"))
    return RolloutDecision(status, 0, events)


def _history(status: dict[str, Any], version: str, outcome: str, reason: str, now: str) -> list[dict]:
    entry = {"version": version, "outcome": outcome, "reason": reason, "at": now}
    return [entry, *(status.get("history") or [])][:HISTORY_LIMIT]


def _weight(status: dict[str, Any]) -> int:
    return int((status.get("canary") or {}).get("weight") or 0)
