"""The canary state machine as a table of situations: advance, pause, manual gate, inconclusive,
failure limit, abort, promote, post-promotion guard, and resuming from status after a restart."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.rollout.canary import (
    PAUSE_INCONCLUSIVE,
    PAUSE_STEP,
    Observation,
    Target,
    measurement_due,
    next_rollout,
    replica_split,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
V1 = Target("v1", "pvc://a/models/ns/m/v1", "1" * 64)
V2 = Target("v2", "pvc://a/models/ns/m/v2", "2" * 64)
STEPS = [{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"analysis": {}}, {"setWeight": 50}, {"pause": {}}]


def spec(steps=STEPS, **extra) -> ModelDeploymentSpec:
    body = {"model": {"name": "m"}, "strategy": {"canary": {"steps": steps}},
            "analysis": {"interval": "30s", "failureLimit": 2, "inconclusiveLimit": 2}, **extra}  # fmt: skip
    return ModelDeploymentSpec.model_validate(body)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def step(s, status, seconds, target=V2, **obs):
    decision = next_rollout(s, json.loads(json.dumps(status)), Observation(now=at(seconds), target=target, **obs))
    return decision, decision.status


def stable_on_v1() -> dict:
    return step(spec(), {}, 0, target=V1)[1]


def test_first_version_is_served_at_once() -> None:
    decision, status = step(spec(), {}, 0, target=V1)
    assert status["stable"]["version"] == "v1" and status.get("canary") is None
    assert decision.canary_weight == 0 and decision.events[0][1] == "Deployed"


def test_a_new_version_walks_through_the_steps_to_promotion() -> None:
    s = spec(replicas=4)
    d, st = step(s, stable_on_v1(), 10)
    assert (st["canary"]["version"], d.canary_weight, d.requeue_after) == ("v2", 20, 1.0)  # waits for pods
    d, st = step(s, st, 11, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 1 and st["canary"]["pauseStartedAt"] == "2026-01-01T00:00:11.000Z"
    assert d.requeue_after == pytest.approx(60)
    d, st = step(s, st, 40, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 1 and d.requeue_after == pytest.approx(31)
    d, st = step(s, st, 71, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 2, "pause over: now the analysis step"
    d, st = step(s, st, 72, canary_ready_replicas=4, measurement="Inconclusive", measurement_message="no data")
    assert st["canary"]["stepIndex"] == 2, "no data never passes an analysis step"
    d, st = step(s, st, 102, canary_ready_replicas=1, measurement="Successful")
    assert st["canary"]["stepIndex"] == 3 and d.canary_weight == 50, "50 % needs 2 ready canary pods of 4"
    d, st = step(s, st, 103, canary_ready_replicas=2)
    assert st["canary"]["stepIndex"] == 4 and st["pauseReason"] == PAUSE_STEP
    d, st = step(s, st, 500, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 4, "an indefinite pause waits for a person"
    d, st = step(s, st, 501, canary_ready_replicas=4, commands={"promote": "t1"})
    assert st.get("canary") is None and st["stable"]["version"] == "v2" and st["lastGood"]["version"] == "v1"
    assert st["history"][0]["outcome"] == "Promoted" and d.events[-1][1] == "Promoted"
    d, st2 = step(s, st, 502, commands={"promote": "t1"})
    assert st2["stable"]["version"] == "v2" and st2.get("canary") is None, "a handled token does nothing twice"


def test_failed_measurements_reach_the_limit_and_roll_back() -> None:
    s = spec()
    _, st = step(s, stable_on_v1(), 10, canary_ready_replicas=4)
    d, st = step(s, st, 20, canary_ready_replicas=4, measurement="Failed", measurement_message="accuracy 0.61 < 0.9")
    assert st["canary"]["failures"] == 1
    d, st = step(s, st, 50, canary_ready_replicas=4, measurement="Failed", measurement_message="accuracy 0.58 < 0.9")
    assert st.get("canary") is None and d.canary_weight == 0 and st["stable"]["version"] == "v1"
    assert st["failedVersions"] == ["v2"] and st["degraded"]["reason"] == "AnalysisFailed"
    assert "accuracy 0.58 < 0.9" in d.events[-1][2]
    d, st = step(s, st, 100, canary_ready_replicas=4)
    assert st.get("canary") is None, "a version rolled back here is not retried by itself"


def test_inconclusive_measurements_pause_until_resumed() -> None:
    s = spec(steps=[{"setWeight": 20}, {"pause": {"duration": "10s"}}])
    _, st = step(s, stable_on_v1(), 0, canary_ready_replicas=4)
    for t in (1, 31):
        _, st = step(s, st, t, canary_ready_replicas=4, measurement="Inconclusive", measurement_message="no data")
    assert st["pauseReason"] == PAUSE_INCONCLUSIVE
    _, st = step(s, st, 100, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 1, "paused: never promoted on missing evidence"
    _, st = step(s, st, 101, canary_ready_replicas=4, commands={"resume": "r1"})
    assert st.get("canary") is None and st["stable"]["version"] == "v2"


def test_abort_rolls_back_and_marks_the_version() -> None:
    _, st = step(spec(), stable_on_v1(), 10, canary_ready_replicas=4)
    d, st = step(spec(), st, 20, commands={"abort": "a1"})
    assert st.get("canary") is None and st["history"][0]["outcome"] == "Aborted" and st["failedVersions"] == ["v2"]


def test_pods_that_never_become_ready_roll_back_after_the_deadline() -> None:
    s = spec(progressDeadlineSeconds=60)
    _, st = step(s, stable_on_v1(), 0)
    d, st = step(s, st, 30)
    assert st["canary"]["weight"] == 20
    d, st = step(s, st, 61)
    assert st["degraded"]["reason"] == "ProgressDeadlineExceeded" and st["stable"]["version"] == "v1"


def test_spec_paused_freezes_the_rollout() -> None:
    _, st = step(spec(), stable_on_v1(), 0, canary_ready_replicas=4)
    _, st = step(spec(paused=True), st, 1000, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 1 and st["pauseReason"] == "SpecPaused"


def test_restart_resumes_the_same_step_from_status() -> None:
    s = spec()
    _, st = step(s, stable_on_v1(), 0, canary_ready_replicas=4)
    restored = json.loads(json.dumps(st))  # all a new operator process has is status
    d, st = step(s, restored, 45, canary_ready_replicas=4)
    assert st["canary"]["stepIndex"] == 1 and d.requeue_after == pytest.approx(15)


def test_new_champion_mid_rollout_restarts_the_canary() -> None:
    _, st = step(spec(), stable_on_v1(), 0, canary_ready_replicas=4)
    v3 = Target("v3", "pvc://a/models/ns/m/v3", "3" * 64)
    d, st = step(spec(), st, 5, target=v3)
    assert st["canary"]["version"] == "v3" and st["canary"]["stepIndex"] == 0


def test_post_promotion_guard_rolls_back_to_the_last_good_version() -> None:
    s = spec(steps=[{"setWeight": 50}], postPromotion={"window": "10m"})
    _, st = step(s, stable_on_v1(), 0, canary_ready_replicas=4)
    assert st["stable"]["version"] == "v2" and measurement_due(s, st, at(1))
    _, st = step(s, st, 30, measurement="Failed", measurement_message="errorRate 0.2 > 0.05")
    d, st = step(s, st, 60, measurement="Failed", measurement_message="errorRate 0.3 > 0.05")
    assert st["stable"]["version"] == "v1" and st["failedVersions"] == ["v2"]
    assert st["degraded"]["reason"] == "PostPromotionAnalysisFailed" and d.events[-1][1] == "RolledBack"
    assert not measurement_due(s, st, at(61)), "nothing left to guard"


def test_a_canary_is_measured_only_once_one_of_its_pods_is_ready() -> None:
    s = spec()
    _, st = step(s, stable_on_v1(), 0)
    assert st["canary"]["version"] == "v2" and not measurement_due(s, st, at(1))
    st["canary"]["readyReplicas"] = 1  # what the controller records after applying the Deployments
    assert measurement_due(s, st, at(1))


def test_guard_window_ends() -> None:
    s = spec(steps=[{"setWeight": 50}], postPromotion={"window": "1m"})
    _, st = step(s, stable_on_v1(), 0, canary_ready_replicas=4)
    assert measurement_due(s, st, at(30)) and not measurement_due(s, st, at(61))


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [(4, 0, (4, 0)), (4, 25, (3, 1)), (4, 50, (2, 2)), (4, 100, (0, 4)), (2, 20, (1, 1)), (1, 50, (1, 1)),
     (10, 5, (9, 1)), (10, 90, (1, 9))],
)  # fmt: skip
def test_replica_split(total: int, weight: int, split: tuple[int, int]) -> None:
    assert replica_split(total, weight) == split


def test_the_observed_status_is_not_changed() -> None:
    """The caller diffs its observed status against the result: next_rollout must not mutate its input."""
    _, st = step(spec(), stable_on_v1(), 0)
    before = json.loads(json.dumps(st))
    next_rollout(spec(), st, Observation(now=at(5), target=V2, measurement="Failed", measurement_message="x"))
    assert st == before
