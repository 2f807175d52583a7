"""Continuous training decided from status alone: triggers, cooldown, the daily cap, one run in flight,
Suggest; and the cron schedules that trigger it."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_operator.api.cron import next_run, parse_cron
from mlops_operator.api.modeldeployment import ModelDeploymentSpec, RetrainingStatus
from mlops_operator.rollout.retraining import Fired, dataset_fired, next_retraining, run_name, schedule_fired

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
TEMPLATE = {"datasetRef": {"name": "iris-live"}, "model": {"name": "iris", "estimator": "sklearn.svm.SVC"}}
DRIFT = Fired("drift", metric="retraining-drift", value=0.4, bound=0.2, window="10m", message="drift 0.4 > 0.2")


def retraining(**extra):
    body = {
        "model": {"name": "iris"},
        "retraining": {
            "mode": "Auto",
            "template": TEMPLATE,
            "cooldown": "1h",
            "maxPerDay": 2,
            "triggers": {"drift": {"threshold": 0.2}},
            **extra,
        },
    }
    return ModelDeploymentSpec.model_validate(body).retraining


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def decide(spec, status, minutes, fired=(DRIFT,), in_flight=(), version="sha256:a"):
    return next_retraining(
        spec, status, md="iris", fired=list(fired), now=at(minutes), in_flight=list(in_flight), dataset_version=version
    )


def test_a_trigger_creates_one_run_with_its_evidence_then_the_cooldown_holds() -> None:
    spec = retraining()
    first = decide(spec, None, 0)
    assert first.create == run_name("iris", 1) == "iris-retrain-1" and first.evidence == DRIFT
    [event] = first.status.history
    assert (event.trigger, event.value, event.bound, event.window, event.decision, event.run) == (
        "drift",
        0.4,
        0.2,
        "10m",
        "Created",
        "iris-retrain-1",
    )
    held = decide(spec, first.status, 30)  # drift still there, half an hour later: not a second run
    assert held.create is None and "cooldown lasts until 2026-12-01T13:00:00" in held.status.waiting
    assert held.wake_at <= at(60)
    again = decide(spec, held.status, 61)
    assert again.create == "iris-retrain-2" and again.status.waiting is None


@pytest.mark.parametrize(
    ("situation", "fired", "in_flight", "created"),
    [
        ("nothing fired", (), (), None),
        ("a run in flight", (DRIFT,), ("iris-retrain-1",), None),
        ("fired, nothing in flight", (DRIFT,), (), "iris-retrain-1"),
    ],
)
def test_at_most_one_run_in_flight(situation, fired, in_flight, created) -> None:
    decision = decide(retraining(), None, 0, fired=fired, in_flight=in_flight)
    assert decision.create == created, situation
    if in_flight:
        assert "iris-retrain-1 is still in flight" in decision.status.waiting


def test_the_daily_cap_counts_the_last_24_hours() -> None:
    spec = retraining(cooldown="1m")
    status = None
    made = []
    for minutes in (0, 10, 20, 30):
        decision = decide(spec, status, minutes)
        status = decision.status
        made.append(decision.create)
    assert made == ["iris-retrain-1", "iris-retrain-2", None, None]
    assert "2 runs in 24 hours is the cap (maxPerDay)" in status.waiting
    assert decide(spec, status, 24 * 60 + 1).create == "iris-retrain-3"  # the first one is a day old


def test_suggest_records_and_creates_nothing_with_the_same_cooldown() -> None:
    spec = retraining(mode="Suggest")
    first = decide(spec, None, 0)
    assert first.create is None and first.evidence == DRIFT
    assert [(e.decision, e.run) for e in first.status.history] == [("Suggested", "iris-retrain-1")]
    assert first.status.created == 0
    assert decide(spec, first.status, 5).status.history == first.status.history  # no suggestion per check


def test_a_new_dataset_version_triggers_but_the_first_one_seen_does_not() -> None:
    spec = retraining(triggers={"newDatasetVersion": True})
    assert dataset_fired(spec, RetrainingStatus(), "sha256:a") is None  # nothing seen yet: it is the baseline
    seen = decide(spec, None, 0, fired=(), version="sha256:a").status
    assert seen.dataset_version == "sha256:a" and dataset_fired(spec, seen, "sha256:a") is None
    fired = dataset_fired(spec, seen, "sha256:b")
    assert fired.trigger == "newDatasetVersion" and "iris-live has a new version sha256:b" in fired.message


def test_a_schedule_fires_once_per_named_minute() -> None:
    spec = retraining(triggers={"schedule": "0 3 * * *"})
    status = RetrainingStatus(schedule_from="2026-12-01T02:59:30Z")
    assert schedule_fired(spec, status, dt.datetime(2026, 12, 1, 2, 59, 50, tzinfo=dt.UTC)) is None
    fired = schedule_fired(spec, status, dt.datetime(2026, 12, 1, 3, 0, 5, tzinfo=dt.UTC))
    assert fired.trigger == "schedule" and "2026-12-01T03:00:00" in fired.message
    assert schedule_fired(spec, RetrainingStatus(), T0) is None  # never evaluated: no moment has passed yet
    after = decide(spec, status, 0, fired=(fired,)).status
    assert after.schedule_from == "2026-12-01T12:00:00.000Z"  # consumed, so it fires once
    assert schedule_fired(spec, after, dt.datetime(2026, 12, 1, 12, 30, tzinfo=dt.UTC)) is None


def test_evaluating_triggers_that_do_not_fire_changes_no_status() -> None:
    """An idle ModelDeployment with retraining is not rewritten every checkInterval."""
    spec = retraining(triggers={"schedule": "0 3 * * *", "drift": {"threshold": 0.2}})
    first = decide(spec, None, 0, fired=()).status
    assert first.schedule_from == "2026-12-01T12:00:00.000Z"
    for minutes in (1, 2, 30, 600):
        assert decide(spec, first, minutes, fired=()).status == first
    created = decide(spec, first, 700).status
    held = decide(spec, created, 701).status
    assert "cooldown" in held.waiting and decide(spec, held, 702).status == held  # what holds it, said once


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", "2026-12-01T12:07:00", "2026-12-01T12:15:00"),
        ("0 3 * * *", "2026-12-01T03:00:00", "2026-12-02T03:00:00"),
        ("30 8 * * 1", "2026-12-01T12:00:00", "2026-12-07T08:30:00"),  # Monday
        ("0 0 1 * *", "2026-12-15T00:00:00", "2027-01-01T00:00:00"),
        ("0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00"),
        ("0 9 1-7 * 0", "2026-12-01T10:00:00", "2026-12-02T09:00:00"),  # day or weekday, as cron has it
    ],
)
def test_cron_next_run(expression: str, after: str, expected: str) -> None:
    moment = dt.datetime.fromisoformat(after).replace(tzinfo=dt.UTC)
    assert next_run(expression, moment) == dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("expression", ["* * * *", "61 * * * *", "*/0 * * * *", "MON * * * *"])
def test_a_bad_schedule_is_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_cron(expression)


def test_retraining_needs_the_champion_it_follows_and_a_trigger() -> None:
    from pydantic import ValidationError

    spec = retraining()
    assert spec.template.model.name == "iris" and spec.check_interval == "1m" and spec.max_per_day == 2
    with pytest.raises(ValidationError):
        retraining(triggers={"schedule": "not cron"})


def test_a_schedule_the_pattern_lets_through_is_still_refused_with_its_reason() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'61' is outside 0-59"):
        retraining(triggers={"schedule": "61 * * * *"})


@pytest.mark.parametrize(
    ("situation", "psi", "fires"),
    [
        ("drifted for the whole minute", [0.1] * 10 + [3.0] * 11, True),
        ("drifted, but for 30 s", [0.1] * 18 + [3.0] * 3, False),
        ("drifted since its series began 30 s ago (a new version's servers)", [None] * 18 + [3.0] * 3, False),
        ("drifted since its series began 50 s ago", [None] * 16 + [3.0] * 5, True),
        ("one point under the threshold in the window", [3.0] * 18 + [0.1] + [3.0] * 2, False),
    ],
)
def test_the_drift_trigger_needs_drift_over_its_whole_window(tmp_path, situation, psi, fires) -> None:
    """The trigger's PromQL, evaluated by Prometheus's own rule tester on a feature PSI series (15 s apart)."""
    from mlops_operator.controllers.retraining import trigger_metrics
    from mlops_operator.rollout.analysis import result
    from support import promtool_value

    spec = retraining(triggers={"drift": {"threshold": 0.5, "for": "1m"}})
    [metric] = trigger_metrics(spec, namespace="ml", model="iris", version="v1")
    series = 'mlops_feature_psi{namespace="ml",model="iris",version="v1",feature="petal_width_cm",pod="p1"}'
    values = " ".join("_" if v is None else str(v) for v in psi)
    value = promtool_value(tmp_path, {series: values}, metric.query, at_seconds=15 * (len(psi) - 1))
    verdict = result(metric, value)
    assert (verdict.phase == "Failed") == fires, (situation, value, verdict)
