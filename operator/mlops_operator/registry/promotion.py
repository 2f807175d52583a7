"""The promotion policy as a pure function: metrics, gates and the champion in, a decision out.

Never promote on missing evidence: a gate on a metric that was not computed, a champion comparison
where either side lacks the metric, or a run with no metrics at all is a rejection, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api.estimators import LOWER_IS_BETTER
from ..api.trainingrun import PromotionSpec

# Reasons of the Promoted condition and status.promotion.reason.
GATES_PASSED = "GatesPassed"
GATE_FAILED = "GateFailed"
MISSING_METRIC = "MissingMetric"
NOT_BETTER = "NotBetterThanChampion"
AWAITING_APPROVAL = "AwaitingApproval"
APPROVED = "Approved"
SUPERSEDED = "Superseded"


@dataclass(frozen=True)
class Champion:
    name: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class PromotionDecision:
    decision: str  # Promoted | Rejected | PendingApproval
    reason: str
    message: str
    champion: str | None = None
    metric: str | None = None
    value: float | None = None
    champion_value: float | None = None

    def as_status(self, *, decided_at: str) -> dict[str, object]:
        """The TrainingRun's `status.promotion` record of this decision."""
        record = {"decision": self.decision, "reason": self.reason, "message": self.message,
                  "champion": self.champion, "metric": self.metric, "value": self.value,
                  "championValue": self.champion_value, "decidedAt": decided_at}  # fmt: skip
        return {k: v for k, v in record.items() if v is not None}


def _finite(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def decide_promotion(
    *, metrics: dict[str, float], promotion: PromotionSpec, champion: Champion | None, approved: bool
) -> PromotionDecision:
    if not any(_finite(metrics, name) is not None for name in metrics):
        return PromotionDecision("Rejected", MISSING_METRIC, "the run recorded no finite metric")
    passed = []
    for gate in promotion.gates:
        value = _finite(metrics, gate.metric)
        if value is None:
            return PromotionDecision("Rejected", MISSING_METRIC, f"gate on {gate.metric}: the metric was not computed")
        if gate.min is not None and value < gate.min:
            return PromotionDecision(
                "Rejected", GATE_FAILED, f"{gate.metric} {_fmt(value)} is below the gate's min {_fmt(gate.min)}"
            )
        if gate.max is not None and value > gate.max:
            return PromotionDecision(
                "Rejected", GATE_FAILED, f"{gate.metric} {_fmt(value)} is above the gate's max {_fmt(gate.max)}"
            )
        passed.append(f"{gate.metric} {_fmt(value)}")
    comparison: dict = {}
    beat = promotion.beat_champion
    if beat:
        value = _finite(metrics, beat.metric)
        if value is None:
            return PromotionDecision("Rejected", MISSING_METRIC, f"{beat.metric} was not computed for this run")
        if champion is None:
            passed.append(f"first version of the model ({beat.metric} {_fmt(value)})")
        else:
            theirs = _finite(champion.metrics, beat.metric)
            comparison = {"champion": champion.name, "metric": beat.metric, "value": value, "champion_value": theirs}
            if theirs is None:
                message = f"cannot compare {beat.metric}: champion {champion.name} has no value"
                return PromotionDecision("Rejected", MISSING_METRIC, message, **comparison)
            gain = theirs - value if beat.metric in LOWER_IS_BETTER else value - theirs
            better = gain >= beat.margin if beat.margin > 0 else gain > 0
            words = f"{beat.metric} {_fmt(value)} vs champion {champion.name}'s {_fmt(theirs)}"
            if not better:
                margin = f" by at least {_fmt(beat.margin)}" if beat.margin > 0 else ""
                return PromotionDecision("Rejected", NOT_BETTER, f"{words}: does not beat it{margin}", **comparison)
            passed.append(words)
    evidence = "; ".join(passed) or "no gates configured"
    if promotion.policy == "manual" and not approved:
        return PromotionDecision(
            "PendingApproval",
            AWAITING_APPROVAL,
            f"gates passed ({evidence}); approve with: kubectl annotate trainingrun <name> mlops.dev/approved=true",
            **comparison,
        )
    reason = APPROVED if promotion.policy == "manual" else GATES_PASSED
    return PromotionDecision("Promoted", reason, f"gates passed: {evidence}", **comparison)
