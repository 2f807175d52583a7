"""The promotion policy as pure functions: metrics, gates and the champion in, a decision out; and the
bookkeeping of a decision already recorded (superseded, still pending).

Never promote on missing evidence: a gate on a metric that was not computed, a champion comparison
where either side lacks the metric, or a run with no metrics at all is a rejection, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api.estimators import LOWER_IS_BETTER
from ..api.reasons import Decision, PromotionReason
from ..api.trainingrun import PromotionSpec, PromotionStatus

# The reasons under their former module-level names.
GATES_PASSED = PromotionReason.GATES_PASSED
GATE_FAILED = PromotionReason.GATE_FAILED
MISSING_METRIC = PromotionReason.MISSING_METRIC
NOT_BETTER = PromotionReason.NOT_BETTER
AWAITING_APPROVAL = PromotionReason.AWAITING_APPROVAL
APPROVED = PromotionReason.APPROVED
SUPERSEDED = PromotionReason.SUPERSEDED


@dataclass(frozen=True)
class Champion:
    name: str
    metrics: dict[str, float]


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
        return PromotionStatus(decision=self.decision, reason=self.reason, message=self.message,
                               champion=self.champion, metric=self.metric, value=self.value,
                               champion_value=self.champion_value, decided_at=decided_at)  # fmt: skip


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
        else:
            theirs = _finite(champion.metrics, beat.metric)
            comparison = {"champion": champion.name, "metric": beat.metric, "value": value, "champion_value": theirs}
            if theirs is None:
                message = f"cannot compare {beat.metric}: champion {champion.name} has no value"
                return PromotionDecision(rejected, missing, message, **comparison)
            gain = theirs - value if beat.metric in LOWER_IS_BETTER else value - theirs
            better = gain >= beat.margin if beat.margin > 0 else gain > 0
            words = f"{beat.metric} {_fmt(value)} vs champion {champion.name}'s {_fmt(theirs)}"
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


def superseded(promotion: PromotionStatus | None, *, labelled_champion: bool) -> PromotionStatus | None:
    """The record of a promoted run that lost the champion label to another version; else None.

    The label is the truth (the registry is the Kubernetes API): the hand-over moved it, status follows.
    """
    if promotion is None or promotion.decision != Decision.PROMOTED or labelled_champion:
        return None
    return promotion.model_copy(update={"decision": Decision.SUPERSEDED, "reason": SUPERSEDED,
                                        "message": "another version of the model became the champion"})  # fmt: skip


def decision_due(promotion: PromotionStatus | None) -> bool:
    """Whether the policy is (still) to be asked: never asked, or waiting for approval. Other decisions stick."""
    return promotion is None or promotion.decision == Decision.PENDING_APPROVAL


def record_decision(
    promotion: PromotionStatus | None, decision: PromotionDecision, *, now: str
) -> PromotionStatus | None:
    """The new status.promotion, or None when the decision is the one already recorded: a run waiting
    for approval keeps the time it started waiting."""
    if promotion is not None and promotion.decision == decision.decision:
        return None
    return decision.as_status(decided_at=now)
