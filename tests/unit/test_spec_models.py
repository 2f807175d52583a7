"""Specs parse with the defaults users see in the CRD; what OpenAPI cannot check is checked here; statuses
round-trip their models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_operator.api.dataset import DatasetSpec, DatasetStatus
from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.api.trainingrun import TrainingRunSpec, TrainingRunStatus
from mlops_operator.controllers.common import describe_validation_error, parse_spec, status_patch


def test_dataset_defaults() -> None:
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    assert (spec.format, spec.target, spec.refresh_interval, spec.history_limit) == ("csv", "target", "10m", 10)


def test_modeldeployment_defaults_give_a_canary_with_increasing_weights() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}})
    weights = [s.set_weight for s in spec.strategy.canary.steps if s.set_weight is not None]
    assert weights == sorted(weights) and weights
    assert spec.traffic_routing.mode == "Replicas"


@pytest.mark.parametrize(
    ("estimator", "metric", "ok"),
    [
        ("sklearn.linear_model.LogisticRegression", "accuracy", True),
        ("sklearn.linear_model.LogisticRegression", "rmse", False),
        ("sklearn.ensemble.RandomForestRegressor", "r2", True),
        ("sklearn.ensemble.RandomForestRegressor", "f1_macro", False),
    ],
)
def test_promotion_metrics_must_fit_the_estimators_task(estimator: str, metric: str, ok: bool) -> None:
    body = {
        "spec": {
            "datasetRef": {"name": "d"},
            "model": {"name": "m", "estimator": estimator},
            "promotion": {"gates": [{"metric": metric, "min": 0.5}]},
        }
    }
    spec, error = parse_spec(TrainingRunSpec, body)
    assert (spec is not None) == ok
    if not ok:
        assert error.startswith("spec.promotion.gates[0].metric:"), error
        assert metric in error


def test_step_analysis_must_name_defined_metrics() -> None:
    body = {
        "spec": {
            "model": {"name": "m"},
            "analysis": {"metrics": [{"name": "errors", "template": "errorRate", "threshold": 0.05}]},
            "strategy": {"canary": {"steps": [{"setWeight": 10}, {"analysis": {"metrics": ["latency"]}}]}},
        }
    }
    spec, error = parse_spec(ModelDeploymentSpec, body)
    assert spec is None
    assert "strategy.canary.steps[1].analysis.metrics" in error and "latency" in error


def test_step_analysis_without_defined_metrics_may_name_only_the_defaults() -> None:
    steps = {"canary": {"steps": [{"setWeight": 10}, {"analysis": {"metrics": ["accuracy"]}}]}}
    spec, error = parse_spec(ModelDeploymentSpec, {"spec": {"model": {"name": "m"}, "strategy": steps}})
    assert spec is None
    assert error == (
        "spec.strategy.canary.steps[1].analysis.metrics names ['accuracy'], but spec.analysis.metrics is empty, "
        "so only the defaults ['error-rate', 'latency-p95'] exist"
    )
    steps["canary"]["steps"][1]["analysis"]["metrics"] = ["latency-p95"]
    assert parse_spec(ModelDeploymentSpec, {"spec": {"model": {"name": "m"}, "strategy": steps}})[0] is not None


HOSTNAME = {"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}


@pytest.mark.parametrize(
    ("server", "error"),
    [
        ({"tolerations": [{"operator": "Exists", "value": "gpu"}]},
         "spec.server.tolerations.0: value must be empty when operator is Exists"),
        ({"tolerations": [{"value": "gpu"}]}, "spec.server.tolerations.0: a toleration without a key tolerates "
         "every taint: its operator must be Exists"),
        ({"tolerations": [{"key": "dedicated", "effect": "NoSchedule", "tolerationSeconds": 30}]},
         "spec.server.tolerations.0: tolerationSeconds applies only to effect NoExecute"),
        ({"tolerations": [{"key": "dedicated", "tolerationSeconds": 30}]},
         "spec.server.tolerations.0: tolerationSeconds applies only to effect NoExecute"),
        ({"tolerations": [{"key": "dedicated", "operator": "In"}]}, "spec.server.tolerations.0.operator: Input "
         "should be 'Exists' or 'Equal'"),
        ({"tolerations": [{"key": "n" * 64}]}, "spec.server.tolerations.0.key: 'nnnn"),
        ({"tolerations": [{"key": "a", "effect": "NoExecute", "tolerationSeconds": -1}]},
         "spec.server.tolerations.0.tolerationSeconds: Input should be greater than or equal to 0"),
        ({"nodeSelector": {"-arch": "amd64"}}, "spec.server.nodeSelector: '-arch' is not a label key"),
        ({"nodeSelector": {"kubernetes.io/arch": "amd 64"}}, "spec.server.nodeSelector.kubernetes.io/arch: String "
         "should match pattern"),
        ({"topologySpreadConstraints": [{**HOSTNAME, "maxSkew": 0}]},
         "spec.server.topologySpreadConstraints.0.maxSkew: Input should be greater than or equal to 1"),
        ({"topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname"}]},
         "spec.server.topologySpreadConstraints.0.whenUnsatisfiable: Field required"),
        ({"topologySpreadConstraints": [{**HOSTNAME, "minDomains": 2}]},
         "spec.server.topologySpreadConstraints.0: minDomains applies only to whenUnsatisfiable DoNotSchedule"),
        ({"topologySpreadConstraints": [{**HOSTNAME, "nodeTaintsPolicy": "Always"}]},
         "spec.server.topologySpreadConstraints.0.nodeTaintsPolicy: Input should be 'Honor' or 'Ignore'"),
        ({"topologySpreadConstraints": [{**HOSTNAME, "labelSelector": {"matchLabels": {"app": "x"}}}]},
         "spec.server.topologySpreadConstraints.0.labelSelector: Extra inputs are not permitted"),
        ({"topologySpreadConstraints": [HOSTNAME, {**HOSTNAME, "maxSkew": 2}]},
         "spec.server.topologySpreadConstraints: more than one constraint for kubernetes.io/hostname "
         "(ScheduleAnyway)"),
    ],
)  # fmt: skip
def test_scheduling_is_refused_as_the_api_server_would_refuse_the_pod(server: dict, error: str) -> None:
    spec, message = parse_spec(ModelDeploymentSpec, {"spec": {"model": {"name": "m"}, "server": server}})
    assert spec is None and message.startswith(error), message


def test_scheduling_kubernetes_accepts_is_accepted() -> None:
    server = {
        "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": ""},
        "tolerations": [{"operator": "Exists"}, {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 0}],
        "topologySpreadConstraints": [HOSTNAME, {**HOSTNAME, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}],
    }  # fmt: skip
    spec, message = parse_spec(ModelDeploymentSpec, {"spec": {"model": {"name": "m"}, "server": server}})
    assert spec is not None, message
    assert [t.operator for t in spec.server.tolerations] == ["Exists", "Equal", "Exists"]


def test_validation_errors_name_the_field_path() -> None:
    with pytest.raises(ValidationError) as caught:
        DatasetSpec.model_validate({"source": {"builtin": {"name": "mnist"}}, "historyLimit": 0})
    message = describe_validation_error(caught.value)
    assert "spec.source.builtin.name" in message
    assert "spec.historyLimit" in message


def test_status_patch_sets_changes_and_removes_dropped_keys_but_not_kopfs() -> None:
    old = {"phase": "Pending", "rows": 3, "kopf": {"progress": {}}}
    new = {"phase": "Ready", "version": "sha256:" + "0" * 64}
    assert status_patch(old, new) == {"phase": "Ready", "version": "sha256:" + "0" * 64, "rows": None}


# Status: what the controllers write parses into the status models and dumps back to the same dict, so a
# reconcile that changes nothing patches nothing, and no key the controllers write is lost on the way.

CONDITION = {"type": "Ready", "status": "True", "reason": "R", "message": "", "lastTransitionTime": "t",
             "observedGeneration": 2}  # fmt: skip
VERSION = "sha256:" + "a" * 64
DATASET_STATUS = {
    "observedGeneration": 2, "phase": "Ready", "conditions": [CONDITION], "version": VERSION, "rows": 150,
    "columns": ["a", "b"], "snapshotUri": "pvc://s/data.csv", "profileRef": "pvc://s/profile.json",
    "lastCheckedAt": "t", "history": [{"version": VERSION, "rows": 150, "snapshotUri": "pvc://s", "createdAt": "t"}],
    "lastCheck": {"succeeded": True, "reason": "ValidationSucceeded", "message": "m", "at": "t", "generation": 2},
    "checks": 3, "activeCheck": "d-check-3", "checkedGeneration": 2,
}  # fmt: skip
TRAININGRUN_STATUS = {
    "observedGeneration": 1, "phase": "Succeeded", "conditions": [CONDITION], "reason": "JobSucceeded",
    "message": "m", "dataset": {"name": "d", "version": VERSION, "snapshotUri": "pvc://s", "target": "y"},
    "jobName": "r-train", "attempts": 2, "startedAt": "t", "completedAt": "t", "durationSeconds": 4.2,
    "metrics": {"accuracy": 0.9, "f1_macro": 1}, "primaryMetric": "accuracy", "primaryValue": "0.9000",
    "model": {"uri": "pvc://m", "sha256": "f" * 64, "version": "r", "calibrated": True},
    "promotion": {"decision": "Superseded", "reason": "Superseded", "message": "m", "champion": "old",
                  "metric": "accuracy", "value": 0.9, "championValue": 0.8, "decidedAt": "t"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "written"),
    [
        (DatasetStatus, DATASET_STATUS),
        (TrainingRunStatus, TRAININGRUN_STATUS),
        (TrainingRunStatus, {"phase": "Failed", "conditions": [], "attempts": 0, "metrics": {}}),
        (DatasetStatus, {"phase": "Pending", "conditions": [], "columns": [], "history": [], "checks": 0}),
    ],
)
def test_statuses_round_trip_their_models(model, written) -> None:
    assert model.model_validate(written).model_dump(mode="json", by_alias=True, exclude_none=True) == written


def test_kopfs_key_and_unknown_keys_stay_out_of_the_status_models() -> None:
    parsed = DatasetStatus.model_validate({**DATASET_STATUS, "kopf": {"progress": {}}})
    assert parsed.model_dump(mode="json", by_alias=True, exclude_none=True) == DATASET_STATUS


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [(DatasetStatus, "phase", "Done"), (TrainingRunStatus, "phase", "Done"),
     (TrainingRunStatus, "promotion", {"decision": "Maybe", "reason": "R"})],
)  # fmt: skip
def test_phases_and_decisions_are_the_enums_values(model, field, value) -> None:
    with pytest.raises(ValidationError):
        model.model_validate({field: value})
