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
    for resource in ("dset", "tr", "md", "mlops"):
        crds.run("get", resource, "-n", namespace)


DS = "apiVersion: mlops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: bad}\nspec:\n"
TR = "apiVersion: mlops.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: bad}\nspec:\n"
TR_OK = "  datasetRef: {name: iris}\n  model: {name: iris, estimator: sklearn.linear_model.LogisticRegression}\n"
MD = "apiVersion: mlops.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: bad}\nspec:\n"

# (id, manifest, field path the error must name, words the error must contain)
INVALID = [
    ("two-sources", DS + "  source: {builtin: {name: iris}, url: {url: 'https://e.org/x.csv'}}",
     "spec.source", "exactly one of builtin, url, configMap or pvc"),
    ("no-source", DS + "  source: {}", "spec.source", "exactly one of builtin, url, configMap or pvc"),
    ("ftp-url", DS + "  source: {url: {url: 'ftp://e.org/x.csv'}}", "spec.source.url.url", "http:// or https://"),
    ("bad-sha256", DS + "  source: {url: {url: 'https://e.org/x.csv', sha256: abc}}",
     "spec.source.url.sha256", "should match"),
    ("unknown-builtin", DS + "  source: {builtin: {name: mnist}}", "spec.source.builtin.name", "Unsupported value"),
    ("min-above-max", DS + "  source: {builtin: {name: iris}}\n"
     "  schema: {columns: [{name: a, type: float, min: 5, max: 1}]}",
     "spec.schema.columns[0]", "min must not be greater than max"),
    ("min-rows-zero", DS + "  source: {builtin: {name: iris}}\n  schema: {minRows: 0}", "spec.schema.minRows",
     "should be greater than or equal to 1"),
    ("pvc-path-escape", DS + "  source: {pvc: {claimName: data, path: 'a/../../etc/passwd'}}",
     "spec.source.pvc.path", "must not contain '..'"),
    ("estimator-not-allowed", TR + "  datasetRef: {name: iris}\n  model: {name: iris, estimator: os.system}",
     "spec.model.estimator", "Unsupported value"),
    ("test-size", TR + TR_OK + "  evaluation: {testSize: 0.9}", "spec.evaluation.testSize",
     "less than or equal to 0.5"),
    ("model-name", TR + "  datasetRef: {name: iris}\n  model: {name: Iris_V2, estimator: sklearn.svm.SVC}",
     "spec.model.name", "should match"),
    ("dataset-version", TR + "  datasetRef: {name: iris, version: v1}\n"
     "  model: {name: iris, estimator: sklearn.svm.SVC}",
     "spec.datasetRef.version", "should match"),
    ("empty-gate", TR + TR_OK + "  promotion: {gates: [{metric: accuracy}]}", "spec.promotion.gates[0]",
     "a gate needs min or max"),
    ("decreasing-weights", MD + "  model: {name: iris}\n"
     "  strategy: {canary: {steps: [{setWeight: 50}, {setWeight: 20}]}}",
     "spec.strategy.canary.steps", "setWeight must not decrease"),
    ("weight-over-100", MD + "  model: {name: iris}\n  strategy: {canary: {steps: [{setWeight: 150}]}}",
     "spec.strategy.canary.steps[0].setWeight", "less than or equal to 100"),
    ("step-two-actions", MD + "  model: {name: iris}\n  strategy: {canary: {steps: [{setWeight: 10, pause: {}}]}}",
     "spec.strategy.canary.steps[0]", "exactly one of setWeight, pause, analysis"),
    ("model-name-and-run", MD + "  model: {name: iris, trainingRun: iris-1}", "spec.model",
     "exactly one of name or trainingRun"),
    ("template-and-query", MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, template: errorRate, "
     "threshold: 0.1, query: up, successCondition: 'result > 0'}]}", "spec.analysis.metrics[0]",
     "exactly one of template or query"),
    ("query-without-condition", MD + "  model: {name: iris}\n  analysis: {metrics: [{name: e, query: up}]}",
     "spec.analysis.metrics[0]", "a query needs a successCondition"),
    ("gateway-without-route", MD + "  model: {name: iris}\n  trafficRouting: {mode: GatewayAPI}", "spec.trafficRouting",
     "gatewayAPI must be set exactly when mode is GatewayAPI"),
    ("zero-replicas", MD + "  model: {name: iris}\n  replicas: 0", "spec.replicas", "greater than or equal to 1"),
    ("prometheus-file-url", MD + "  model: {name: iris}\n  prometheusUrl: 'file:///etc/passwd'", "spec.prometheusUrl",
     "must be an http(s) URL"),
]  # fmt: skip


@pytest.mark.parametrize(("manifest", "field", "words"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_api_server_rejects_invalid_spec(crds: Kubectl, namespace: str, manifest: str, field: str, words: str) -> None:
    result = crds.run("create", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, f"the API server accepted:\n{manifest}"
    assert "is invalid" in result.stderr, result.stderr
    assert f"{field}:" in result.stderr, f"error does not name {field}: {result.stderr}"
    assert words in result.stderr, result.stderr
    kind = manifest.split("kind: ")[1].split("\n")[0]
    assert crds.get(kind, "bad", namespace) is None


def test_the_readmes_manifests_and_the_examples_are_accepted(crds: Kubectl, namespace: str) -> None:
    manifests = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    examples = sorted((REPO / "examples").rglob("*.yaml"))
    for text in [*manifests, *(path.read_text() for path in examples)]:
        done = crds.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
        assert done.returncode == 0, f"refused by the API server:\n{text}\n{done.stderr}"
