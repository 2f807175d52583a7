"""Autoscaling: the split of any total, the HorizontalPodAutoscaler the operator owns, and a rollout whose
total moves under it (steps neither restart nor skip, a scale-out gets its own progress deadline)."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from mlops_operator.resources.autoscaling import (
    DEFAULT_BEHAVIOR,
    REQUEST_RATE_METRIC,
    autoscaler_summary,
    desired_autoscaler,
    pod_selector,
)
from mlops_operator.rollout import timing
from mlops_operator.rollout.canary import Observation, Target, next_rollout, replica_split, variant_replicas

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
V1 = Target("v1", "s3://b/models/ns/m/v1", "1" * 64)
V2 = Target("v2", "s3://b/models/ns/m/v2", "2" * 64)


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [
        (1, 0, (1, 0)),
        (1, 25, (1, 1)),
        (1, 50, (1, 1)),
        (1, 100, (0, 1)),
        (2, 0, (2, 0)),
        (2, 25, (1, 1)),
        (2, 50, (1, 1)),
        (2, 75, (1, 1)),
        (2, 100, (0, 2)),
        (3, 0, (3, 0)),
        (3, 10, (2, 1)),
        (3, 25, (2, 1)),
        (3, 50, (1, 2)),
        (3, 75, (1, 2)),
        (3, 100, (0, 3)),
        (8, 25, (6, 2)),
        (12, 25, (9, 3)),
        (100, 1, (99, 1)),
        (100, 99, (1, 99)),
    ],
)
def test_the_split_of_small_totals(total: int, weight: int, split: tuple[int, int]) -> None:
    assert replica_split(total, weight) == split


@pytest.mark.parametrize("total", range(1, 101))
def test_any_total_splits_within_one_replica_of_any_weight(total: int) -> None:
    for weight in range(101):
        stable, canary = replica_split(total, weight)
        if weight == 0:
            assert (stable, canary) == (total, 0)
        elif weight == 100:
            assert (stable, canary) == (0, total)
        else:  # both versions serve; one surge pod only where one pod cannot be split (total 1)
            assert stable >= 1 and canary >= 1 and stable + canary == max(total, 2)
            assert abs(canary - total * weight / 100) <= 1, (total, weight, canary)


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 12])
@pytest.mark.parametrize("weight", [0, 25, 50, 100])
def test_with_the_gateway_api_both_deployments_follow_the_total(total: int, weight: int) -> None:
    stable, canary = variant_replicas(total, weight, gateway=True)
    assert stable == total and canary == replica_split(total, weight)[1]
    assert variant_replicas(total, weight, gateway=False) == replica_split(total, weight)


def md_spec(**autoscaling) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "iris"},
            "autoscaling": {"maxReplicas": 6, **autoscaling},
            "server": {"resources": {"requests": {"cpu": "100m"}}},
        }
    )


def test_the_autoscaler_targets_the_modeldeployment_on_request_rate() -> None:
    hpa = desired_autoscaler(md="iris", uid="u-1", autoscaling=md_spec(requestsPerSecond=2.5).autoscaling)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"]["name"] == "iris"
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert hpa["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlops-operator"  # what our watch selects
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "iris",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 6)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": REQUEST_RATE_METRIC},
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        }
    ]
    assert hpa["spec"]["behavior"] == DEFAULT_BEHAVIOR


def test_the_autoscaler_on_cpu_and_a_behaviour_override() -> None:
    autoscaling = md_spec(
        cpuUtilization=70, minReplicas=2, behavior={"scaleDown": {"stabilizationWindowSeconds": 5}}
    ).autoscaling
    hpa = desired_autoscaler(md="iris", uid="u-1", autoscaling=autoscaling)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"] == DEFAULT_BEHAVIOR["scaleUp"]  # untouched direction: the defaults
    assert behavior["scaleDown"] == {**DEFAULT_BEHAVIOR["scaleDown"], "stabilizationWindowSeconds": 5}
    # scale out fast, in stabilised: the defaults' shape
    assert DEFAULT_BEHAVIOR["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert DEFAULT_BEHAVIOR["scaleDown"]["stabilizationWindowSeconds"] >= 60


def test_the_pod_selector_is_the_services_both_versions() -> None:
    assert pod_selector("iris") == "app.kubernetes.io/name=mlops-server,mlops.dev/deployment=iris"


def test_the_autoscaler_in_words() -> None:
    hpa = {
        "metadata": {"name": "iris"},
        "spec": {"minReplicas": 1, "maxReplicas": 6},
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 4,
            "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"},
                {
                    "type": "ScalingActive",
                    "status": "False",
                    "reason": "FailedGetPodsMetric",
                    "message": "unable to get metric mlops_requests_per_second",
                },
            ],
        },
    }
    assert autoscaler_summary(hpa) == (
        "HorizontalPodAutoscaler iris: 2 replicas, wants 4 (1 to 6); ScalingActive=False (FailedGetPodsMetric): "
        "unable to get metric mlops_requests_per_second"
    )
    assert autoscaler_summary(None) is None


# --------------------------------------------------------------------------- a rollout while scaling

STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}]


def rollout_spec(replicas: int) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {"model": {"name": "m"}, "replicas": replicas, "strategy": {"canary": {"steps": STEPS}}}
    )


def look(replicas: int, status: ModelDeploymentStatus, seconds: float, ready: int, target: Target = V2):
    stored = ModelDeploymentStatus.model_validate(status.model_dump(by_alias=True, mode="json"))
    obs = Observation(now=T0 + dt.timedelta(seconds=seconds), target=target, canary_ready_replicas=ready)
    return next_rollout(rollout_spec(replicas), stored, obs)


def test_scaling_during_a_pause_keeps_the_step_and_gives_the_new_pods_their_own_deadline() -> None:
    st = look(4, ModelDeploymentStatus(), 0, 0, target=V1).status
    st = look(4, st, 1, 0).status  # the canary begins
    st = look(4, st, 2, 1).status  # its one pod of four is ready: the manual pause
    assert (st.canary.step_index, st.canary.weight, st.canary.replicas) == (1, 25, 1)
    # ten minutes later the autoscaler doubles the total: the canary needs 2 pods, 1 is ready
    decision = look(8, st, 600, 1)
    st = decision.status
    assert st.canary is not None, "a scale-out long after the step began is no missed deadline"
    assert (st.canary.step_index, st.canary.weight, st.canary.replicas) == (1, 25, 2)
    assert decision.canary_weight == 25 and replica_split(8, decision.canary_weight) == (6, 2)
    deadline = timing.progress_deadline(rollout_spec(8), st.canary)
    assert deadline == T0 + dt.timedelta(seconds=600 + 300)
    assert look(8, st, 650, 2).status.canary.step_index == 1  # its pods ready: still the same step
    late = look(8, st, 901, 1).status
    assert late.canary is None and late.degraded.reason == "ProgressDeadlineExceeded"


def test_pods_lost_long_after_the_step_began_get_their_own_deadline() -> None:
    """A node goes away during a long pause: its canary pods are recreated elsewhere; losing them is no
    missed deadline, but pods that do not come back within it roll the canary back."""
    st = look(4, ModelDeploymentStatus(), 0, 0, target=V1).status
    st = look(4, st, 1, 0).status
    st = look(4, st, 2, 1).status  # the canary's one pod is ready: the manual pause
    st = look(4, st, 600, 0).status  # ten minutes later its node goes
    assert st.canary is not None and st.canary.step_index == 1, "losing pods is no missed deadline"
    assert timing.progress_deadline(rollout_spec(4), st.canary) == T0 + dt.timedelta(seconds=600 + 300)
    assert look(4, st, 640, 0).status.canary.scaled_at == st.canary.scaled_at, "still lost: the same deadline"
    back = look(4, st, 640, 1).status
    assert back.canary.step_index == 1 and back.canary.ready_replicas == 1
    late = look(4, st, 901, 0).status
    assert late.canary is None and late.degraded.reason == "ProgressDeadlineExceeded"


def test_scaling_in_during_a_rollout_needs_no_new_deadline() -> None:
    st = look(8, ModelDeploymentStatus(), 0, 0, target=V1).status
    st = look(8, st, 1, 0).status
    st = look(8, st, 2, 2).status
    scaled_at = st.canary.scaled_at
    st = look(4, st, 100, 2).status
    assert (st.canary.step_index, st.canary.replicas, st.canary.scaled_at) == (1, 1, scaled_at)


def test_a_rollback_while_scaled_out_serves_the_stable_version_at_the_current_total() -> None:
    st = look(4, ModelDeploymentStatus(), 0, 0, target=V1).status
    st = look(4, st, 1, 0).status
    st = look(4, st, 2, 1).status
    obs = Observation(now=T0 + dt.timedelta(seconds=30), target=V2, canary_ready_replicas=1, commands={"abort": "t1"})
    decision = next_rollout(rollout_spec(8), st, obs)
    assert decision.status.canary is None and decision.canary_weight == 0
    assert replica_split(8, decision.canary_weight) == (8, 0)


def test_the_share_achieved_at_one_total_is_not_the_weight_at_the_next() -> None:
    """status.canary.weight is the share achieved (1 canary pod beside 1 stable one is 50 %); the split
    of the next total comes from the steps' 25 %, or the share would ratchet up as the total grows."""
    st = look(1, ModelDeploymentStatus(), 0, 0, target=V1).status
    st = look(1, st, 1, 0).status
    st = look(1, st, 2, 1).status
    assert st.canary.step_index == 1
    for total, split in ((1, (1, 1)), (3, (2, 1)), (4, (3, 1)), (8, (6, 2))):
        stable, canary = replica_split(total, 25)
        st.canary.weight = round(100 * canary / (stable + canary))  # what apply_serving records
        decision = look(total, st, 10 + total, canary)
        assert decision.canary_weight == 25 and replica_split(total, decision.canary_weight) == split
        assert decision.status.canary.replicas == split[1]
        st = decision.status
