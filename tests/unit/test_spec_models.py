"""Specs parse with the defaults users see in the CRD; what OpenAPI cannot check is checked here; statuses
round-trip their models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_operator.api import modeldeployment as md_api
from mlops_operator.api.dataset import DatasetSpec, DatasetStatus
from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.api.trainingrun import TrainingRunSpec, TrainingRunStatus
from mlops_operator.controllers.contract import describe_validation_error, parse_spec, status_patch
from mlops_operator.rollout import analysis


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


# Specs that name what does not exist, hold an expression that cannot be evaluated, or set an option the
# chosen variant ignores: each refused with the field it concerns (the CRD refuses most of them too, see
# tests/unit/test_crds.py; the rest only the model can judge).
LOGREG = {"name": "m", "estimator": "sklearn.linear_model.LogisticRegression"}
RUN = {"datasetRef": {"name": "d"}, "model": LOGREG}
FILE = {"url": {"url": "https://e.org/x.csv"}}


def _metric(**fields) -> dict:
    return {"model": {"name": "m"}, "analysis": {"metrics": [{"name": "x", **fields}]}}


def _retraining(*, estimator: str = LOGREG["estimator"], triggers: dict | None = None, **template) -> dict:
    spec = {**RUN, "model": {"name": "m", "estimator": estimator}, **template}
    return {"model": {"name": "m"}, "retraining": {"template": spec, "triggers": triggers or {"schedule": "0 3 * * 1"}}}


INVALID_SPECS = [
    # options that do not apply to the variant chosen
    (
        "format-on-builtin",
        DatasetSpec,
        {"source": {"builtin": {"name": "iris"}}, "format": "parquet"},
        "spec.format: format applies only to url, configMap, pvc and s3 sources",
    ),
    (
        "format-on-capture",
        DatasetSpec,
        {"source": {"capture": {"base": "b", "modelDeployment": "m"}}, "format": "auto"},
        "spec.format: format applies only to url, configMap, pvc and s3 sources",
    ),
    (
        "refresh-on-builtin",
        DatasetSpec,
        {"source": {"builtin": {"name": "iris"}}, "refreshInterval": "1h"},
        "spec.refreshInterval: refreshInterval does not apply to a builtin source",
    ),
    (
        "min-samples-on-error-rate",
        ModelDeploymentSpec,
        _metric(template="errorRate", threshold=0.05, minSamples=50),
        "spec.analysis.metrics.0: minSamples applies only to the accuracy, precision, recall, f1, estimatedAccuracy, "
        "mae, rmse templates",
    ),
    (
        "min-samples-on-query",
        ModelDeploymentSpec,
        _metric(query="up", successCondition="result > 0", minSamples=5),
        "spec.analysis.metrics.0: minSamples applies only to",
    ),
    (
        "class-on-accuracy",
        ModelDeploymentSpec,
        _metric(template="accuracy", threshold=0.8, **{"class": "1"}),
        "spec.analysis.metrics.0: class applies only to the precision, recall and f1 templates",
    ),
    (
        "threshold-on-query",
        ModelDeploymentSpec,
        _metric(query="up", successCondition="result > 0", threshold=1),
        "spec.analysis.metrics.0: threshold applies only to a template",
    ),
    (
        "condition-on-template",
        ModelDeploymentSpec,
        _metric(template="errorRate", threshold=0.1, successCondition="result > 0"),
        "spec.analysis.metrics.0: a query needs a successCondition",
    ),
    (
        "gateway-route-in-replicas-mode",
        ModelDeploymentSpec,
        {"model": {"name": "m"}, "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}}},
        "spec.trafficRouting: gatewayAPI must be set exactly when mode is GatewayAPI",
    ),
    (
        "gateway-mode-without-route",
        ModelDeploymentSpec,
        {"model": {"name": "m"}, "trafficRouting": {"mode": "GatewayAPI"}},
        "spec.trafficRouting: gatewayAPI must be set exactly when mode is GatewayAPI",
    ),
    (
        "guard-window-while-disabled",
        ModelDeploymentSpec,
        {"model": {"name": "m"}, "postPromotion": {"enabled": False, "window": "1h"}},
        "spec.postPromotion: window applies only when the guard is enabled",
    ),
    (
        "allowed-values-on-float",
        DatasetSpec,
        {"source": FILE, "schema": {"columns": [{"name": "a", "type": "float", "allowedValues": ["1"]}]}},
        "spec.schema.columns.0: allowedValues applies only to category or string columns",
    ),
    (
        "min-on-string",
        DatasetSpec,
        {"source": FILE, "schema": {"columns": [{"name": "a", "type": "string", "min": 0}]}},
        "spec.schema.columns.0: min and max apply only to float or integer columns",
    ),
    (
        "two-sources",
        DatasetSpec,
        {"source": {**FILE, "builtin": {"name": "iris"}}},
        "spec.source: exactly one of builtin, url, configMap, pvc, s3 or capture must be set",
    ),
    (
        "model-name-and-run",
        ModelDeploymentSpec,
        {"model": {"name": "m", "trainingRun": "r"}},
        "spec.model: set exactly one of name or trainingRun",
    ),
    (
        "step-with-two-actions",
        ModelDeploymentSpec,
        {"model": {"name": "m"}, "strategy": {"canary": {"steps": [{"setWeight": 10, "pause": {}}]}}},
        "spec.strategy.canary.steps.0: a step sets exactly one of setWeight, pause, analysis",
    ),
    (
        "cpu-target-without-request",
        ModelDeploymentSpec,
        {"model": {"name": "m"}, "autoscaling": {"maxReplicas": 3, "cpuUtilization": 80}},
        "spec.autoscaling.cpuUtilization is a percent of the CPU request",
    ),
    # expressions that cannot be evaluated
    (
        "condition-letter",
        ModelDeploymentSpec,
        _metric(query="up", successCondition="result < e"),
        "spec.analysis.metrics.0.successCondition: String should match pattern",
    ),
    (
        "condition-two-points",
        ModelDeploymentSpec,
        _metric(query="up", successCondition="result >= 1.2.3"),
        "spec.analysis.metrics.0.successCondition: String should match pattern",
    ),
    (
        "condition-signs-only",
        ModelDeploymentSpec,
        _metric(query="up", successCondition="result < --"),
        "spec.analysis.metrics.0.successCondition: String should match pattern",
    ),
    (
        "condition-infinite",
        ModelDeploymentSpec,
        _metric(query="up", successCondition="result < 1e999"),
        "spec.analysis.metrics.0.successCondition: 1e999 is not a finite number",
    ),
    (
        "query-unknown-placeholder",
        ModelDeploymentSpec,
        _metric(query='up{pod="{{pod}}"}', successCondition="result > 0"),
        "spec.analysis.metrics.0.query: the only placeholders are {{version}} and {{namespace}}",
    ),
    (
        "query-blank",
        ModelDeploymentSpec,
        _metric(query="  ", successCondition="result > 0"),
        "spec.analysis.metrics.0.query: String should match pattern",
    ),
    (
        "threshold-as-percent",
        ModelDeploymentSpec,
        _metric(template="errorRate", threshold=5),
        "spec.analysis.metrics.0: the threshold of errorRate, accuracy, precision, recall, f1, estimatedAccuracy is a "
        "fraction from 0 to 1",
    ),
    (
        "accuracy-above-one",
        ModelDeploymentSpec,
        _metric(template="accuracy", threshold=1.5),
        "spec.analysis.metrics.0: the threshold of errorRate",
    ),
    (
        "threshold-negative",
        ModelDeploymentSpec,
        _metric(template="latencyP95", threshold=-1),
        "spec.analysis.metrics.0: threshold must not be negative",
    ),
    (
        "quality-bound-as-percent",
        ModelDeploymentSpec,
        _retraining(triggers={"quality": {"template": "f1", "bound": 85}}),
        "spec.retraining.triggers.quality: the bound of accuracy, precision, recall, f1, estimatedAccuracy is a "
        "fraction from 0 to 1",
    ),
    (
        "quality-bound-negative",
        ModelDeploymentSpec,
        _retraining(estimator="sklearn.linear_model.Ridge", triggers={"quality": {"template": "mae", "bound": -1}}),
        "spec.retraining.triggers.quality: bound must not be negative",
    ),
    # references between fields that name what cannot exist
    (
        "gate-not-evaluated",
        TrainingRunSpec,
        {**RUN, "evaluation": {"metrics": ["accuracy"]}, "promotion": {"gates": [{"metric": "f1_macro", "min": 0.5}]}},
        "spec.promotion.gates[0].metric: f1_macro is not computed: evaluation.metrics lists only ['accuracy']",
    ),
    (
        "beat-champion-not-evaluated",
        TrainingRunSpec,
        {**RUN, "evaluation": {"metrics": ["accuracy"]}, "promotion": {"beatChampion": {"metric": "roc_auc"}}},
        "spec.promotion.beatChampion.metric: roc_auc is not computed",
    ),
    (
        "roc-auc-without-probabilities",
        TrainingRunSpec,
        {
            **RUN,
            "model": {"name": "m", "estimator": "sklearn.svm.SVC"},
            "promotion": {"beatChampion": {"metric": "roc_auc"}},
        },
        "spec.promotion.beatChampion.metric: roc_auc is computed from probabilities, which sklearn.svm.SVC gives only "
        "with params.probability: true",
    ),
    (
        "roc-auc-evaluated-without-probabilities",
        TrainingRunSpec,
        {
            **RUN,
            "model": {"name": "m", "estimator": "sklearn.svm.SVC", "params": {"probability": False}},
            "evaluation": {"metrics": ["roc_auc"]},
        },
        "spec.evaluation.metrics[0]: roc_auc is computed from probabilities",
    ),
    (
        "evaluation-wrong-task",
        TrainingRunSpec,
        {**RUN, "model": {"name": "m", "estimator": "sklearn.svm.SVR"}, "evaluation": {"metrics": ["accuracy"]}},
        "spec.evaluation.metrics[0]: accuracy is not a regression metric",
    ),
    (
        "retraining-template-gate-wrong-task",
        ModelDeploymentSpec,
        _retraining(promotion={"gates": [{"metric": "mae", "max": 1}]}),
        "spec.retraining.template: promotion.gates[0].metric: mae is not a classification metric",
    ),
    (
        "retraining-template-gate-not-evaluated",
        ModelDeploymentSpec,
        _retraining(evaluation={"metrics": ["f1_macro"]}, promotion={"beatChampion": {"metric": "accuracy"}}),
        "spec.retraining.template: promotion.beatChampion.metric: accuracy is not computed",
    ),
    (
        "retraining-template-pins-version",
        ModelDeploymentSpec,
        _retraining(datasetRef={"name": "d", "version": "sha256:" + "0" * 64}),
        "spec.retraining: a retraining template must not pin datasetRef.version",
    ),
    (
        "quality-trigger-wrong-task",
        ModelDeploymentSpec,
        _retraining(
            estimator="sklearn.linear_model.Ridge", triggers={"quality": {"template": "accuracy", "bound": 0.8}}
        ),
        "spec.retraining: triggers.quality.template must measure the template's estimator",
    ),
    (
        "analysis-template-wrong-task",
        ModelDeploymentSpec,
        {**_retraining(), "analysis": {"metrics": [{"name": "err", "template": "mae", "threshold": 0.5}]}},
        "spec.analysis.metrics[0].template: mae cannot measure sklearn.linear_model.LogisticRegression",
    ),
    (
        "retraining-of-another-model",
        ModelDeploymentSpec,
        {**_retraining(), "model": {"name": "other"}},
        "spec.retraining needs model.name (the champion this ModelDeployment follows)",
    ),
    (
        "retraining-without-trigger",
        ModelDeploymentSpec,
        _retraining(triggers={"newDatasetVersion": False}),
        "spec.retraining: retraining needs at least one trigger",
    ),
]
VALID_SPECS = [
    ("format-on-url", DatasetSpec, {"source": FILE, "format": "parquet", "refreshInterval": "1h"}),
    (
        "guard-disabled-with-the-default-window",
        ModelDeploymentSpec,
        {"model": {"name": "m"}, "postPromotion": {"enabled": False, "window": "10m"}},
    ),
    (
        "the-defaults-written-out-on-builtin",
        DatasetSpec,
        {"source": {"builtin": {"name": "iris"}}, "format": "csv", "refreshInterval": "10m"},
    ),
    (
        "refresh-on-capture",
        DatasetSpec,
        {"source": {"capture": {"base": "b", "modelDeployment": "m"}}, "refreshInterval": "1h"},
    ),
    (
        "conditions-as-written",
        ModelDeploymentSpec,
        {
            "model": {"name": "m"},
            "analysis": {
                "metrics": [
                    {
                        "name": "a",
                        "query": 'up{namespace="{{namespace}}",version="{{version}}"}',
                        "successCondition": "result>=1",
                    },
                    {"name": "b", "query": "up", "successCondition": "result <= 1e-05"},
                    {"name": "c", "query": "up", "successCondition": "result != -.5"},
                    {"name": "d", "query": "up", "successCondition": "result == 3."},
                ]
            },
        },
    ),
    (
        "samples-and-bounds-that-apply",
        ModelDeploymentSpec,
        {
            "model": {"name": "m"},
            "analysis": {
                "metrics": [
                    {"name": "a", "template": "f1", "threshold": 1, "minSamples": 50, "class": "1"},
                    {"name": "b", "template": "latencyP95", "threshold": 2.5},
                    {"name": "c", "template": "drift", "threshold": 0},
                ]
            },
        },
    ),
    (
        "roc-auc-with-probabilities",
        TrainingRunSpec,
        {
            **RUN,
            "model": {"name": "m", "estimator": "sklearn.svm.SVC", "params": {"probability": True}},
            "promotion": {"gates": [{"metric": "roc_auc", "min": 0.9}]},
        },
    ),
    (
        "gates-on-the-evaluated",
        TrainingRunSpec,
        {
            **RUN,
            "evaluation": {"metrics": ["accuracy", "f1_macro"]},
            "promotion": {"gates": [{"metric": "f1_macro", "min": 0.5}], "beatChampion": {"metric": "accuracy"}},
        },
    ),
    (
        "regressor-retraining-on-its-metrics",
        ModelDeploymentSpec,
        {
            **_retraining(
                estimator="sklearn.linear_model.Ridge",
                triggers={"quality": {"template": "rmse", "bound": 12.5}},
                promotion={"beatChampion": {"metric": "r2"}},
            ),
            "analysis": {"metrics": [{"name": "err", "template": "mae", "threshold": 3}]},
        },
    ),
]


@pytest.mark.parametrize(("model", "spec", "error"), [r[1:] for r in INVALID_SPECS], ids=[r[0] for r in INVALID_SPECS])
def test_what_cannot_exist_or_be_evaluated_or_apply_is_invalid_spec(model: type, spec: dict, error: str) -> None:
    parsed, message = parse_spec(model, {"spec": spec})
    assert parsed is None and message.startswith(error), message


@pytest.mark.parametrize(("model", "spec"), [r[1:] for r in VALID_SPECS], ids=[r[0] for r in VALID_SPECS])
def test_what_exists_evaluates_and_applies_is_accepted(model: type, spec: dict) -> None:
    parsed, message = parse_spec(model, {"spec": spec})
    assert parsed is not None, message


def test_the_template_groups_are_the_analysis_ones() -> None:
    """The rules on the templates' options say what rollout.analysis does with them."""
    assert set(md_api.SAMPLED_TEMPLATES) == set(analysis.SAMPLED)
    assert md_api.CLASS_TEMPLATES == analysis.CLASS_TEMPLATES
    assert {t for t, (_, bound) in analysis.TEMPLATES.items() if bound == "min"} <= set(md_api.FRACTION_TEMPLATES)
    assert analysis.DEFAULT_METRICS[0].min_samples == md_api.DEFAULT_MIN_SAMPLES


