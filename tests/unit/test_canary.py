"""The canary state machine as a table of situations: advance, pause, manual gate, inconclusive,
never promoted on missing evidence, failure limit, abort, promote, post-promotion guard, resuming from
status after a restart, and when the rollout next needs a look by itself."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from mlops_operator.rollout import timing
from mlops_operator.rollout.analysis import metrics_to_judge
from mlops_operator.rollout.canary import (
    PAUSE_INCONCLUSIVE,
    PAUSE_SPEC,
    PAUSE_STEP,
    Observation,
    Target,
    next_rollout,
    replica_split,
)
from mlops_operator.rollout.timing import measurement_due, next_wake

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
V1 = Target("v1", "pvc://a/models/ns/m/v1", "1" * 64)
V2 = Target("v2", "pvc://a/models/ns/m/v2", "2" * 64)
STEPS = [{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"analysis": {}}, {"setWeight": 50}, {"pause": {}}]


def spec(steps=STEPS, **extra) -> ModelDeploymentSpec:
    body = {
        "model": {"name": "m"},
        "strategy": {"canary": {"steps": steps}},
        "analysis": {"interval": "30s", "failureLimit": 2, "inconclusiveLimit": 2},
        **extra,
    }
    return ModelDeploymentSpec.model_validate(body)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stored(status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """The status as the API server hands it back: all a (restarted) operator has."""
    return ModelDeploymentStatus.model_validate(status.model_dump(by_alias=True, mode="json"))


def step(s, status, seconds, target=V2, **obs):
    decision = next_rollout(s, stored(status), Observation(now=at(seconds), target=target, **obs))
    return decision, decision.status


def stable_on_v1() -> ModelDeploymentStatus:
    return step(spec(), ModelDeploymentStatus(), 0, target=V1)[1]


def canary_of_v2(s: ModelDeploymentSpec, seconds: float) -> ModelDeploymentStatus:
    """v2 begins its canary over v1 at `seconds`; its pods come in a later observation."""
    return step(s, stable_on_v1(), seconds)[1]


def test_first_version_is_served_at_once() -> None:
    decision, status = step(spec(), ModelDeploymentStatus(), 0, target=V1)
    assert status.stable.version == "v1" and status.canary is None
    assert decision.canary_weight == 0 and decision.events[0][1] == "Deployed"
    assert decision.wake_at is None, "nothing to guard: settled"


def test_a_new_version_walks_through_the_steps_to_promotion() -> None:
    s = spec(replicas=4)
    d, st = step(s, stable_on_v1(), 10)
    assert (st.canary.version, d.canary_weight) == ("v2", 20)
    assert d.wake_at == at(310), "waiting for pods: only the progress deadline wakes it"
    d, st = step(s, st, 11, canary_ready_replicas=4)
    assert st.canary.step_index == 1 and st.canary.pause_started_at == "2026-01-01T00:00:11.000Z"
    assert timing.pause_end(s, st.canary) == at(71)
    assert d.wake_at == at(11), "a ready canary pod never measured: measure at once"
    d, st = step(s, st, 12, canary_ready_replicas=4, measurement="Successful")
    assert d.wake_at == at(42), "the next measurement comes before the pause ends"
    d, st = step(s, st, 40, canary_ready_replicas=4)
    assert st.canary.step_index == 1 and timing.pause_end(s, st.canary) - at(40) == dt.timedelta(seconds=31)
    d, st = step(s, st, 71, canary_ready_replicas=4)
    assert st.canary.step_index == 2, "pause over: now the analysis step"
    d, st = step(s, st, 72, canary_ready_replicas=4, measurement="Inconclusive", measurement_message="no data")
    assert st.canary.step_index == 2, "no data never passes an analysis step"
    assert st.canary.step_successes == 0, "the success during the pause does not count for the analysis step"
    d, st = step(s, st, 102, canary_ready_replicas=1, measurement="Successful")
    assert st.canary.step_index == 3 and d.canary_weight == 50, "50 % needs 2 ready canary pods of 4"
    assert (st.canary.replicas, st.canary.ready_replicas) == (2, 1)
    assert d.wake_at == at(132), "the next measurement, well before the deadline at 402"
    d, st = step(s, st, 103, canary_ready_replicas=2)
    assert st.canary.step_index == 4 and st.pause_reason == PAUSE_STEP
    d, st = step(s, st, 500, canary_ready_replicas=4)
    assert st.canary.step_index == 4, "an indefinite pause waits for a person"
    d, st = step(s, st, 501, canary_ready_replicas=4, commands={"promote": "t1"})
    assert st.canary is None and st.stable.version == "v2" and st.last_good.version == "v1"
    assert st.history[0].outcome == "Promoted" and d.events[-1][1] == "Promoted"
    assert d.wake_at == at(501), "the post-promotion guard measures the new stable version at once"
    d, st2 = step(s, st, 502, commands={"promote": "t1"})
    assert st2.stable.version == "v2" and st2.canary is None, "a handled token does nothing twice"


def test_with_gateway_routing_a_step_waits_until_the_route_carries_its_weight() -> None:
    """Ready pods are not enough when an HTTPRoute splits the traffic: a route not found (or not yet
    watched) carries nothing to the canary, and a step completed then would be judged with no traffic."""
    routing = {"mode": "GatewayAPI", "gatewayAPI": {"httpRoute": "r"}}
    s = spec(steps=[{"setWeight": 30}, {"setWeight": 70}], replicas=2, trafficRouting=routing)
    d, st = step(s, canary_of_v2(s, 10), 11, canary_ready_replicas=2, routed_weight=0)
    assert st.canary.step_index == 0 and d.canary_weight == 30, "the route carries 0 %: the step waits"
    d, st = step(s, st, 12, canary_ready_replicas=2, routed_weight=30)
    assert st.canary.step_index == 1 and d.canary_weight == 70, "30 % routed: the next step asks for 70"
    d, st = step(s, st, 13, canary_ready_replicas=2, routed_weight=30)
    assert st.canary.step_index == 1 and st.canary is not None, "70 % not routed yet: no promotion"
    d, st = step(s, st, 14, canary_ready_replicas=2, routed_weight=70, measurement="Successful")
    assert st.canary is None and st.stable.version == "v2"


def test_failed_measurements_reach_the_limit_and_roll_back() -> None:
    s = spec()
    _, st = step(s, canary_of_v2(s, 10), 10, canary_ready_replicas=4)
    d, st = step(s, st, 20, canary_ready_replicas=4, measurement="Failed", measurement_message="accuracy 0.61 < 0.9")
    assert st.canary.failures == 1
    d, st = step(s, st, 50, canary_ready_replicas=4, measurement="Failed", measurement_message="accuracy 0.58 < 0.9")
    assert st.canary is None and d.canary_weight == 0 and st.stable.version == "v1"
    assert st.failed_versions == ["v2"] and st.degraded.reason == "AnalysisFailed"
    assert st.history[0].outcome == "RolledBack" and st.history[0].reason == "AnalysisFailed: accuracy 0.58 < 0.9"
    assert "accuracy 0.58 < 0.9" in d.events[-1][2]
    d, st = step(s, st, 100, canary_ready_replicas=4)
    assert st.canary is None, "a version rolled back here is not retried by itself"


def test_inconclusive_measurements_pause_until_resumed() -> None:
    s = spec(steps=[{"setWeight": 20}, {"pause": {"duration": "10s"}}])
    _, st = step(s, canary_of_v2(s, 0), 0, canary_ready_replicas=4)
    for t in (1, 31):
        d, st = step(s, st, t, canary_ready_replicas=4, measurement="Inconclusive", measurement_message="no data")
    assert st.pause_reason == PAUSE_INCONCLUSIVE and d.events == [("Warning", PAUSE_INCONCLUSIVE, "paused: no data")]
    assert d.wake_at == at(61), "held: the pause end (10 s) does not wake it, the next measurement does"
    _, st = step(s, st, 100, canary_ready_replicas=4)
    assert st.canary.step_index == 1, "paused: never promoted on missing evidence"
    d, st = step(s, st, 101, canary_ready_replicas=4, commands={"resume": "r1"})
    assert st.pause_reason is None and st.canary.inconclusives == 0, "resumed with a fresh count"
    assert st.canary.step_index == 2 and st.canary is not None, "the pause goes on, the promotion needs evidence"
    assert d.wake_at == at(61) < at(101), "the measurement due since 61 is taken at once"
    d, st = step(s, st, 102, canary_ready_replicas=4, measurement="Successful")
    assert st.canary is None and st.stable.version == "v2" and d.events[-1][1] == "Promoted"


def test_promote_skips_a_step_held_on_inconclusive_analysis() -> None:
    s = spec(steps=[{"setWeight": 20}, {"analysis": {}}, {"pause": {}}])
    _, st = step(s, canary_of_v2(s, 0), 0, canary_ready_replicas=4)
    for t in (1, 31):
        _, st = step(s, st, t, canary_ready_replicas=4, measurement="Inconclusive", measurement_message="no data")
    assert st.pause_reason == PAUSE_INCONCLUSIVE and st.canary.step_index == 1
    _, st = step(s, st, 40, canary_ready_replicas=4, commands={"promote": "p1"})
    assert st.canary.step_index == 2 and st.pause_reason == PAUSE_STEP, "one step skipped, then the manual gate"


# ---------------------------------------------------------------- never promoted on missing evidence

SHORT = [{"setWeight": 20}, {"pause": {"duration": "5s"}}]  # the rollout: no analysis step


def measured(s: ModelDeploymentSpec, measurements: tuple[str, ...]) -> ModelDeploymentStatus:
    """v2 canaried from 0, its pods ready at 1 (the 5 s pause begins), then one measurement a second from 2."""
    _, st = step(s, canary_of_v2(s, 0), 1, canary_ready_replicas=4)
    for i, phase in enumerate(measurements):
        _, st = step(s, st, 2 + i, canary_ready_replicas=4, measurement=phase, measurement_message=phase)
    return st


def test_background_measurements_without_data_never_promote() -> None:
    """The issue: metrics defined, only setWeight/pause steps, Prometheus unreachable. Before, the 5 s
    pause ended and the canary went to 100 % on inconclusive measurements only."""
    s = spec(steps=SHORT, analysis={"interval": "30s", "inconclusiveLimit": 3})
    _, st = step(s, canary_of_v2(s, 0), 0)
    d, st = step(s, st, 1, canary_ready_replicas=4)
    assert st.canary.step_index == 1 and d.wake_at == at(1), "pods ready: pause begins, first measurement at once"
    no_data = {"measurement": "Inconclusive", "measurement_message": "Prometheus query failed: connection refused"}
    d, st = step(s, st, 2, canary_ready_replicas=4, **no_data)
    assert d.wake_at == at(32), "the next measurement wakes it, not the end of the pause at 6"
    d, st = step(s, st, 6, canary_ready_replicas=4)
    assert st.canary.step_index == 1 and st.pause_reason is None, "pause over, held for the next measurement"
    assert d.wake_at == at(32), "a pause end already past is no deadline: no busy loop"
    d, st = step(s, st, 32, canary_ready_replicas=4, **no_data)
    assert st.canary.step_index == 1 and st.pause_reason is None and d.events == []
    d, st = step(s, st, 62, canary_ready_replicas=4, **no_data)
    assert st.pause_reason == PAUSE_INCONCLUSIVE, "the hold becomes the visible pause at inconclusiveLimit"
    assert d.events == [("Warning", PAUSE_INCONCLUSIVE, "paused: Prometheus query failed: connection refused")]
    assert d.wake_at == at(92) and d.canary_weight == 20
    for t in (92, 122, 1000):
        _, st = step(s, st, t, canary_ready_replicas=4, **(no_data if t < 1000 else {}))
    assert st.canary is not None and st.canary.step_index == 1 and st.stable.version == "v1", "never promoted"


@pytest.mark.parametrize(
    ("measurements", "step_index", "why"),
    [
        ((), 2, "no measurement yet: the pause completes (the promotion will want one)"),
        (("Successful",), 2, "passed"),
        (("Inconclusive",), 1, "the latest measurement has no data: wait for the next"),
        (("Successful", "Inconclusive"), 1, "the latest counts, not an earlier one"),
        (("Inconclusive", "Successful"), 2, "a Successful measurement after inconclusive ones lets it go on"),
        (("Inconclusive", "Failed"), 2, "a failure below failureLimit is evidence, tolerated as before"),
    ],
)
def test_a_pause_over_completes_unless_the_latest_measurement_is_inconclusive(
    measurements: tuple[str, ...], step_index: int, why: str
) -> None:
    s = spec(steps=[*SHORT, {"setWeight": 50}], analysis={"interval": "30s", "inconclusiveLimit": 3})
    _, st = step(s, measured(s, measurements), 10)  # at 2 the pods for 50 % are not ready yet: it stops there
    assert st.canary.step_index == step_index, why


def test_a_set_weight_with_its_pods_ready_waits_for_a_measurement_with_data() -> None:
    s = spec(
        steps=[*SHORT, {"setWeight": 50}, {"pause": {}}],
        analysis={"interval": "30s", "inconclusiveLimit": 3},
        replicas=4,
    )
    _, st = step(s, measured(s, ("Successful",)), 10, canary_ready_replicas=1)
    _, st = step(s, st, 11, canary_ready_replicas=1, measurement="Inconclusive", measurement_message="no data")
    _, st = step(s, st, 12, canary_ready_replicas=2)
    assert st.canary.step_index == 2 and st.canary.weight == 50, "pods for 50 % ready, but no data"
    _, st = step(s, st, 41, canary_ready_replicas=2, measurement="Successful")
    assert st.canary.step_index == 3 and st.pause_reason == PAUSE_STEP


@pytest.mark.parametrize(
    ("measurements", "promoted", "why"),
    [
        ((), False, "no measurement at all: held at the last step's weight"),
        (("Successful",), True, "the first measurement, at once when a pod is ready, passed before the pause ended"),
        (("Failed",), False, "a tolerated failure is no evidence for a promotion"),
        (("Inconclusive", "Inconclusive"), False, "no data"),
        (("Successful", "Inconclusive"), False, "the latest has no data: the pause waits"),
        (("Inconclusive", "Successful"), True, "data came"),
        (("Failed", "Successful"), True, "passed after a tolerated failure"),
    ],
)
def test_the_promotion_needs_a_successful_measurement(measurements: tuple[str, ...], promoted: bool, why: str) -> None:
    s = spec(steps=SHORT, analysis={"interval": "30s", "failureLimit": 2, "inconclusiveLimit": 3})
    d, st = step(s, measured(s, measurements), 10, canary_ready_replicas=4)
    assert (st.canary is None) == promoted, why
    if not promoted:
        assert d.canary_weight == 20 and st.stable.version == "v1" and st.pause_reason is None
        assert d.wake_at is not None and d.wake_at <= at(33), "the next measurement wakes it"


def test_the_steps_done_and_no_evidence_yet_waits_for_the_running_first_measurement() -> None:
    s = spec(steps=SHORT)
    d, st = step(s, measured(s, ()), 10, canary_ready_replicas=4)
    assert st.canary.step_index == 2 and st.canary.weight == 20, "every step done, not promoted"
    assert next_wake(s, st, at(10), measurement_running=True) is None, "the running measurement wakes it"
    d, st = step(s, st, 15, canary_ready_replicas=4, measurement="Successful")
    assert st.canary is None and st.stable.version == "v2" and st.history[0].outcome == "Promoted"


def test_a_canary_the_steps_never_give_traffic_is_promoted_without_measurements() -> None:
    """No setWeight above 0: no canary pods, nothing to measure; the post-promotion guard judges it."""
    s = spec(steps=[{"pause": {"duration": "10s"}}])
    _, st = step(s, canary_of_v2(s, 0), 1)
    assert st.canary.step_index == 0 and st.canary.replicas == 0
    _, st = step(s, st, 11)
    assert st.canary is None and st.stable.version == "v2"


@pytest.mark.parametrize(
    ("measurements", "pause_reason"),
    [
        (("Inconclusive",), None),
        (("Inconclusive", "Inconclusive"), None),
        (("Inconclusive", "Inconclusive", "Inconclusive"), PAUSE_INCONCLUSIVE),
        (("Inconclusive", "Failed", "Inconclusive", "Inconclusive"), None),
        (("Inconclusive", "Successful", "Inconclusive", "Inconclusive"), None),
    ],
)
def test_the_hold_turns_into_the_inconclusive_pause_at_the_limit(
    measurements: tuple[str, ...], pause_reason: str | None
) -> None:
    s = spec(steps=SHORT, analysis={"interval": "30s", "failureLimit": 2, "inconclusiveLimit": 3})
    st = measured(s, measurements)
    assert st.canary is not None and st.canary.step_index == 1 and st.pause_reason == pause_reason
    assert st.canary.inconclusives == len(measurements) - 1 - max(
        (i for i, m in enumerate(measurements) if m != "Inconclusive"), default=-1
    ), "inconclusive measurements since the last conclusive one"


@pytest.mark.parametrize("paused", [False, True])
def test_promote_overrides_missing_evidence(paused: bool) -> None:
    """A person decided: promote completes the held last step and promotes, with or without the pause."""
    s = spec(steps=SHORT, analysis={"interval": "30s", "inconclusiveLimit": 2 if paused else 3})
    st = measured(s, ("Inconclusive", "Inconclusive"))
    assert st.pause_reason == (PAUSE_INCONCLUSIVE if paused else None) and st.canary.step_index == 1
    d, st = step(s, st, 10, canary_ready_replicas=4, commands={"promote": "p1"})
    assert st.canary is None and st.stable.version == "v2" and st.pause_reason is None
    assert [e[1] for e in d.events] == ["StepCompleted", "Promoted"]


def test_promote_with_every_step_done_promotes_without_evidence() -> None:
    s = spec(steps=SHORT)
    _, st = step(s, measured(s, ()), 10, canary_ready_replicas=4)
    assert st.canary.step_index == 2, "held for evidence"
    d, st = step(s, st, 11, canary_ready_replicas=4, commands={"promote": "p1"})
    assert st.canary is None and [e[1] for e in d.events] == ["Promoted"]


def test_promote_on_an_earlier_step_does_not_waive_the_evidence_for_the_promotion() -> None:
    s = spec(steps=[{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}], replicas=4)
    _, st = step(s, canary_of_v2(s, 0), 1, canary_ready_replicas=4)
    assert st.pause_reason == PAUSE_STEP
    d, st = step(s, st, 2, canary_ready_replicas=4, commands={"promote": "p1"})
    assert st.canary is not None and st.canary.step_index == 3, "the last step completed by itself: evidence needed"
    _, st = step(s, st, 3, canary_ready_replicas=4, measurement="Successful")
    assert st.canary is None


def test_abort_rolls_back_and_marks_the_version() -> None:
    _, st = step(spec(), canary_of_v2(spec(), 10), 10, canary_ready_replicas=4)
    d, st = step(spec(), st, 20, commands={"abort": "a1"})
    assert st.canary is None and st.history[0].outcome == "Aborted" and st.failed_versions == ["v2"]
    assert st.degraded.reason == "Aborted" and d.wake_at is None


def test_pods_that_never_become_ready_roll_back_after_the_deadline() -> None:
    s = spec(progressDeadlineSeconds=60)
    _, st = step(s, stable_on_v1(), 0)
    d, st = step(s, st, 30)
    assert st.canary.weight == 20 and d.wake_at == at(60) == timing.progress_deadline(s, st.canary)
    d, st = step(s, st, 59.999)
    assert st.canary is not None
    for woken in (60, 61):  # woken at the deadline, or later
        d, after = step(s, st, woken)
        assert after.degraded.reason == "ProgressDeadlineExceeded" and after.stable.version == "v1"
    st = after
    assert st.degraded.message == "canary pods of v2 not ready within progressDeadlineSeconds=60"


def test_a_canary_its_servers_refused_as_not_reproducible_is_rolled_back_for_that_reason() -> None:
    s = spec(progressDeadlineSeconds=60)
    _, st = step(s, canary_of_v2(s, 0), 30)
    said = "refusing to serve s3://b/v2: ModelNotReproducible: ModelNotReproducible: row 0: predicted 1, trained 2"
    _, st = step(s, st, 30, canary_refusal=said)
    assert st.canary is not None, "before the deadline the pods may still come"
    _, after = step(s, st, 61, canary_refusal=said)
    assert after.degraded.reason == "ModelNotReproducible" and after.stable.version == "v1"
    assert after.degraded.message.endswith(f"not ready within progressDeadlineSeconds=60: {said}")
    _, after = step(s, st, 61, canary_refusal="refusing to serve s3://b/v2: StoreError: ObjectMissing")
    assert after.degraded.reason == "ProgressDeadlineExceeded", "only the replay's refusal names the version"


def test_spec_paused_freezes_the_rollout() -> None:
    steps = [{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 50}]
    s, paused = spec(steps=steps, replicas=4), spec(steps=steps, replicas=4, paused=True)
    _, st = step(s, canary_of_v2(s, 0), 0, canary_ready_replicas=4)
    _, st = step(s, st, 1, canary_ready_replicas=4, measurement="Successful")
    d, st_paused = step(paused, st, 5, canary_ready_replicas=4)
    assert d.wake_at == at(31), "frozen: the pause end does not wake it; measurements go on"
    d, st_paused = step(paused, st_paused, 1000, canary_ready_replicas=4)
    assert st_paused.canary.step_index == 1 and st_paused.pause_reason == PAUSE_SPEC
    d, st = step(s, st, 5, canary_ready_replicas=4)
    assert d.wake_at == at(10), "not frozen: the pause end comes first"
    d, st = step(s, st_paused, 1001, canary_ready_replicas=1)
    assert st.canary.step_index == 2 and st.pause_reason is None, "unfrozen: the pause, long over, completes"


def test_restart_resumes_the_same_step_from_status() -> None:
    s = spec()
    _, st = step(s, canary_of_v2(s, 0), 0, canary_ready_replicas=4)
    restored = stored(st)  # all a new operator process has is status
    d, st = step(s, restored, 45, canary_ready_replicas=4)
    assert st.canary.step_index == 1 and timing.pause_end(s, st.canary) == at(60)
    d, st = step(s, st, 60, canary_ready_replicas=4)
    assert st.canary.step_index == 2


def test_new_champion_mid_rollout_restarts_the_canary() -> None:
    _, st = step(spec(), canary_of_v2(spec(), 0), 0, canary_ready_replicas=4)
    v3 = Target("v3", "pvc://a/models/ns/m/v3", "3" * 64)
    d, st = step(spec(), st, 5, target=v3, canary_ready_replicas=4)
    assert st.canary.version == "v3" and st.canary.step_index == 0, "the ready pods are v2's, not v3's"
    assert st.canary.ready_replicas == 0 and d.wake_at == at(305)
    assert [e[1] for e in d.events[:2]] == ["CanaryReplaced", "CanaryStarted"]


def test_a_measurement_of_the_version_before_does_not_count_for_a_new_canary() -> None:
    _, st = step(spec(), canary_of_v2(spec(), 0), 0, canary_ready_replicas=4)
    v3 = Target("v3", "pvc://a/models/ns/m/v3", "3" * 64)
    _, st = step(spec(), st, 5, target=v3, measurement="Failed", measurement_message="v2 is bad")
    assert st.canary.version == "v3" and st.canary.failures == 0 and st.canary.last_analysis_at is None


def promoted_v2(s: ModelDeploymentSpec, seconds: float) -> ModelDeploymentStatus:
    """v2 canaried over v1 from 0 with its pods ready at once, promoted on a Successful measurement at `seconds`."""
    _, st = step(s, canary_of_v2(s, 0), 0, canary_ready_replicas=4)
    _, st = step(s, st, seconds, canary_ready_replicas=4, measurement="Successful")
    assert st.canary is None and st.stable.version == "v2", st
    return st


def test_post_promotion_guard_rolls_back_to_the_last_good_version() -> None:
    s = spec(steps=[{"setWeight": 50}], postPromotion={"window": "10m"})
    st = promoted_v2(s, 1)
    assert st.stable.version == "v2" and measurement_due(s, st, at(1))
    d, st = step(s, st, 30, measurement="Failed", measurement_message="errorRate 0.2 > 0.05")
    assert st.guard_failures == 1 and d.wake_at == at(60)
    d, st = step(s, st, 60, measurement="Failed", measurement_message="errorRate 0.3 > 0.05")
    assert st.stable.version == "v1" and st.failed_versions == ["v2"]
    assert st.degraded.reason == "PostPromotionAnalysisFailed" and d.events[-1][1] == "RolledBack"
    assert st.history[0].reason == "PostPromotionAnalysisFailed: v2 failed after promotion: errorRate 0.3 > 0.05"
    assert not measurement_due(s, st, at(61)), "nothing left to guard"
    assert d.wake_at is None


def test_a_canary_is_measured_only_once_one_of_its_pods_is_ready() -> None:
    s = spec()
    _, st = step(s, stable_on_v1(), 0)
    assert st.canary.version == "v2" and not measurement_due(s, st, at(1))
    st.canary.ready_replicas = 1  # what the controller records after applying the Deployments
    assert measurement_due(s, st, at(1))


def test_guard_window_ends() -> None:
    s = spec(steps=[{"setWeight": 50}], postPromotion={"window": "1m"})
    st = promoted_v2(s, 1)
    assert measurement_due(s, st, at(30)) and not measurement_due(s, st, at(61))
    _, st = step(s, st, 45, measurement="Successful")
    assert next_wake(s, st, at(45)) == at(61), "the window's end comes before the next measurement"
    assert next_wake(s, st, at(61)) is None, "window over: settled"


def test_a_disabled_guard_neither_measures_nor_wakes() -> None:
    s = spec(steps=[{"setWeight": 50}], postPromotion={"enabled": False})
    _, st = step(s, canary_of_v2(s, 0), 0, canary_ready_replicas=4)
    d, st = step(s, st, 1, canary_ready_replicas=4, measurement="Successful")
    assert st.last_good.version == "v1" and not measurement_due(s, st, at(2)) and d.wake_at is None


def test_without_a_target_the_canary_holds_and_says_why() -> None:
    """Its run deleted mid-rollout: the canary keeps its weight and step, is measured on, and the status
    says why it holds; the target coming back lifts the hold."""
    s = spec(replicas=4)
    _, st = step(s, stable_on_v1(), 0)
    _, st = step(s, st, 1, canary_ready_replicas=4)
    d, after = step(s, st, 1000, target=None, canary_ready_replicas=4)
    assert after.canary.step_index == st.canary.step_index and d.canary_weight == 20
    assert after.pause_reason == "TargetMissing" and d.events[-1][1] == "TargetMissing"
    assert d.wake_at is not None and d.wake_at <= at(1000), "still measured"
    d, again = step(s, after, 1001, target=None, canary_ready_replicas=4)
    assert d.events == [], "the hold is announced once"
    _, back = step(s, again, 1002, canary_ready_replicas=4)
    assert back.pause_reason is None


@pytest.mark.parametrize(
    ("obs", "reason"),
    [
        ({"commands": {"abort": "a1"}}, "Aborted"),
        ({"measurement": "Failed", "measurement_message": "accuracy 0.3 < 0.8"}, "AnalysisFailed"),
        ({"canary_ready_replicas": 0}, "ProgressDeadlineExceeded"),
    ],
)
def test_without_a_target_abort_failures_and_the_deadline_still_roll_back(obs, reason) -> None:
    s = spec(replicas=4, analysis={"interval": "30s", "failureLimit": 1})
    _, st = step(s, stable_on_v1(), 0)
    if reason != "ProgressDeadlineExceeded":
        _, st = step(s, st, 1, canary_ready_replicas=4)
    d, after = step(s, st, 1000, target=None, **obs)
    assert after.canary is None and after.stable.version == "v1" and after.failed_versions == ["v2"]
    assert after.degraded.reason == reason and d.events[-1][1] == "RolledBack"


def test_without_a_target_the_guard_still_rolls_back() -> None:
    s = spec(
        steps=[{"setWeight": 50}], postPromotion={"window": "10m"}, analysis={"interval": "30s", "failureLimit": 1}
    )
    st = promoted_v2(s, 1)
    d, st = step(s, st, 30, target=None, measurement="Failed", measurement_message="errorRate 0.3 > 0.05")
    assert st.stable.version == "v1" and st.failed_versions == ["v2"] and d.events[-1][1] == "RolledBack"


def test_without_a_target_or_a_stable_version_nothing_is_served() -> None:
    d, st = step(spec(), ModelDeploymentStatus(), 0, target=None)
    assert st.stable is None and d.wake_at is None and d.events == []


def test_a_retried_version_may_be_rolled_out_again() -> None:
    """`kubectl mlops retry` after a rollback (the controller observes it on the TrainingRun): the version
    leaves failed_versions and its next target starts a canary, never a promotion at once."""
    _, st = step(spec(), stable_on_v1(), 0)
    _, st = step(spec(), st, 20, commands={"abort": "a1"})
    _, held = step(spec(), st, 30)
    assert held.canary is None and held.failed_versions == ["v2"], "not retried by itself"
    _, again = step(spec(), held, 40, retried=frozenset({"v2"}))
    assert again.failed_versions == [] and again.canary.version == "v2" and again.stable.version == "v1"


def test_a_manual_gate_without_pods_to_measure_is_settled() -> None:
    d, st = step(spec(steps=[{"pause": {}}]), stable_on_v1(), 0)
    assert st.pause_reason == PAUSE_STEP and d.canary_weight == 0 and d.wake_at is None


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [
        (4, 0, (4, 0)),
        (4, 25, (3, 1)),
        (4, 50, (2, 2)),
        (4, 100, (0, 4)),
        (2, 20, (1, 1)),
        (1, 50, (1, 1)),
        (10, 5, (9, 1)),
        (10, 90, (1, 9)),
    ],
)
def test_replica_split(total: int, weight: int, split: tuple[int, int]) -> None:
    assert replica_split(total, weight) == split


def test_the_observed_status_is_not_changed() -> None:
    """The caller diffs its observed status against the result: next_rollout must not mutate its input."""
    _, st = step(spec(), stable_on_v1(), 0)
    before = st.model_copy(deep=True)
    next_rollout(
        spec(),
        st,
        Observation(
            now=at(5),
            target=V2,
            measurement="Failed",
            measurement_message="x",
            canary_ready_replicas=1,
            commands={"promote": "p"},
        ),
    )
    assert st == before


# ------------------------------------------------------------------------------ which metrics are judged

METRICS = [
    {"name": "errors", "template": "errorRate", "threshold": 0.05},
    {"name": "latency", "template": "latencyP95", "threshold": 0.25},
    {"name": "accuracy", "template": "accuracy", "threshold": 0.8},
]


def judged(s: ModelDeploymentSpec, status: ModelDeploymentStatus) -> list[str]:
    return [m.name for m in metrics_to_judge(s, status)]


def test_an_analysis_step_judges_exactly_the_metrics_it_names() -> None:
    steps = [{"setWeight": 20}, {"analysis": {"metrics": ["accuracy"]}}, {"analysis": {}}]
    s = spec(steps=steps, analysis={"interval": "30s", "metrics": METRICS})
    _, st = step(s, stable_on_v1(), 0)
    assert judged(s, st) == ["errors", "latency", "accuracy"], "outside an analysis step: all of them"
    _, st = step(s, st, 1, canary_ready_replicas=1)
    assert st.canary.step_index == 1 and judged(s, st) == ["accuracy"]
    _, st = step(s, st, 2, canary_ready_replicas=1, measurement="Successful")
    assert st.canary.step_index == 2 and judged(s, st) == ["errors", "latency", "accuracy"], "no names: all"
    _, st = step(s, st, 3, canary_ready_replicas=1, measurement="Successful")
    assert st.canary is None and judged(s, st) == ["errors", "latency", "accuracy"], "the guard judges all"


@pytest.mark.parametrize(
    ("names", "expected"),
    [([], ["error-rate", "latency-p95"]), (["latency-p95"], ["latency-p95"])],
)
def test_a_step_names_the_default_metrics_when_none_are_defined(names: list[str], expected: list[str]) -> None:
    s = spec(steps=[{"analysis": {"metrics": names}}])
    _, st = step(s, stable_on_v1(), 0)
    assert judged(s, st) == expected


# ------------------------------------------------------------------------------ a new input signature

S1, S2 = "a" * 64, "b" * 64


def test_a_canary_taking_other_inputs_gets_no_traffic_until_approved() -> None:
    """A new column upstream, a retrained version expecting 5 features: its canary holds at weight 0 with
    no pods (InputSchemaChanged) until a person's promote, which lifts the hold and completes no step."""
    s = spec(replicas=4)
    _, stable = step(s, ModelDeploymentStatus(), 0, target=Target("v1", "u1", "1" * 64, S1))
    d, st = step(s, stable, 10, target=Target("v2", "u2", "2" * 64, S2))
    assert st.canary.version == "v2" and st.canary.input_schema_changed and st.pause_reason == "InputSchemaChanged"
    assert d.canary_weight == 0 and st.canary.replicas == 0 and d.events[-1][1] == "InputSchemaChanged"
    d, st = step(s, st, 400, target=Target("v2", "u2", "2" * 64, S2))
    assert st.canary is not None and d.canary_weight == 0, "no pods wanted: no progress deadline to miss"
    d, st = step(s, st, 410, target=Target("v2", "u2", "2" * 64, S2), commands={"promote": "p1"})
    assert st.canary.input_schema_changed is None and st.pause_reason is None and st.canary.step_index == 0
    assert d.canary_weight == 20 and "InputSchemaApproved" in [e[1] for e in d.events]


