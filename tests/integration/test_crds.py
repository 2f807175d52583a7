"""The API server itself enforces the schema: CRDs are Established, documented, and refuse bad specs."""

from __future__ import annotations

import re

import pytest

from support import REPO, Kubectl


def test_crds_are_established(crds: Kubectl) -> None:
    for plural in ("datasets", "trainingruns", "modeldeployments"):
        crd = crds.json("get", "crd", f"{plural}.mlops.dev")
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True", plural


def test_kubectl_explain_shows_the_models_descriptions(crds: Kubectl) -> None:
    out = crds.run("explain", "trainingrun.spec").stdout
    assert "Model name, estimator and parameters." in out
    assert "Dataset (and optionally its version) to train on." in out
    out = crds.run("explain", "modeldeployment.spec.strategy.canary.steps.setWeight").stdout
    assert "Percent of traffic sent to the canary." in out


def test_short_names_and_category_work(crds: Kubectl, namespace: str) -> None:
    """One object of each kind: its short name lists it alone, and the category `mlops` lists all three."""
    objects = {
        "dataset": "apiVersion: mlops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: d}\nspec:\n"
        "  source: {builtin: {name: iris}}\n",
        "trainingrun": "apiVersion: mlops.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: t}\nspec:\n"
        "  datasetRef: {name: d}\n  model: {name: m, estimator: sklearn.linear_model.LogisticRegression}\n",
        "modeldeployment": "apiVersion: mlops.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: s}\nspec:\n"
        "  model: {name: m}\n",
    }
    for manifest in objects.values():
        crds.apply(manifest, namespace)
    names = {"dataset": "d", "trainingrun": "t", "modeldeployment": "s"}
    for short, kind in (("dset", "dataset"), ("tr", "trainingrun"), ("md", "modeldeployment")):
        listed = crds.run("get", short, "-n", namespace, "-o", "name").stdout.split()
        assert listed == [f"{kind}.mlops.dev/{names[kind]}"], f"kubectl get {short}: {listed}"
    listed = sorted(crds.run("get", "mlops", "-n", namespace, "-o", "name").stdout.split())
    assert listed == sorted(f"{kind}.mlops.dev/{name}" for kind, name in names.items()), listed


DS = "apiVersion: mlops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: bad}\nspec:\n"
TR = "apiVersion: mlops.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: bad}\nspec:\n"
TR_OK = "  datasetRef: {name: iris}\n  model: {name: iris, estimator: sklearn.linear_model.LogisticRegression}\n"
MD = "apiVersion: mlops.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: bad}\nspec:\n"

