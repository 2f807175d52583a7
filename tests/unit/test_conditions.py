"""Conditions keep their transition time while their status holds, and are keyed by type; reasons are enums."""

from __future__ import annotations

import pytest

from mlops_operator.api import conditions as c
from mlops_operator.api.common import Condition
from mlops_operator.api.reasons import ConditionStatus, ConditionType, Decision, Reason, TrainingPhase


def _set(conds, status, reason="R", now="2026-01-01T00:00:10Z", **kwargs):
    return c.set_condition(
        conds, type_=c.READY, status=status, reason=reason, message="m", generation=3, now=now, **kwargs
    )


def _validated(transition: str = "t") -> Condition:
    return Condition(type="Validated", status="True", reason="X", last_transition_time=transition)


def test_new_condition_gets_now_as_transition_time() -> None:
    [ready] = _set([], True, typed=True)
    assert ready == Condition(
        type="Ready",
        status="True",
        reason="R",
        message="m",
        last_transition_time="2026-01-01T00:00:10Z",
        observed_generation=3,
    )


@pytest.mark.parametrize(
    ("first", "then", "reason", "transition"),
    [
        (False, False, "B", "2026-01-01T00:00:00Z"),  # same status, another reason: the time holds
        (False, "False", "A", "2026-01-01T00:00:00Z"),  # a status given as text is the same status
        (False, True, "A", "2026-01-01T00:05:00Z"),  # a flip moves it
        (ConditionStatus.UNKNOWN, ConditionStatus.TRUE, "A", "2026-01-01T00:05:00Z"),
        (ConditionStatus.TRUE, True, "A", "2026-01-01T00:00:00Z"),
    ],
)
def test_transition_time_moves_only_when_the_status_does(first, then, reason, transition) -> None:
    before = _set([], first, reason="A", now="2026-01-01T00:00:00Z", typed=True)
    [after] = _set(before, then, reason=reason, now="2026-01-01T00:05:00Z")
    assert (after.last_transition_time, after.reason) == (transition, reason)


def test_other_conditions_are_kept_and_the_set_one_goes_last() -> None:
    other = _validated()
    result = _set([other], True)
    assert [cond.type for cond in result] == ["Validated", "Ready"]
    assert c.find_condition(result, c.VALIDATED) is other
    assert c.find_condition(result, "Missing") is None
    assert [cond.type for cond in _set(result, False)] == ["Validated", "Ready"]


def test_a_status_that_is_not_true_false_or_unknown_is_refused() -> None:
    with pytest.raises(ValueError):
        _set([], "Maybe", typed=True)


# The dict form, for the callers that still hold status as dicts.


def test_dicts_in_dicts_out_with_observed_generation_even_when_none() -> None:
    [ready] = c.set_condition(
        [], type_=c.READY, status=False, reason=c.INVALID_SPEC, message="m", generation=None, now="2026-01-01T00:00:10Z"
    )
    assert ready == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:10Z",
        "observedGeneration": None,
    }
    assert all(type(value) in (str, type(None)) for value in ready.values()), "plain strings, never enum members"


def test_dict_conditions_keep_their_transition_time_and_neighbours() -> None:
    other = {"type": "Validated", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t"}
    first = _set([other], False, reason="A", now="2026-01-01T00:00:00Z")
    [kept, again] = _set(first, False, reason="B", now="2026-01-01T00:05:00Z")
    assert kept is other and again["lastTransitionTime"] == "2026-01-01T00:00:00Z" and again["reason"] == "B"
    assert c.find_condition(first, "Validated") == other
    assert c.find_condition(first, "Missing") is None


def test_a_list_with_a_model_gives_models() -> None:
    dicts = _set([], True)
    mixed = c.set_condition(
        [*dicts, _validated()],
        type_=c.VALIDATED,
        status=False,
        reason="Y",
        message="",
        generation=1,
        now="2026-01-01T00:05:00Z",
    )
    assert all(isinstance(cond, Condition) for cond in mixed)
    assert [cond.type for cond in mixed] == ["Ready", "Validated"]


# Reasons, types and phases are StrEnums: equal to the text read back from the API.


@pytest.mark.parametrize(
    ("member", "text"),
    [
        (c.READY, "Ready"),
        (c.INVALID_SPEC, "InvalidSpec"),
        (c.SOURCE_UNAVAILABLE, "SourceUnavailable"),
        (c.ARTIFACT_STORE_MISSING, "ArtifactStoreMissing"),
        (ConditionType.PROMOTED, "Promoted"),
        (Reason.DEADLINE_EXCEEDED, "DeadlineExceeded"),
        (TrainingPhase.SUCCEEDED, "Succeeded"),
        (Decision.PENDING_APPROVAL, "PendingApproval"),
    ],
)
def test_enum_members_are_their_text(member, text) -> None:
    assert member == text and f"{member}" == text and isinstance(member, str)


def test_terminal_phases() -> None:
    assert [p for p in TrainingPhase if p.terminal] == [TrainingPhase.SUCCEEDED, TrainingPhase.FAILED]