def test_a_spec_may_allow_a_change_of_inputs_and_an_unknown_signature_is_not_compared() -> None:
    allowed = spec(replicas=4, strategy={"canary": {"steps": STEPS, "allowInputSchemaChange": True}})
    _, stable = step(allowed, ModelDeploymentStatus(), 0, target=Target("v1", "u1", "1" * 64, S1))
    d, st = step(allowed, stable, 10, target=Target("v2", "u2", "2" * 64, S2))
    assert st.pause_reason is None and d.canary_weight == 20
    _, old = step(spec(), ModelDeploymentStatus(), 0, target=Target("v1", "u1", "1" * 64))  # recorded before
    d, st = step(spec(), old, 10, target=Target("v2", "u2", "2" * 64, S2))
    assert st.canary.input_schema_changed is None and d.canary_weight == 20


def test_an_approval_names_the_version_whose_inputs_it_approves() -> None:
    """`kubectl mlops approve md/NAME` writes the held canary's version: it lifts that hold only."""
    s = spec(replicas=4)
    _, stable = step(s, ModelDeploymentStatus(), 0, target=Target("v1", "u1", "1" * 64, S1))
    _, st = step(s, stable, 10, target=Target("v2", "u2", "2" * 64, S2), inputs_approved_for="v0")
    assert st.pause_reason == "InputSchemaChanged", "an approval of another version does not carry over"
    d, st = step(s, st, 11, target=Target("v2", "u2", "2" * 64, S2), inputs_approved_for="v2")
    assert st.pause_reason is None and st.canary.input_schema_changed is None and d.canary_weight == 20