# (id, manifest, field path the error must name, words the error must contain)
INVALID = [
    (
        "two-sources",
        DS + "  source: {builtin: {name: iris}, url: {url: 'https://e.org/x.csv'}}",
        "spec.source",
        "exactly one of builtin, url, configMap, pvc, s3 or capture",
    ),
    ("no-source", DS + "  source: {}", "spec.source", "exactly one of builtin, url, configMap, pvc, s3 or capture"),
    ("ftp-url", DS + "  source: {url: {url: 'ftp://e.org/x.csv'}}", "spec.source.url.url", "http:// or https://"),
    (
        "bad-sha256",
        DS + "  source: {url: {url: 'https://e.org/x.csv', sha256: abc}}",
        "spec.source.url.sha256",
        "should match",
    ),
    ("unknown-builtin", DS + "  source: {builtin: {name: mnist}}", "spec.source.builtin.name", "Unsupported value"),
    (
        "min-above-max",
        DS + "  source: {builtin: {name: iris}}\n  schema: {columns: [{name: a, type: float, min: 5, max: 1}]}",
        "spec.schema.columns[0]",
        "min must not be greater than max",
    ),
    (
        "min-rows-zero",
        DS + "  source: {builtin: {name: iris}}\n  schema: {minRows: 0}",
        "spec.schema.minRows",
        "should be greater than or equal to 1",
    ),
    (
        "pvc-path-escape",
        DS + "  source: {pvc: {claimName: data, path: 'a/../../etc/passwd'}}",
        "spec.source.pvc.path",
        "must not contain '..'",
    ),
    (
        "estimator-not-allowed",
        TR + "  datasetRef: {name: iris}\n  model: {name: iris, estimator: os.system}",
        "spec.model.estimator",
        "Unsupported value",
    ),
    (
        "test-size",
        TR + TR_OK + "  evaluation: {testSize: 0.9}",
        "spec.evaluation.testSize",
        "less than or equal to 0.5",
    ),
    (
        "model-name",
        TR + "  datasetRef: {name: iris}\n  model: {name: Iris_V2, estimator: sklearn.svm.SVC}",
        "spec.model.name",
        "should match",
    ),
    (
        "dataset-version",
        TR + "  datasetRef: {name: iris, version: v1}\n  model: {name: iris, estimator: sklearn.svm.SVC}",
        "spec.datasetRef.version",
        "should match",
    ),
    (
        "empty-gate",
        TR + TR_OK + "  promotion: {gates: [{metric: accuracy}]}",
        "spec.promotion.gates[0]",
        "a gate needs min or max",
    ),
    (
        "decreasing-weights",
        MD + "  model: {name: iris}\n  strategy: {canary: {steps: [{setWeight: 50}, {setWeight: 20}]}}",
        "spec.strategy.canary.steps",
        "setWeight must not decrease",
    ),
    (
        "weight-over-100",
        MD + "  model: {name: iris}\n  strategy: {canary: {steps: [{setWeight: 150}]}}",
        "spec.strategy.canary.steps[0].setWeight",
        "less than or equal to 100",
    ),
    (
        "step-two-actions",
        MD + "  model: {name: iris}\n  strategy: {canary: {steps: [{setWeight: 10, pause: {}}]}}",
        "spec.strategy.canary.steps[0]",
        "exactly one of setWeight, pause, analysis",
    ),
    (
        "model-name-and-run",
        MD + "  model: {name: iris, trainingRun: iris-1}",
        "spec.model",
        "exactly one of name or trainingRun",
    ),
    (
        "template-and-query",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, template: errorRate, "
        "threshold: 0.1, query: up, successCondition: 'result > 0'}]}",
        "spec.analysis.metrics[0]",
        "exactly one of template or query",
    ),
    (
        "query-without-condition",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, query: up}]}",
        "spec.analysis.metrics[0]",
        "a query needs a successCondition",
    ),
    (
        "gateway-without-route",
        MD + "  model: {name: iris}\n  trafficRouting: {mode: GatewayAPI}",
        "spec.trafficRouting",
        "gatewayAPI must be set exactly when mode is GatewayAPI",
    ),
    ("zero-replicas", MD + "  model: {name: iris}\n  replicas: 0", "spec.replicas", "greater than or equal to 1"),
    (
        "prometheus-file-url",
        MD + "  model: {name: iris}\n  prometheusUrl: 'file:///etc/passwd'",
        "spec.prometheusUrl",
        "must be an http:// or https:// URL",
    ),
    # More of the same classes: URLs pasted with whitespace, gates no model passes, duplicate keys.
    (
        "url-with-space",
        DS + "  source: {url: {url: 'https://e.org/my data.csv'}}",
        "spec.source.url.url",
        "no whitespace",
    ),
    (
        "prometheus-url-no-host",
        MD + "  model: {name: iris}\n  prometheusUrl: 'http://'",
        "spec.prometheusUrl",
        "with a host",
    ),
    (
        "gate-min-above-max",
        TR + TR_OK + "  promotion: {gates: [{metric: accuracy, min: 0.9, max: 0.5}]}",
        "spec.promotion.gates[0]",
        "min must not be greater than max",
    ),
    (
        "gate-twice",
        TR + TR_OK + "  promotion: {gates: [{metric: accuracy, min: 0.9}, {metric: accuracy, min: 0.5}]}",
        "spec.promotion.gates[1]",
        "Duplicate value",
    ),
    (
        "column-twice",
        DS + "  source: {builtin: {name: iris}}\n"
        "  schema: {columns: [{name: a, type: float}, {name: a, type: integer}]}",
        "spec.schema.columns[1]",
        "Duplicate value",
    ),
    (
        "metric-twice",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, template: errorRate, "
        "threshold: 0.1}, {name: e, template: latencyP95, threshold: 0.5}]}",
        "spec.analysis.metrics[1]",
        "Duplicate value",
    ),
    # Durations have a shortest and a longest value; the analysis interval is also a Prometheus range.
    (
        "refresh-back-to-back",
        DS + "  source: {url: {url: 'https://e.org/x.csv'}}\n  refreshInterval: 0s",
        "spec.refreshInterval",
        "must be at least 1m and at most 168h",
    ),
    (
        "refresh-yearly",
        DS + "  source: {url: {url: 'https://e.org/x.csv'}}\n  refreshInterval: 8760h",
        "spec.refreshInterval",
        "must be at least 1m and at most 168h",
    ),
    (
        "interval-fraction",
        MD + "  model: {name: iris}\n  analysis: {interval: 1.5m}",
        "spec.analysis.interval",
        "must be whole numbers of units",
    ),
    (
        "interval-zero",
        MD + "  model: {name: iris}\n  analysis: {interval: 0s}",
        "spec.analysis.interval",
        "must be at least 1s and at most 1h",
    ),
    (
        "pause-too-long",
        MD + "  model: {name: iris}\n  strategy: {canary: {steps: [{pause: {duration: 25h}}]}}",
        "spec.strategy.canary.steps[0].pause.duration",
        "must be at least 1s and at most 24h",
    ),
    (
        "guard-window-unbounded",
        MD + "  model: {name: iris}\n  postPromotion: {window: 200h}",
        "spec.postPromotion.window",
        "must be at least 1m and at most 168h",
    ),
    # An analysis step names metrics that exist: without spec.analysis.metrics, only the defaults do.
    (
        "step-names-undefined-metric",
        MD + "  model: {name: iris}\n"
        "  strategy: {canary: {steps: [{setWeight: 10}, {analysis: {metrics: [accuracy]}}]}}",
        "spec",
        "must name metrics of analysis.metrics",
    ),
    (
        "step-names-default-beside-defined",
        MD + "  model: {name: iris}\n"
        "  analysis: {metrics: [{name: errors, template: errorRate, threshold: 0.05}]}\n"
        "  strategy: {canary: {steps: [{analysis: {metrics: [error-rate]}}]}}",
        "spec",
        "must name metrics of analysis.metrics",
    ),
    # Resources are quantities; free-form fields have sizes.
    (
        "resources-garbage",
        TR + TR_OK + "  resources: {requests: {cpu: lots}}",
        "spec.resources.requests.cpu",
        "should match",
    ),
    (
        "resources-negative",
        TR + TR_OK + "  resources: {limits: {memory: '-1Gi'}}",
        "spec.resources.limits.memory",
        "should match",
    ),
    (
        "server-resources-garbage",
        MD + "  model: {name: iris}\n  server: {resources: {limits: {cpu: '2 cores'}}}",
        "spec.server.resources.limits.cpu",
        "should match",
    ),
    (
        "params-too-many",
        TR
        + "  datasetRef: {name: iris}\n  model: {name: iris, estimator: sklearn.svm.SVC, params: {"
        + ", ".join(f"p{i}: {i}" for i in range(65))
        + "}}",
        "spec.model.params",
        "64",
    ),
    (
        "seed-over-32-bits",
        TR + TR_OK + "  evaluation: {seed: 4294967296}",
        "spec.evaluation.seed",
        "less than or equal to 4294967295",
    ),
    (
        "dataset-ref-dots",
        TR + "  datasetRef: {name: iris.v2}\n  model: {name: iris, estimator: sklearn.svm.SVC}",
        "spec.datasetRef.name",
        "should match",
    ),
    (
        "format-xlsx",
        DS + "  source: {url: {url: 'https://e.org/x.xlsx'}}\n  format: xlsx",
        "spec.format",
        "Unsupported value",
    ),
    ("training-run-ref-too-long", MD + f"  model: {{trainingRun: {'r' * 58}}}", "spec.model.trainingRun", "Too long"),
    # Autoscaling: one target, bounds in order, a CPU target needs the CPU request it is a percent of.
    (
        "autoscaling-two-targets",
        MD + "  model: {name: iris}\n  autoscaling: {maxReplicas: 4, cpuUtilization: 80, requestsPerSecond: 5}",
        "spec.autoscaling",
        "exactly one of cpuUtilization or requestsPerSecond",
    ),
    (
        "autoscaling-no-target",
        MD + "  model: {name: iris}\n  autoscaling: {maxReplicas: 4}",
        "spec.autoscaling",
        "exactly one of cpuUtilization or requestsPerSecond",
    ),
    (
        "autoscaling-min-above-max",
        MD + "  model: {name: iris}\n  autoscaling: {minReplicas: 5, maxReplicas: 4, requestsPerSecond: 5}",
        "spec.autoscaling",
        "minReplicas must not exceed maxReplicas",
    ),
    (
        "autoscaling-cpu-without-request",
        MD + "  model: {name: iris}\n  autoscaling: {maxReplicas: 4, cpuUtilization: 80}",
        "spec",
        "set server.resources.requests.cpu",
    ),
    (
        "autoscaling-policy-period",
        MD + "  model: {name: iris}\n  autoscaling: {maxReplicas: 4, requestsPerSecond: 5, "
        "behavior: {scaleUp: {policies: [{type: Pods, value: 1, periodSeconds: 3600}]}}}",
        "spec.autoscaling.behavior.scaleUp.policies[0].periodSeconds",
        "less than or equal to 1800",
    ),
    # Scheduling of the server pods: what the API server would refuse in the Pod is refused in the spec.
    (
        "toleration-exists-with-value",
        MD + "  model: {name: iris}\n  server: {tolerations: [{key: gpu, operator: Exists, value: a}]}",
        "spec.server.tolerations[0]",
        "value must be empty when operator is Exists",
    ),
    (
        "toleration-without-key-equal",
        MD + "  model: {name: iris}\n  server: {tolerations: [{value: a}]}",
        "spec.server.tolerations[0]",
        "its operator must be Exists",
    ),
    (
        "toleration-seconds-not-noexecute",
        MD + "  model: {name: iris}\n  server: {tolerations: [{key: gpu, effect: NoSchedule, tolerationSeconds: 30}]}",
        "spec.server.tolerations[0]",
        "tolerationSeconds applies only to effect NoExecute",
    ),
    (
        "toleration-seconds-without-effect",
        MD + "  model: {name: iris}\n  server: {tolerations: [{key: gpu, operator: Exists, tolerationSeconds: 30}]}",
        "spec.server.tolerations[0]",
        "tolerationSeconds applies only to effect NoExecute",
    ),
    (
        "toleration-operator",
        MD + "  model: {name: iris}\n  server: {tolerations: [{key: gpu, operator: In}]}",
        "spec.server.tolerations[0].operator",
        "Unsupported value",
    ),
    (
        "node-selector-value",
        MD + "  model: {name: iris}\n  server: {nodeSelector: {pool: 'a b'}}",
        "spec.server.nodeSelector.pool",
        "should match",
    ),
    (
        "spread-skew-zero",
        MD + "  model: {name: iris}\n  server: {topologySpreadConstraints: "
        "[{topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, maxSkew: 0}]}",
        "spec.server.topologySpreadConstraints[0].maxSkew",
        "greater than or equal to 1",
    ),
    (
        "spread-min-domains-soft",
        MD + "  model: {name: iris}\n  server: {topologySpreadConstraints: "
        "[{topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}]}",
        "spec.server.topologySpreadConstraints[0]",
        "minDomains applies only to whenUnsatisfiable DoNotSchedule",
    ),
    (
        "spread-twice",
        MD + "  model: {name: iris}\n  server: {topologySpreadConstraints: "
        "[{topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}, "
        "{topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, maxSkew: 2}]}",
        "spec.server.topologySpreadConstraints[1]",
        "Duplicate value",
    ),
    (
        "spread-without-action",
        MD + "  model: {name: iris}\n  server: {topologySpreadConstraints: [{topologyKey: kubernetes.io/hostname}]}",
        "spec.server.topologySpreadConstraints[0].whenUnsatisfiable",
        "Required value",
    ),
    # Options that do not apply to the variant chosen: a file format or a refresh for a source that has none.
    (
        "format-on-builtin",
        DS + "  source: {builtin: {name: iris}}\n  format: parquet",
        "spec.format",
        "format applies only to url, configMap, pvc and s3 sources",
    ),
    (
        "format-on-capture",
        DS + "  source: {capture: {base: iris, modelDeployment: iris}}\n  format: auto",
        "spec.format",
        "format applies only to url, configMap, pvc and s3 sources",
    ),
    (
        "refresh-on-builtin",
        DS + "  source: {builtin: {name: iris}}\n  refreshInterval: 1h",
        "spec.refreshInterval",
        "refreshInterval does not apply to a builtin source",
    ),
    (
        "guard-window-while-disabled",
        MD + "  model: {name: iris}\n  postPromotion: {enabled: false, window: 1h}",
        "spec.postPromotion.window",
        "window applies only when the guard is enabled",
    ),
    (
        "min-samples-on-error-rate",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, template: errorRate, "
        "threshold: 0.05, minSamples: 50}]}",
        "spec.analysis.metrics[0].minSamples",
        "minSamples applies only to",
    ),
    # Expressions that cannot be evaluated: a condition on something not a number, unknown placeholders,
    # a fraction written as a percent, a bound below what the metric can be.
    (
        "condition-not-a-number",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: q, query: up, successCondition: 'result < e'}]}",
        "spec.analysis.metrics[0].successCondition",
        "should match",
    ),
    (
        "condition-two-points",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: q, query: up, "
        "successCondition: 'result >= 1.2.3'}]}",
        "spec.analysis.metrics[0].successCondition",
        "should match",
    ),
    (
        "query-unknown-placeholder",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: q, "
        "query: 'up{pod=\"{{pod}}\"}', successCondition: 'result > 0'}]}",
        "spec.analysis.metrics[0].query",
        "the only placeholders are {{version}} and {{namespace}}",
    ),
    (
        "query-blank",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: q, query: '  ', successCondition: 'result > 0'}]}",
        "spec.analysis.metrics[0].query",
        "should match",
    ),
    (
        "threshold-as-percent",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, template: errorRate, threshold: 5}]}",
        "spec.analysis.metrics[0].threshold",
        "is a fraction from 0 to 1",
    ),
    (
        "threshold-negative",
        MD + "  model: {name: iris}\n  analysis: {metrics: [{name: l, template: latencyP95, threshold: -1}]}",
        "spec.analysis.metrics[0].threshold",
        "must not be negative",
    ),
    # References between fields: metrics the estimator cannot have or the evaluation does not compute.
    (
        "gate-not-evaluated",
        TR + TR_OK + "  evaluation: {metrics: [accuracy]}\n  promotion: {gates: [{metric: f1_macro, min: 0.5}]}",
        "spec.promotion.gates",
        "must be one of evaluation.metrics",
    ),
    (
        "beat-champion-not-evaluated",
        TR + TR_OK + "  evaluation: {metrics: [accuracy]}\n  promotion: {beatChampion: {metric: f1_macro}}",
        "spec.promotion.beatChampion.metric",
        "must be one of evaluation.metrics",
    ),
    (
        "gate-wrong-task",
        TR + TR_OK + "  promotion: {gates: [{metric: rmse, max: 1}]}",
        "spec.promotion.gates",
        "must be metrics of the estimator's task",
    ),
    (
        "evaluation-wrong-task",
        TR + "  datasetRef: {name: iris}\n  model: {name: iris, estimator: sklearn.svm.SVR}\n"
        "  evaluation: {metrics: [accuracy]}",
        "spec.evaluation.metrics",
        "must be metrics of the estimator's task",
    ),
    (
        "beat-champion-wrong-task",
        TR + TR_OK + "  promotion: {beatChampion: {metric: r2}}",
        "spec.promotion.beatChampion.metric",
        "must be a metric of the estimator's task",
    ),
    # The retraining template and triggers: the same rules, and the model the ModelDeployment serves.
    (
        "retraining-template-gate-wrong-task",
        MD + "  model: {name: iris}\n  retraining:\n    template:\n"
        "      datasetRef: {name: iris}\n"
        "      model: {name: iris, estimator: sklearn.linear_model.LogisticRegression}\n"
        "      promotion: {gates: [{metric: mae, max: 1}]}\n    triggers: {newDatasetVersion: true}",
        "spec.retraining.template.promotion.gates",
        "must be metrics of the estimator's task",
    ),
    (
        "retraining-template-pins-version",
        MD + "  model: {name: iris}\n  retraining:\n    template:\n"
        f"      datasetRef: {{name: iris, version: 'sha256:{'0' * 64}'}}\n"
        "      model: {name: iris, estimator: sklearn.linear_model.LogisticRegression}\n"
        "    triggers: {newDatasetVersion: true}",
        "spec.retraining.template.datasetRef.version",
        "must not pin datasetRef.version",
    ),
    (
        "quality-trigger-wrong-task",
        MD + "  model: {name: iris}\n  retraining:\n    template:\n"
        "      datasetRef: {name: iris}\n      model: {name: iris, estimator: sklearn.linear_model.Ridge}\n"
        "    triggers: {quality: {template: accuracy, bound: 0.8}}",
        "spec.retraining.triggers.quality.template",
        "must measure the template's estimator",
    ),
    (
        "quality-bound-as-percent",
        MD + "  model: {name: iris}\n  retraining:\n    template:\n"
        "      datasetRef: {name: iris}\n"
        "      model: {name: iris, estimator: sklearn.linear_model.LogisticRegression}\n"
        "    triggers: {quality: {template: f1, bound: 85}}",
        "spec.retraining.triggers.quality.bound",
        "is a fraction from 0 to 1",
    ),
    (
        "analysis-template-wrong-task",
        MD + "  model: {name: iris}\n"
        "  analysis: {metrics: [{name: err, template: mae, threshold: 0.5}]}\n  retraining:\n    template:\n"
        "      datasetRef: {name: iris}\n"
        "      model: {name: iris, estimator: sklearn.linear_model.LogisticRegression}\n"
        "    triggers: {newDatasetVersion: true}",
        "spec.analysis.metrics",
        "must measure the estimator retraining trains",
    ),
]


