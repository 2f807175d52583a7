"""The promotion policy as pure functions: metrics, gates and the champion in, a decision out; and the
bookkeeping of a decision already recorded (superseded, still pending).

Never promote on missing evidence: a gate on a metric that was not computed, a champion comparison
where either side lacks the metric, or a run with no metrics at all is a rejection, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from ..api.estimators import LOWER_IS_BETTER
from ..api.reasons import Decision, PromotionReason
from ..api.trainingrun import PromotionSpec, PromotionStatus, RollbackRecord, TrainingRunSpec

# The reasons under their former module-level names.
GATES_PASSED = PromotionReason.GATES_PASSED
GATE_FAILED = PromotionReason.GATE_FAILED
MISSING_METRIC = PromotionReason.MISSING_METRIC
NOT_BETTER = PromotionReason.NOT_BETTER
AWAITING_APPROVAL = PromotionReason.AWAITING_APPROVAL
APPROVED = PromotionReason.APPROVED
SUPERSEDED = PromotionReason.SUPERSEDED
ROLLED_BACK = PromotionReason.ROLLED_BACK
REINSTATED = PromotionReason.REINSTATED
NOT_COMPARABLE = PromotionReason.NOT_COMPARABLE


@dataclass(frozen=True)
class HeldOutRows:
    """Which rows a run was scored on: its dataset version split by its test size and seed. Two runs with
    the same key were scored on the same rows (the split is deterministic)."""

    dataset_version: str
    test_size: float
    seed: int

    def describe(self) -> str:
        return f"{self.test_size:.0%} of dataset {self.dataset_version[:19]} held out with seed {self.seed}"


@dataclass(frozen=True)
class Champion:
    name: str
    metrics: dict[str, float]
    model_uri: str = ""
    sha256: str = ""
    rows: HeldOutRows | None = None  # None: unknown (no pinned dataset recorded)
    basis: str = ""  # on which rows `metrics` compare with the candidate's, in words
    not_comparable: str | None = None  # why no figure of the champion compares with the candidate's


def held_out_rows(spec: TrainingRunSpec, dataset_version: str | None) -> HeldOutRows | None:
    """The rows a run is scored on, from its spec and pinned dataset version (None: not pinned yet)."""
    if not dataset_version:
        return None
    return HeldOutRows(dataset_version, spec.evaluation.test_size, spec.evaluation.seed)


def comparable_champion(
    champion: Champion | None, *, rows: HeldOutRows | None, scored: dict | None, test_rows: int | None = None
) -> Champion | None:
    """The champion with the figures the candidate is compared with: the ones its Job measured of the same
    champion on the candidate's own held-out rows (`scored`: {name, metrics | error}); else its recorded
    ones when both were scored on the same rows; else none (not_comparable says why): scores of other
    test sets never decide."""
    if champion is None:
        return None
    count = f"{test_rows} " if test_rows else ""
    if scored and scored.get("name") == champion.name and scored.get("metrics"):
        metrics = {k: float(v) for k, v in scored["metrics"].items() if isinstance(v, int | float)}
        basis = f"both scored on this run's {count}held-out rows ({rows.describe() if rows else 'its split'})"
        return replace(champion, metrics=metrics, basis=basis)
    if rows is not None and champion.rows == rows:
        return replace(champion, basis=f"both scored on the same {count}held-out rows ({rows.describe()})")
    if scored and scored.get("name") == champion.name:
        why = f"scoring it on this run's rows failed: {scored.get('error') or 'no metrics'}"
    elif scored:
        why = f"this run's Job scored {scored.get('name')}, the champion when it started"
    else:
        why = "this run's Job did not score it"
    theirs = champion.rows.describe() if champion.rows else "unknown rows"
    words = f"champion {champion.name} was scored on other rows ({theirs}) and {why}"
    return replace(champion, metrics={}, basis="", not_comparable=words)


@dataclass(frozen=True)
class PromotionDecision:
    decision: Decision  # Promoted | Rejected | PendingApproval (Superseded comes later, from supersede())
    reason: PromotionReason
    message: str
    champion: str | None = None
    metric: str | None = None
    value: float | None = None
    champion_value: float | None = None

    def as_status(self, *, decided_at: str) -> PromotionStatus:
        """The TrainingRun's `status.promotion` record of this decision."""
        return PromotionStatus(
            decision=self.decision,
            reason=self.reason,
            message=self.message,
            champion=self.champion,
            metric=self.metric,
            value=self.value,
            champion_value=self.champion_value,
            decided_at=decided_at,
        )


