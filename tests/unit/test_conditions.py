"""Conditions keep their transition time while their status holds, and are keyed by type."""

from __future__ import annotations

from mlops_operator.api import conditions as c


def _set(conds, status, reason="R", now="2026-01-01T00:00:10Z"):
    return c.set_condition(conds, type_=c.READY, status=status, reason=reason, message="m", generation=3, now=now)


def test_new_condition_gets_now_as_transition_time() -> None:
    [ready] = _set([], True)
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "R",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:10Z",
        "observedGeneration": 3,
    }


def test_same_status_keeps_transition_time_even_if_reason_changes() -> None:
    first = _set([], False, reason="A", now="2026-01-01T00:00:00Z")
    [again] = _set(first, False, reason="B", now="2026-01-01T00:05:00Z")
    assert again["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again["reason"] == "B"


def test_status_flip_moves_transition_time() -> None:
    first = _set([], False, now="2026-01-01T00:00:00Z")
    [flipped] = _set(first, True, now="2026-01-01T00:05:00Z")
    assert flipped["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_other_conditions_are_kept() -> None:
    other = {"type": "Validated", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t"}
    result = _set([other], True)
    assert [cond["type"] for cond in result] == ["Validated", "Ready"]
    assert c.find_condition(result, "Validated") == other
    assert c.find_condition(result, "Missing") is None