def test_a_version_rolled_back_elsewhere_is_canaried_never_served_first() -> None:
    """Pinned to a version another ModelDeployment rolled back: a new ModelDeployment serves nothing
    rather than it at 100 %; one with a stable version canaries it (its own analysis judges it)."""
    bad = Target("v2", "u2", "2" * 64, rolled_back="TrainingRun v2 was rolled back by ModelDeployment other")
    d, st = step(spec(), ModelDeploymentStatus(), 0, target=bad)
    assert st.stable is None and d.events == [] and d.wake_at is None
    _, st = step(spec(), stable_on_v1(), 10, target=bad)
    assert st.canary.version == "v2" and st.stable.version == "v1"


def test_a_version_served_on_other_libraries_says_so_in_its_own_condition() -> None:
    from mlops_operator.controllers.modeldeployment import deployment_conditions

    status = stable_on_v1()
    status.stable.replicas = status.stable.ready_replicas = 1
    conditions, phase = deployment_conditions(status, why="", generation=1, now="2026-01-01T00:00:00Z")
    found = {c.type: c for c in conditions}
    assert (found["EnvironmentDiffers"].status, found["EnvironmentDiffers"].reason) == ("False", "SameEnvironment")
    words = "v1: scikitLearn 1.5.2 (trained) != 1.7.2 (served) (its servers predicted its golden rows as in training)"
    conditions, phase = deployment_conditions(
        status, why="", generation=1, now="2026-01-01T00:00:01Z", other_libraries=words
    )
    found = {c.type: c for c in conditions}
    assert (found["EnvironmentDiffers"].status, found["EnvironmentDiffers"].message) == ("True", words)
    assert found["Ready"].status == "True" and phase == "Healthy", "served the same: it serves, and says why"
