"""The canary state machine of a ModelDeployment: an ordered list of named steps, as pure functions.

`next_rollout(spec, status, observation)` takes the status and what the controller observed (the
target version, ready canary pods, the latest measurement, manual commands, the time) and returns
the new status, the traffic weight to apply, Events, and when to look again. All state lives in
status (step index, pause start, measurement counts), so a restarted operator resumes the same step.
Like Argo Rollouts' canary: steps set a weight, pause, or wait for a passing analysis; failed
measurements roll the canary back; a version rolled back here is not retried by itself.

Never promoted on missing evidence. The canary is measured every `analysis.interval` from the moment
one of its pods is ready, whatever the step (Argo's background analysis), and those measurements hold
the rollout as an analysis step does:
- a step does not complete while the latest measurement of the canary is Inconclusive: a setWeight
  whose pods are ready, or a pause whose time is up, waits for the next measurement (Successful or
  Failed below `failureLimit`: it completes; inconclusive again: it waits on);
- the promotion after the last step needs at least one Successful measurement of the canary in this
  rollout; until one comes the canary stays where the steps left it, measured on. A canary with a
  short pause normally has one by then (the first measurement is taken as soon as a pod is ready);
  a canary whose pods serve no traffic has no data, so it is held instead of promoted. Only a canary
  the steps never give traffic (no setWeight above 0: no pods, nothing to measure) is promoted
  without one, and judged by the post-promotion guard;
- `inconclusiveLimit` inconclusive measurements in a row turn the hold into the visible pause
  `pauseReason: InconclusiveAnalysis` (with an Event). `resume` lifts it with a fresh count: the
  rollout measures on, and still needs a Successful measurement to be promoted;
- a person decides over all of it: a `promote` completes the current step however the measurements
  went, and one that completes the last step (or comes when every step is done) promotes.

Each step `next_rollout` lists either makes the decision (returns True) or hands on to the next,
like the early returns of Argo's `rolloutCanary`; the timing rules they share live in `rollout.timing`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..api.clock import format_time
from ..api.modeldeployment import (
    CanaryStatus,
    Degradation,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    VersionStatus,
)
from ..api.names import APPROVE_INPUTS_ANNOTATION, COMMAND_ANNOTATIONS
from ..api.reasons import EventReason, Reason, Verdict
from . import timing

__all__ = [
    "APPROVE_INPUTS_ANNOTATION",
    "COMMANDS",
    "HISTORY_LIMIT",
    "PAUSE_INCONCLUSIVE",
    "PAUSE_SPEC",
    "PAUSE_STEP",
    "PAUSE_TARGET_MISSING",
    "PAUSE_INPUT_SCHEMA",
    "Observation",
    "RolloutDecision",
    "Target",
    "next_rollout",
    "replica_split",
]

HISTORY_LIMIT = 20  # history entries and failed versions kept in status
# Manual controls: annotations whose every new value (a token) the controller acts on once.
COMMANDS = COMMAND_ANNOTATIONS

# Why a rollout holds, in status.pauseReason.
PAUSE_STEP = Reason.PAUSE_STEP  # an indefinite pause step: waits for promote
PAUSE_INCONCLUSIVE = Reason.INCONCLUSIVE_ANALYSIS  # too many measurements without data: waits for resume
PAUSE_SPEC = Reason.SPEC_PAUSED  # spec.paused
PAUSE_TARGET_MISSING = Reason.TARGET_MISSING  # no version to roll out: the canary holds, measured on
PAUSE_INPUT_SCHEMA = Reason.INPUT_SCHEMA_CHANGED  # the canary takes other inputs: no traffic until approved
Outcome = Literal["Promoted", "RolledBack", "Aborted"]


@dataclass(frozen=True)
class Target:
    """The model version the deployment should serve (a champion, or a pinned run)."""

    version: str
    model_uri: str
    sha256: str
    signature: str | None = None  # sha256 of its input signature; None: recorded before signatures were
    rolled_back: str | None = None  # why: a ModelDeployment rolled this version back (canaried, never served first)

    def as_status(self) -> VersionStatus:
        return VersionStatus(
            version=self.version, model_uri=self.model_uri, sha256=self.sha256, signature_sha256=self.signature
        )


@dataclass(frozen=True)
class Observation:
    now: dt.datetime
    target: Target | None
    canary_ready_replicas: int = 0  # ready pods that run the canary version
    measurement: str | None = None  # Successful | Failed | Inconclusive, when one was taken now
    measurement_message: str = ""
    commands: dict[str, str] = field(default_factory=dict)  # promote / abort / resume annotation tokens
    retried: frozenset[str] = frozenset()  # failed versions retried since (kubectl mlops retry): allowed again
    inputs_approved_for: str | None = None  # the version whose other inputs a person approved
    # The canary's share of traffic the HTTPRoute carried when last applied (Gateway API routing); None: the
    # traffic follows the pods (replica ratio), which `canary_ready_replicas` already covers.
    routed_weight: int | None = None
    # Why the canary's servers refused its version, when they did (a server pod's termination message,
    # `refusing to serve …: ModelNotReproducible: …`); read once the progress deadline has come.
    canary_refusal: str | None = None


@dataclass
class RolloutDecision:
    status: ModelDeploymentStatus
    canary_weight: int  # percent of traffic the canary should get now
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (Normal|Warning, reason, message)
    wake_at: dt.datetime | None = None  # when to look again by itself; None: settled


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas that carry `weight` % to the canary by replica ratio behind one Service."""
    if weight <= 0:
        return total, 0
    if weight >= 100:
        return 0, total
    canary = min(total - 1, max(1, round(total * weight / 100))) if total > 1 else 1
    return max(total - canary, 1), canary