def _finite(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def decide_promotion(
    *, metrics: dict[str, float], promotion: PromotionSpec, champion: Champion | None, approved: bool
) -> PromotionDecision:
    rejected, missing = Decision.REJECTED, MISSING_METRIC
    if not any(_finite(metrics, name) is not None for name in metrics):
        return PromotionDecision(rejected, missing, "the run recorded no finite metric")
    passed = []
    for gate in promotion.gates:
        value = _finite(metrics, gate.metric)
        if value is None:
            return PromotionDecision(rejected, missing, f"gate on {gate.metric}: the metric was not computed")
        if gate.min is not None and value < gate.min:
            return PromotionDecision(
                rejected, GATE_FAILED, f"{gate.metric} {_fmt(value)} is below the gate's min {_fmt(gate.min)}"
            )
        if gate.max is not None and value > gate.max:
            return PromotionDecision(
                rejected, GATE_FAILED, f"{gate.metric} {_fmt(value)} is above the gate's max {_fmt(gate.max)}"
            )
        passed.append(f"{gate.metric} {_fmt(value)}")
    comparison: dict = {}
    beat = promotion.beat_champion
    if beat:
        value = _finite(metrics, beat.metric)
        if value is None:
            return PromotionDecision(rejected, missing, f"{beat.metric} was not computed for this run")
        if champion is None:
            passed.append(f"first version of the model ({beat.metric} {_fmt(value)})")
        elif champion.not_comparable:
            comparison = {"champion": champion.name, "metric": beat.metric, "value": value}
            return PromotionDecision(rejected, NOT_COMPARABLE, champion.not_comparable, **comparison)
        else:
            theirs = _finite(champion.metrics, beat.metric)
            comparison = {"champion": champion.name, "metric": beat.metric, "value": value, "champion_value": theirs}
            if theirs is None:
                message = f"cannot compare {beat.metric}: champion {champion.name} has no value"
                return PromotionDecision(rejected, missing, message, **comparison)
            gain = theirs - value if beat.metric in LOWER_IS_BETTER else value - theirs
            better = gain >= beat.margin if beat.margin > 0 else gain > 0
            words = f"{beat.metric} {_fmt(value)} vs champion {champion.name}'s {_fmt(theirs)}"
            words += f", {champion.basis}" if champion.basis else ""
            if not better:
                margin = f" by at least {_fmt(beat.margin)}" if beat.margin > 0 else ""
                return PromotionDecision(rejected, NOT_BETTER, f"{words}: does not beat it{margin}", **comparison)
            passed.append(words)
    evidence = "; ".join(passed) or "no gates configured"
    if promotion.policy == "manual" and not approved:
        return PromotionDecision(
            Decision.PENDING_APPROVAL,
            AWAITING_APPROVAL,
            f"gates passed ({evidence}); approve with: kubectl annotate trainingrun <name> mlops.dev/approved=true",
            **comparison,
        )
    reason = APPROVED if promotion.policy == "manual" else GATES_PASSED
    return PromotionDecision(Decision.PROMOTED, reason, f"gates passed: {evidence}", **comparison)


# --- the bookkeeping of a recorded decision ------------------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    """The promotion record after reconciling it with the registry's labels, and what to write there:
    `hand_over` (finish a promotion whose label was never written: a crash between the two writes),
    `hand_back` (this version was rolled back while champion: the title goes to the last good version)."""

    promotion: PromotionStatus | None
    action: Literal["hand_over", "hand_back"] | None = None


def settle_promotion(
    promotion: PromotionStatus | None,
    *,
    labelled_champion: bool,
    rolled_back: RollbackRecord | None,
    promoted_later: str | None,
    now: str,
) -> Settled:
    """A recorded decision brought in line with the registry; idempotent across a crash at any point.

    The decision is written before the champion label (the metrics a next run compares with are there
    first), so a Promoted run without the label is either superseded — another run was promoted after
    it (`promoted_later`, by decision time, labelled or about to be) — or the hand-over stopped half way,
    and is finished now. A rollback mark (written by the ModelDeployment that rolled the version back)
    takes the title away; a Superseded run labelled again got it back from such a rollback.
    """
    decision = promotion.decision if promotion else None
    if rolled_back is not None:
        if promotion is not None and decision in (Decision.PROMOTED, Decision.SUPERSEDED):
            words = f"rolled back by ModelDeployment {rolled_back.model_deployment} ({rolled_back.reason}): "
            words += rolled_back.message or "no message"
            change = {
                "decision": Decision.ROLLED_BACK,
                "reason": ROLLED_BACK,
                "message": words[:1000],
                "decided_at": now,
            }
            promotion = promotion.model_copy(update=change)
        return Settled(promotion, "hand_back" if labelled_champion else None)
    if promotion is None:
        return Settled(None)
    if decision == Decision.ROLLED_BACK:  # the mark was cleared (kubectl mlops retry): decided afresh
        return Settled(None)
    if decision == Decision.PROMOTED and not labelled_champion:
        if promoted_later is None:
            return Settled(promotion, "hand_over")
        change = {
            "decision": Decision.SUPERSEDED,
            "reason": SUPERSEDED,
            "message": f"{promoted_later} became the champion",
        }
        return Settled(promotion.model_copy(update=change))
    if decision == Decision.SUPERSEDED and labelled_champion:
        words = "the champion again: the version promoted after it was rolled back"
        change = {"decision": Decision.PROMOTED, "reason": REINSTATED, "message": words, "decided_at": now}
        return Settled(promotion.model_copy(update=change))
    return Settled(promotion)


def decision_due(promotion: PromotionStatus | None, *, rolled_back: bool = False) -> bool:
    """Whether the policy is (still) to be asked: never asked, or waiting for approval. Other decisions
    stick; a version rolled back is never asked (approving it would serve it again) until retried."""
    return not rolled_back and (promotion is None or promotion.decision == Decision.PENDING_APPROVAL)


def record_decision(
    promotion: PromotionStatus | None, decision: PromotionDecision, *, now: str
) -> PromotionStatus | None:
    """The new status.promotion, or None when the decision is the one already recorded: a run waiting
    for approval keeps the time it started waiting."""
    if promotion is not None and promotion.decision == decision.decision:
        return None
    return decision.as_status(decided_at=now)