@pytest.mark.parametrize(
    "condition", ["result>=1", "result <= 1e-05", "result != -.5", "result == 3.", "result < 2E+3"]
)
def test_every_condition_the_model_accepts_is_judged(condition: str) -> None:
    metric = md_api.AnalysisMetric(name="q", query="up", success_condition=condition)
    passed, words = analysis.judge(metric, 0.0)
    assert isinstance(passed, bool) and condition in words


HOSTNAME = {"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}


@pytest.mark.parametrize(
    ("server", "error"),
    [
        (
            {"tolerations": [{"operator": "Exists", "value": "gpu"}]},
            "spec.server.tolerations.0: value must be empty when operator is Exists",
        ),
        (
            {"tolerations": [{"value": "gpu"}]},
            "spec.server.tolerations.0: a toleration without a key tolerates every taint: its operator must be Exists",
        ),
        (
            {"tolerations": [{"key": "dedicated", "effect": "NoSchedule", "tolerationSeconds": 30}]},
            "spec.server.tolerations.0: tolerationSeconds applies only to effect NoExecute",
        ),
        (
            {"tolerations": [{"key": "dedicated", "tolerationSeconds": 30}]},
            "spec.server.tolerations.0: tolerationSeconds applies only to effect NoExecute",
        ),
        (
            {"tolerations": [{"key": "dedicated", "operator": "In"}]},
            "spec.server.tolerations.0.operator: Input should be 'Exists' or 'Equal'",
        ),
        ({"tolerations": [{"key": "n" * 64}]}, "spec.server.tolerations.0.key: 'nnnn"),
        (
            {"tolerations": [{"key": "a", "effect": "NoExecute", "tolerationSeconds": -1}]},
            "spec.server.tolerations.0.tolerationSeconds: Input should be greater than or equal to 0",
        ),
        ({"nodeSelector": {"-arch": "amd64"}}, "spec.server.nodeSelector: '-arch' is not a label key"),
        (
            {"nodeSelector": {"kubernetes.io/arch": "amd 64"}},
            "spec.server.nodeSelector.kubernetes.io/arch: String should match pattern",
        ),
        (
            {"topologySpreadConstraints": [{**HOSTNAME, "maxSkew": 0}]},
            "spec.server.topologySpreadConstraints.0.maxSkew: Input should be greater than or equal to 1",
        ),
        (
            {"topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname"}]},
            "spec.server.topologySpreadConstraints.0.whenUnsatisfiable: Field required",
        ),
        (
            {"topologySpreadConstraints": [{**HOSTNAME, "minDomains": 2}]},
            "spec.server.topologySpreadConstraints.0: minDomains applies only to whenUnsatisfiable DoNotSchedule",
        ),
        (
            {"topologySpreadConstraints": [{**HOSTNAME, "nodeTaintsPolicy": "Always"}]},
            "spec.server.topologySpreadConstraints.0.nodeTaintsPolicy: Input should be 'Honor' or 'Ignore'",
        ),
        (
            {"topologySpreadConstraints": [{**HOSTNAME, "labelSelector": {"matchLabels": {"app": "x"}}}]},
            "spec.server.topologySpreadConstraints.0.labelSelector: Extra inputs are not permitted",
        ),
        (
            {"topologySpreadConstraints": [HOSTNAME, {**HOSTNAME, "maxSkew": 2}]},
            "spec.server.topologySpreadConstraints: more than one constraint for kubernetes.io/hostname "
            "(ScheduleAnyway)",
        ),
    ],
)
def test_scheduling_is_refused_as_the_api_server_would_refuse_the_pod(server: dict, error: str) -> None:
    spec, message = parse_spec(ModelDeploymentSpec, {"spec": {"model": {"name": "m"}, "server": server}})
    assert spec is None and message.startswith(error), message