@pytest.mark.parametrize(("manifest", "field", "words"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_api_server_rejects_invalid_spec(crds: Kubectl, namespace: str, manifest: str, field: str, words: str) -> None:
    result = crds.run("create", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, f"the API server accepted:\n{manifest}"
    assert "is invalid" in result.stderr, result.stderr
    assert f"{field}:" in result.stderr, f"error does not name {field}: {result.stderr}"
    assert words in result.stderr, result.stderr
    kind = manifest.split("kind: ")[1].split("\n")[0]
    assert crds.get(kind, "bad", namespace) is None


# Names become child names and label values (api.common.NameRule): (id, kind, name, words of the error).
BAD_NAMES = [
    ("dataset-64-characters", "Dataset", "d" * 64, "Too long"),
    ("dataset-dots", "Dataset", "iris.v2", "should match"),
    ("trainingrun-58-characters", "TrainingRun", "r" * 58, "Too long"),
    ("trainingrun-dots", "TrainingRun", "iris.logreg", "should match"),
    ("modeldeployment-57-characters", "ModelDeployment", "m" * 57, "Too long"),
    ("modeldeployment-leading-digit", "ModelDeployment", "1iris", "should match"),
    ("modeldeployment-dots", "ModelDeployment", "iris.prod", "should match"),
]
SPECS = {
    "Dataset": "  source: {builtin: {name: iris}}",
    "TrainingRun": TR_OK.rstrip("\n"),
    "ModelDeployment": "  model: {name: iris}",
}


def _named(kind: str, name: str) -> str:
    return f"apiVersion: mlops.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{SPECS[kind]}\n"


@pytest.mark.parametrize(("kind", "name", "words"), [b[1:] for b in BAD_NAMES], ids=[b[0] for b in BAD_NAMES])
def test_api_server_rejects_names_children_and_labels_cannot_carry(
    crds: Kubectl, namespace: str, kind: str, name: str, words: str
) -> None:
    result = crds.run("create", "-n", namespace, "-f", "-", input=_named(kind, name), check=False)
    assert result.returncode != 0, f"the API server accepted {kind} {name}"
    assert "metadata.name:" in result.stderr, f"error does not name metadata.name: {result.stderr}"
    assert words in result.stderr, result.stderr
    assert crds.get(kind, name, namespace) is None


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Dataset", "d" * 63), ("Dataset", "2026-iris"), ("TrainingRun", "r" * 57), ("ModelDeployment", "m" * 56)],
    ids=["dataset-63", "dataset-leading-digit", "trainingrun-57", "modeldeployment-56"],
)
def test_api_server_accepts_the_longest_names(crds: Kubectl, namespace: str, kind: str, name: str) -> None:
    done = crds.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=_named(kind, name), check=False)
    assert done.returncode == 0, done.stderr


# docs/serving.md's spread over nodes and zones with fast failover, and a toleration of every taint.
SCHEDULING = """  model: {name: iris}
  server:
    nodeSelector: {kubernetes.io/os: linux, pool: ''}
    topologySpreadConstraints:
      - {topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}
      - {topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, minDomains: 2}
    tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
      - {key: dedicated, value: ml, effect: NoSchedule}
      - {operator: Exists}
"""


def test_api_server_accepts_spread_and_failover(crds: Kubectl, namespace: str) -> None:
    done = crds.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=MD + SCHEDULING, check=False)
    assert done.returncode == 0, done.stderr


def test_the_readmes_manifests_and_the_examples_are_accepted(crds: Kubectl, namespace: str) -> None:
    manifests = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    examples = sorted((REPO / "examples").rglob("*.yaml"))
    for text in [*manifests, *(path.read_text() for path in examples)]:
        done = crds.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
        assert done.returncode == 0, f"refused by the API server:\n{text}\n{done.stderr}"
