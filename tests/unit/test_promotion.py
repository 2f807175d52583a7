"""The promotion policy as a table: first model, better, worse, tie, margins, missing metrics, manual."""

from __future__ import annotations

import math

import pytest

from mlops_operator.api.trainingrun import PromotionSpec
from mlops_operator.registry.promotion import Champion, decide_promotion


def spec(**kwargs) -> PromotionSpec:
    return PromotionSpec.model_validate(kwargs)


BEAT = {"beatChampion": {"metric": "accuracy"}}
CHAMP = Champion("old", {"accuracy": 0.90, "rmse": 3.0})

CASES = [
    # id, metrics, promotion, champion, approved, decision, reason, words in message
    ("first-model", {"accuracy": 0.5}, spec(**BEAT), None, False, "Promoted", "GatesPassed", "first version"),
    ("better", {"accuracy": 0.95}, spec(**BEAT), CHAMP, False, "Promoted", "GatesPassed", "0.95 vs champion old's 0.9"),
    ("worse", {"accuracy": 0.85}, spec(**BEAT), CHAMP, False, "Rejected", "NotBetterThanChampion", "0.85"),
    ("tie-is-not-beating", {"accuracy": 0.90}, spec(**BEAT), CHAMP, False, "Rejected", "NotBetterThanChampion",
     "does not beat"),
    ("below-margin", {"accuracy": 0.92}, spec(beatChampion={"metric": "accuracy", "margin": 0.05}), CHAMP, False,
     "Rejected", "NotBetterThanChampion", "by at least 0.05"),
    ("lower-is-better", {"rmse": 2.5}, spec(beatChampion={"metric": "rmse"}), CHAMP, False, "Promoted",
     "GatesPassed", "rmse 2.5"),
    ("lower-is-better-worse", {"rmse": 3.5}, spec(beatChampion={"metric": "rmse"}), CHAMP, False, "Rejected",
     "NotBetterThanChampion", "rmse 3.5"),
    ("gate-min", {"accuracy": 0.7}, spec(gates=[{"metric": "accuracy", "min": 0.8}]), None, False, "Rejected",
     "GateFailed", "below the gate's min 0.8"),
    ("gate-max", {"rmse": 9.0}, spec(gates=[{"metric": "rmse", "max": 5}]), None, False, "Rejected",
     "GateFailed", "above the gate's max 5"),
    ("gate-missing-metric", {"accuracy": 0.9}, spec(gates=[{"metric": "roc_auc", "min": 0.5}]), None, False,
     "Rejected", "MissingMetric", "roc_auc"),
    ("nan-metric", {"accuracy": math.nan}, spec(**BEAT), None, False, "Rejected", "MissingMetric", "no finite"),
    ("no-metrics", {}, spec(), None, False, "Rejected", "MissingMetric", "no finite metric"),
    ("champion-lacks-metric", {"accuracy": 0.99}, spec(**BEAT), Champion("old", {}), False, "Rejected",
     "MissingMetric", "champion old has no value"),
    ("manual-waits", {"accuracy": 0.99}, spec(policy="manual", **BEAT), CHAMP, False, "PendingApproval",
     "AwaitingApproval", "kubectl annotate"),
    ("manual-approved", {"accuracy": 0.99}, spec(policy="manual", **BEAT), CHAMP, True, "Promoted", "Approved",
     "0.99"),
    ("manual-approved-but-worse", {"accuracy": 0.5}, spec(policy="manual", **BEAT), CHAMP, True, "Rejected",
     "NotBetterThanChampion", "0.5"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("metrics", "promotion", "champion", "approved", "decision", "reason", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_promotion_policy(metrics, promotion, champion, approved, decision, reason, words) -> None:
    result = decide_promotion(metrics=metrics, promotion=promotion, champion=champion, approved=approved)
    assert (result.decision, result.reason) == (decision, reason), result.message
    assert words in result.message


def test_rejection_against_champion_records_both_values() -> None:
    result = decide_promotion(metrics={"accuracy": 0.85}, promotion=spec(**BEAT), champion=CHAMP, approved=False)
    assert (result.champion, result.metric, result.value, result.champion_value) == ("old", "accuracy", 0.85, 0.9)