def test_scheduling_kubernetes_accepts_is_accepted() -> None:
    server = {
        "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": ""},
        "tolerations": [
            {"operator": "Exists"},
            {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 0,
            },
        ],
        "topologySpreadConstraints": [HOSTNAME, {**HOSTNAME, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}],
    }
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

CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "R",
    "message": "",
    "lastTransitionTime": "t",
    "observedGeneration": 2,
}
VERSION = "sha256:" + "a" * 64
DATASET_STATUS = {
    "observedGeneration": 2,
    "phase": "Ready",
    "conditions": [CONDITION],
    "version": VERSION,
    "rows": 150,
    "columns": ["a", "b"],
    "snapshotUri": "pvc://s/data.csv",
    "profileRef": "pvc://s/profile.json",
    "lastCheckedAt": "t",
    "history": [{"version": VERSION, "rows": 150, "snapshotUri": "pvc://s", "createdAt": "t"}],
    "lastCheck": {"succeeded": True, "reason": "ValidationSucceeded", "message": "m", "at": "t", "generation": 2},
    "checks": 3,
    "activeCheck": "d-check-3",
    "checkedGeneration": 2,
}
TRAININGRUN_STATUS = {
    "observedGeneration": 1,
    "phase": "Succeeded",
    "conditions": [CONDITION],
    "reason": "JobSucceeded",
    "message": "m",
    "dataset": {"name": "d", "version": VERSION, "snapshotUri": "pvc://s", "target": "y"},
    "jobName": "r-train",
    "attempts": 2,
    "startedAt": "t",
    "completedAt": "t",
    "durationSeconds": 4.2,
    "metrics": {"accuracy": 0.9, "f1_macro": 1},
    "primaryMetric": "accuracy",
    "primaryValue": "0.9000",
    "model": {"uri": "pvc://m", "sha256": "f" * 64, "version": "r", "calibrated": True},
    "promotion": {
        "decision": "Superseded",
        "reason": "Superseded",
        "message": "m",
        "champion": "old",
        "metric": "accuracy",
        "value": 0.9,
        "championValue": 0.8,
        "decidedAt": "t",
    },
}


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
    [
        (DatasetStatus, "phase", "Done"),
        (TrainingRunStatus, "phase", "Done"),
        (TrainingRunStatus, "promotion", {"decision": "Maybe", "reason": "R"}),
    ],
)
def test_phases_and_decisions_are_the_enums_values(model, field, value) -> None:
    with pytest.raises(ValidationError):
        model.model_validate({field: value})