def variant_replicas(total: int, weight: int, *, gateway: bool) -> tuple[int, int]:
    """(stable, canary) replicas for `weight` % of traffic on the canary out of `total` pods in all.

    By replica ratio (the default routing) the total is split; with the Gateway API the route's weights
    split the traffic, so the stable version keeps the whole total and the canary gets pods for its
    share: both follow the total as it scales."""
    stable, canary = replica_split(total, weight)
    return (total, canary) if gateway else (stable, canary)


@dataclass
class _Rollout:
    """One decision being made: the status as it becomes, and what was observed."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    obs: Observation
    fresh: dict[str, str]  # commands whose token was not acted on before
    events: list[tuple[str, str, str]] = field(default_factory=list)
    canary_started: bool = False  # the canary began in this decision: nothing observed is about it yet
    promoted_by_person: bool = False  # a promote completed the last step, or came with every step done
    settled: bool = False  # nothing changes by itself until something outside does

    @property
    def now(self) -> str:
        return format_time(self.obs.now)

    @property
    def ready_pods(self) -> int:
        """Ready canary pods; none for a canary that began now (its Deployment still runs the version before)."""
        return 0 if self.canary_started else self.obs.canary_ready_replicas

    @property
    def canary(self) -> CanaryStatus:
        assert self.status.canary is not None, "a canary step ran without a canary"
        return self.status.canary

    def event(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))


def next_rollout(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, obs: Observation) -> RolloutDecision:
    """The next state of the rollout; `status` is left as observed (it is the base of the status patch)."""
    status = status.model_copy(deep=True)
    handled = status.handled_commands
    fresh = {k: v for k, v in obs.commands.items() if v and handled.get(k) != v}
    status.handled_commands = {**handled, **fresh}
    status.failed_versions = [v for v in status.failed_versions if v not in obs.retried]
    rollout = _Rollout(spec=spec, status=status, obs=obs, fresh=fresh)
    steps: tuple[Callable[[_Rollout], bool], ...] = (
        _serve_first_version,
        _follow_target,
        _guard_promoted_version,
        _abort_on_command,
        _resume_on_command,
        _count_measurement,
        _observe_canary_pods,
        _enforce_progress_deadline,
        _hold_without_target,
        _hold_on_input_schema,
        _freeze_on_spec_paused,
        _hold_on_inconclusive,
        _walk_steps,
        _await_evidence,
        _promote,
    )
    for step in steps:
        if step(rollout):  # this step made the decision
            break
    return _decision(rollout)


# ----------------------------------------------------------------------------------------- the steps


def _serve_first_version(r: _Rollout) -> bool:
    """Nothing served yet: the target is served at once, without a canary; with no target (no champion
    yet, its run gone or rolled back) nothing is served until one comes."""
    if r.status.stable is not None:
        return False
    if r.obs.target is None or r.obs.target.rolled_back:  # never a version rolled back, first, at 100 %
        r.settled = True
        return True
    target = r.obs.target
    r.status.stable, r.status.promoted_at, r.status.last_good = target.as_status(), r.now, None
    r.event("Normal", EventReason.DEPLOYED, f"serving {target.version}")
    return True


def _follow_target(r: _Rollout) -> bool:
    """A new target starts a canary; a canary of a superseded target gives way to the new one. With no
    target the canary stays as it is: it is still measured, aborted and rolled back, but not advanced
    (_hold_without_target)."""
    status, target, stable = r.status, r.obs.target, _stable(r)
    if target is None:
        return False
    canary = status.canary
    if canary is not None and canary.version != target.version:
        r.event("Normal", EventReason.CANARY_REPLACED, f"{canary.version} replaced by {target.version} mid-rollout")
        canary = None
    if canary is None and target.version != stable.version and target.version not in status.failed_versions:
        canary = CanaryStatus(
            version=target.version,
            model_uri=target.model_uri,
            sha256=target.sha256,
            signature_sha256=target.signature,
            input_schema_changed=input_schema_change(stable, target),
            step_started_at=r.now,
            started_at=r.now,
        )
        status.pause_reason, status.degraded = None, None
        r.canary_started = True
        r.event("Normal", EventReason.CANARY_STARTED, f"rolling out {target.version} over {stable.version}")
    status.canary = canary
    return False


def _guard_promoted_version(r: _Rollout) -> bool:
    """No canary: failed measurements of the stable version after its promotion roll back to the last good one."""
    status = r.status
    if status.canary is not None:
        return False
    if r.obs.measurement and status.last_good is not None:
        status.last_analysis_at = r.now
        if r.obs.measurement == Verdict.FAILED:
            status.guard_failures += 1
            if status.guard_failures >= r.spec.analysis.failure_limit:
                bad, good = _stable(r), status.last_good
                status.stable, status.last_good, status.promoted_at, status.guard_failures = good, None, None, 0
                _mark_failed(status, bad.version)
                message = f"{bad.version} failed after promotion: {r.obs.measurement_message}"
                _record_history(r, bad.version, "RolledBack", f"{Reason.POST_PROMOTION_ANALYSIS_FAILED}: {message}")
                status.degraded = Degradation(reason=Reason.POST_PROMOTION_ANALYSIS_FAILED, message=message)
                r.event("Warning", EventReason.ROLLED_BACK, f"{message}; back to {good.version}")
    return True


def _abort_on_command(r: _Rollout) -> bool:
    if "abort" not in r.fresh:
        return False
    return _roll_back(r, reason=Reason.ABORTED, message="aborted by the user")


def _resume_on_command(r: _Rollout) -> bool:
    """Resume continues a rollout held on inconclusive analysis, with a fresh count: the step it held
    may complete, the promotion still waits for a Successful measurement."""
    if "resume" in r.fresh and r.status.pause_reason == PAUSE_INCONCLUSIVE:
        r.status.pause_reason = None
        r.canary.inconclusives = 0
    return False


def _count_measurement(r: _Rollout) -> bool:
    """The measurement taken now counts for the canary; enough failures roll it back, enough
    measurements without data in a row pause the rollout. A conclusive one (Successful or Failed)
    ends a run of inconclusive ones: `inconclusives` is nonzero exactly while the latest was one."""
    obs, canary, analysis = r.obs, r.canary, r.spec.analysis
    if not obs.measurement or r.canary_started:  # a measurement of the version before: not of this canary
        return False
    canary.last_analysis_at = r.now
    if obs.measurement == Verdict.FAILED:
        canary.failures += 1
        canary.inconclusives = 0
        if canary.failures >= analysis.failure_limit:
            return _roll_back(r, reason=Reason.ANALYSIS_FAILED, message=obs.measurement_message)
    elif obs.measurement == Verdict.SUCCESSFUL:
        canary.successes += 1
        canary.step_successes += 1
        canary.inconclusives = 0
    else:
        canary.inconclusives += 1
        if canary.inconclusives >= analysis.inconclusive_limit:
            if r.status.pause_reason != PAUSE_INCONCLUSIVE:
                r.event("Warning", PAUSE_INCONCLUSIVE, f"paused: {obs.measurement_message}")
            r.status.pause_reason = PAUSE_INCONCLUSIVE
    return False


def _observe_canary_pods(r: _Rollout) -> bool:
    """Record the canary pods its weight needs and how many are ready: the progress deadline and the
    next wake are judged from them. The weight's share of a total that grew (the autoscaler, `kubectl
    scale`) needs more pods, and so do pods lost once all were ready (their node went away): their
    deadline counts from then (`scaled_at`), not from the step's start — as a Deployment's progress
    deadline counts from its last progress."""
    canary = r.canary
    wanted = replica_split(r.spec.replicas, _canary_weight(r.spec, canary))[1]
    lost = canary.ready_replicas >= canary.replicas > r.ready_pods
    if wanted > canary.replicas or lost:
        canary.scaled_at = r.now
    canary.replicas = wanted
    canary.ready_replicas = r.ready_pods
    return False


def _enforce_progress_deadline(r: _Rollout) -> bool:
    if not timing.progress_deadline_exceeded(r.spec, r.canary, r.obs.now):
        return False
    deadline = r.spec.progress_deadline_seconds
    message = f"canary pods of {r.canary.version} not ready within progressDeadlineSeconds={deadline}"
    refusal = r.obs.canary_refusal
    if refusal and Reason.MODEL_NOT_REPRODUCIBLE in refusal:  # the servers said why: the version, not the pods
        return _roll_back(r, reason=Reason.MODEL_NOT_REPRODUCIBLE, message=f"{message}: {refusal}")
    return _roll_back(r, reason=Reason.PROGRESS_DEADLINE_EXCEEDED, message=message)


def _hold_without_target(r: _Rollout) -> bool:
    """The canary's version left the registry mid-rollout (its run deleted, or no longer the champion with
    no other one): it holds where it is, measured on — failures, the progress deadline and abort still
    roll it back — and the status says why; a target coming back lifts the hold."""
    if r.obs.target is not None:
        return _lift(r, PAUSE_TARGET_MISSING)
    return _hold(r, PAUSE_TARGET_MISSING, f"holding {r.canary.version}: the version to roll out is gone")


def _hold(r: _Rollout, reason: str, message: str) -> bool:
    """Hold the rollout for `reason` (status.pauseReason), with a Warning Event the first time."""
    if r.status.pause_reason != reason:
        r.event("Warning", reason, message)
    r.status.pause_reason = reason
    return True


def _lift(r: _Rollout, reason: str) -> bool:
    """End a hold for `reason`, if it is the one; the steps after go on."""
    if r.status.pause_reason == reason:
        r.status.pause_reason = None
    return False


def input_schema_change(stable: VersionStatus, target: Target) -> str | None:
    """Why the target takes other inputs than the stable version, or None (the same signature, or one of
    them recorded before signatures were: nothing to compare)."""
    if not stable.signature_sha256 or not target.signature or stable.signature_sha256 == target.signature:
        return None
    return (
        f"{target.version} takes other inputs than {stable.version} (input signature "
        f"{target.signature[:12]} ≠ {stable.signature_sha256[:12]}: features, their order or types changed)"
    )


def _hold_on_input_schema(r: _Rollout) -> bool:
    """A canary whose input signature differs from the stable version's gets no traffic (it holds at its
    first step, no pods) until a person approves with `promote`, or the spec allows the change: clients
    sending what the stable version takes would fail on it, or get wrong predictions from reordered
    columns. Approval: `kubectl mlops approve md/NAME` (the annotation names the version), or a `promote`,
    which then only lifts this hold and completes no step."""
    canary = r.canary
    if canary.input_schema_changed is None:
        return False
    approved = r.obs.inputs_approved_for == canary.version
    if r.spec.strategy.canary.allow_input_schema_change or approved or "promote" in r.fresh:
        r.fresh.pop("promote", None)
        r.event("Normal", EventReason.INPUT_SCHEMA_APPROVED, canary.input_schema_changed)
        canary.input_schema_changed = None
        return _lift(r, PAUSE_INPUT_SCHEMA)
    return _hold(r, PAUSE_INPUT_SCHEMA, f"{canary.input_schema_changed}; approve with kubectl mlops approve md/NAME")


def _freeze_on_spec_paused(r: _Rollout) -> bool:
    if r.spec.paused:
        r.status.pause_reason = PAUSE_SPEC
        return True
    if r.status.pause_reason == PAUSE_SPEC:
        r.status.pause_reason = None
    return False


def _hold_on_inconclusive(r: _Rollout) -> bool:
    """Held on inconclusive analysis until resumed; a promote skips the step (or, with every step
    done, promotes) anyway."""
    return r.status.pause_reason == PAUSE_INCONCLUSIVE and "promote" not in r.fresh


def _walk_steps(r: _Rollout) -> bool:
    """Complete every step that is done, in order; stop at the first one that is not.

    A step is done when its pods are ready and, with Gateway API routing, the route carries its weight
    (setWeight: a route not found or not ours to set holds it, status.routing says why), its time is up
    (pause), or a measurement during it passed (analysis); setWeight and pause steps also wait while the
    latest measurement is inconclusive (`timing.awaiting_measurement`). A promote command completes one
    step, whatever it is and however the measurements went.
    """
    canary, steps = r.canary, r.spec.strategy.canary.steps
    promote = "promote" in r.fresh
    evidence_pending = timing.awaiting_measurement(canary)
    completed_by_promote = promote  # with every step done already, the promote is for the promotion
    while (step := timing.current_step(r.spec, canary)) is not None:
        done = promote
        if step.set_weight is not None:
            canary.weight = step.set_weight
            pods_ready = r.ready_pods >= replica_split(r.spec.replicas, step.set_weight)[1]
            routed = r.obs.routed_weight is None or r.obs.routed_weight >= step.set_weight
            done = done or (pods_ready and routed and not evidence_pending)
        elif step.pause is not None:
            if step.pause.duration is None:
                r.status.pause_reason = PAUSE_STEP
            else:
                canary.pause_started_at = canary.pause_started_at or r.now
                end = timing.pause_end(r.spec, canary)
                done = done or (end is not None and r.obs.now >= end and not evidence_pending)
        else:
            done = done or canary.step_successes > 0
        if not done:
            return True
        completed_by_promote, promote = promote, False
        canary.step_index += 1
        canary.step_started_at, canary.pause_started_at, canary.step_successes = r.now, None, 0
        r.status.pause_reason = None
        r.event(
            "Normal", EventReason.STEP_COMPLETED, f"step {canary.step_index}/{len(steps)} done, weight {canary.weight}%"
        )
    r.promoted_by_person = completed_by_promote
    return False


def _await_evidence(r: _Rollout) -> bool:
    """Every step is done, but no measurement of the canary passed yet: it stays where the steps left
    it and is measured on (the measurement count pauses it at `inconclusiveLimit`), unless a person
    promoted it."""
    return not r.promoted_by_person and timing.awaiting_evidence(r.spec, r.canary)


def _promote(r: _Rollout) -> bool:
    """Every step passed: the canary becomes the stable version at 100 %."""
    status, canary, previous = r.status, r.canary, _stable(r)
    status.stable = VersionStatus(
        version=canary.version,
        model_uri=canary.model_uri,
        sha256=canary.sha256,
        signature_sha256=canary.signature_sha256,
    )
    status.canary, status.promoted_at, status.last_good = None, r.now, previous
    status.pause_reason, status.last_analysis_at, status.guard_failures = None, None, 0
    _record_history(r, canary.version, "Promoted", f"after {len(r.spec.strategy.canary.steps)} steps")
    r.event("Normal", EventReason.PROMOTED, f"{canary.version} is stable at 100 %, replacing {previous.version}")
    return True


# ------------------------------------------------------------------------------------------- helpers


def _decision(r: _Rollout) -> RolloutDecision:
    canary = r.status.canary
    if canary is not None and not r.settled:
        _observe_canary_pods(r)  # again: the steps may have changed the weight
    wake_at = None if r.settled else timing.next_wake(r.spec, r.status, r.obs.now)
    weight = _canary_weight(r.spec, canary) if canary else 0
    return RolloutDecision(r.status, weight, r.events, wake_at)


def _canary_weight(spec: ModelDeploymentSpec, canary: CanaryStatus) -> int:
    """The weight the steps give the canary now; none while it waits for approval of its other inputs."""
    if canary.input_schema_changed is not None:
        return 0
    return timing.steps_weight(spec.strategy.canary.steps, canary.step_index)


def _roll_back(r: _Rollout, *, reason: str, message: str) -> bool:
    status, canary = r.status, r.canary
    status.canary, status.pause_reason = None, None
    status.degraded = Degradation(reason=reason, message=message)
    _mark_failed(status, canary.version)
    _record_history(r, canary.version, "Aborted" if reason == Reason.ABORTED else "RolledBack", f"{reason}: {message}")
    r.event("Warning", EventReason.ROLLED_BACK, f"{canary.version} rolled back ({reason}): {message}")
    return True


def _mark_failed(status: ModelDeploymentStatus, version: str) -> None:
    status.failed_versions = [*status.failed_versions, version][-HISTORY_LIMIT:]


def _record_history(r: _Rollout, version: str, outcome: Outcome, reason: str) -> None:
    entry = HistoryEntry(version=version, outcome=outcome, reason=reason, at=r.now)
    r.status.history = [entry, *r.status.history][:HISTORY_LIMIT]


def _stable(r: _Rollout) -> VersionStatus:
    assert r.status.stable is not None, "steps after _serve_first_version have a stable version"
    return r.status.stable
