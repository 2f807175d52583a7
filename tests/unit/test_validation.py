"""Bad input is refused where it is written, naming the field: the CRD schema carries each bound (the API
server refuses the object), and the model carries the same bound and what a schema cannot say (the
object becomes Ready=False InvalidSpec). Every bound is checked on both sides: the pydantic model here,
the generated schema beside it; tests/integration/test_crds.py sends the same input to a real API server.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
import yaml

from mlops_operator.api import crd
from mlops_operator.api.common import (
    DATASET_NAME,
    JOB_ENV_VALUE_MAX_BYTES,
    MODEL_DEPLOYMENT_NAME,
    QUANTITY_PATTERN,
    TRAINING_RUN_NAME,
    NameRule,
    job_wire,
    quantity_value,
)
from mlops_operator.api.dataset import DatasetSpec, DatasetStatus
from mlops_operator.api.modeldeployment import DEFAULT_METRIC_NAMES, ModelDeploymentSpec
from mlops_operator.api.trainingrun import PARAMS_MAX_BYTES, DatasetPin, TrainingRunSpec
from mlops_operator.config import OperatorConfig
from mlops_operator.controllers import dataset as dataset_controller
from mlops_operator.controllers.contract import Observed, parse_spec
from mlops_operator.resources.jobs import (
    RequestTooLarge,
    child_name,
    desired_dataset_check_job,
    desired_training_job,
    request_env,
)
from mlops_operator.rollout.analysis import DEFAULT_METRICS
from support import REPO

TR = {"datasetRef": {"name": "iris"}, "model": {"name": "iris", "estimator": "sklearn.linear_model.LogisticRegression"}}
MD = {"model": {"name": "iris"}}
DS = {"source": {"builtin": {"name": "iris"}}}
DS_URL = {"source": {"url": {"url": "https://example.org/d.csv"}}}  # refreshInterval applies to it


def schema_of(kind: str) -> dict[str, Any]:
    info = next(i for i in crd.KINDS if i.kind == kind)
    return crd.crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def node(kind: str, path: str) -> dict[str, Any]:
    """The schema node at `spec.a.b[].c` (`[]`: the items of a list, `{}`: the values of a map)."""
    current = schema_of(kind)
    for part in re.findall(r"[^.\[\]{}]+|\[\]|\{\}", path):
        if part == "[]":
            current = current["items"]
        elif part == "{}":
            current = current["additionalProperties"]
        else:
            current = current["properties"][part]
    return current


def refusal(model: type, body: dict[str, Any]) -> str:
    """The InvalidSpec message the operator writes for `body`; fails if the model accepts it."""
    spec, error = parse_spec(model, {"spec": body})
    assert spec is None, f"accepted: {body}"
    return error


def accepted(model: type, body: dict[str, Any]) -> Any:
    spec, error = parse_spec(model, {"spec": body})
    assert spec is not None, error
    return spec


# ------------------------------------------------------------------------------------------- names


RULES = {"Dataset": DATASET_NAME, "TrainingRun": TRAINING_RUN_NAME, "ModelDeployment": MODEL_DEPLOYMENT_NAME}


def name_allowed(rule: NameRule, name: str) -> bool:
    return len(name) <= rule.max_length and re.fullmatch(rule.pattern.strip("^$"), name) is not None


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("Dataset", "iris", True),
        ("Dataset", "a" * 63, True),
        ("Dataset", "a" * 64, False),
        ("Dataset", "2026-iris", True),
        ("Dataset", "iris.v2", False),
        ("Dataset", "iris-", False),
        ("TrainingRun", "r" * 57, True),
        ("TrainingRun", "r" * 58, False),
        ("TrainingRun", "iris.logreg", False),
        ("TrainingRun", "7-logreg", True),
        ("ModelDeployment", "m" * 56, True),
        ("ModelDeployment", "m" * 57, False),
        ("ModelDeployment", "1iris", False),
        ("ModelDeployment", "iris.prod", False),
        ("ModelDeployment", "Iris", False),
        ("ModelDeployment", "iris-2", True),
    ],
)
def test_names_children_and_labels_cannot_carry_are_refused(kind: str, name: str, ok: bool) -> None:
    rule = RULES[kind]
    assert name_allowed(rule, name) == ok
    # The API server applies the same rule to metadata.name: a CRD may constrain only name and
    # generateName there, so the metadata schema carries nothing else.
    metadata = schema_of(kind)["properties"]["metadata"]
    assert metadata == {"type": "object", "properties": {"name": rule.schema()}}
    assert metadata["properties"]["name"]["maxLength"] == rule.max_length
    assert metadata["properties"]["name"]["pattern"] == rule.pattern


@pytest.mark.parametrize(
    ("rule", "suffixes"),
    [(DATASET_NAME, []), (TRAINING_RUN_NAME, ["train"]), (MODEL_DEPLOYMENT_NAME, ["stable", "canary"])],
    ids=["Dataset", "TrainingRun", "ModelDeployment"],
)
def test_the_longest_name_keeps_its_children_named_as_documented_and_every_label_valid(
    rule: NameRule, suffixes: list[str]
) -> None:
    longest = "a" * rule.max_length
    for suffix in suffixes:
        assert child_name(longest, suffix) == f"{longest}-{suffix}", "never shortened with a hash"
        assert len(f"{longest}-{suffix}") <= 63
    assert len(longest) <= 63, "the name itself is a label value"
    # A Dataset's check Jobs are numbered without end: those names are shortened, and still fit.
    assert len(child_name("a" * DATASET_NAME.max_length, "check-123456")) <= 63


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (TrainingRunSpec, {**TR, "datasetRef": {"name": "iris.v2"}}, "spec.datasetRef.name"),
        (TrainingRunSpec, {**TR, "datasetRef": {"name": "d" * 64}}, "spec.datasetRef.name"),
        (ModelDeploymentSpec, {"model": {"trainingRun": "r" * 58}}, "spec.model.trainingRun"),
    ],
)
def test_a_reference_to_a_name_that_cannot_exist_is_refused(model: type, body: dict, field: str) -> None:
    assert refusal(model, body).startswith(f"{field}:")


# --------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("model", "path", "value", "words"),
    [
        (DatasetSpec, "refreshInterval", "0s", "must be at least 1m and at most 168h"),
        (DatasetSpec, "refreshInterval", "59s", "must be at least 1m and at most 168h"),
        (DatasetSpec, "refreshInterval", "169h", "must be at least 1m and at most 168h"),
        (ModelDeploymentSpec, "analysis.interval", "0s", "must be at least 1s and at most 1h"),
        (ModelDeploymentSpec, "analysis.interval", "500ms", "must be at least 1s and at most 1h"),
        (ModelDeploymentSpec, "analysis.interval", "1h1s", "must be at least 1s and at most 1h"),
        (ModelDeploymentSpec, "analysis.interval", "1.5m", "must be whole numbers of units, e.g. 90s, not 1.5m"),
        (ModelDeploymentSpec, "strategy.canary.steps[0].pause.duration", "25h", "must be at least 1s and at most 24h"),
        (ModelDeploymentSpec, "strategy.canary.steps[0].pause.duration", "0s", "must be at least 1s and at most 24h"),
        (ModelDeploymentSpec, "postPromotion.window", "30s", "must be at least 1m and at most 168h"),
        (ModelDeploymentSpec, "postPromotion.window", "200h", "must be at least 1m and at most 168h"),
    ],
)
def test_durations_outside_their_bounds_are_refused(model: type, path: str, value: str, words: str) -> None:
    base = DS_URL if model is DatasetSpec else MD
    # The operator's message writes a list index as `.0`; the API server's as `[0]`.
    assert refusal(model, {**base, **_set(path, value)}) == f"spec.{path.replace('[0]', '.0')}: {words}"
    kind = "Dataset" if model is DatasetSpec else "ModelDeployment"
    schema_path = "spec." + path.replace("[0]", "[]")
    rules = node(kind, schema_path)["x-kubernetes-validations"]
    assert words in [r["message"] for r in rules], rules
    assert "duration(self) >= duration(" in rules[0]["rule"]


@pytest.mark.parametrize(
    ("model", "path", "value"),
    [
        (DatasetSpec, "refreshInterval", "1m"),
        (DatasetSpec, "refreshInterval", "168h"),
        (ModelDeploymentSpec, "analysis.interval", "1s"),
        (ModelDeploymentSpec, "analysis.interval", "1m30s"),
        (ModelDeploymentSpec, "analysis.interval", "1h"),
        (ModelDeploymentSpec, "strategy.canary.steps[0].pause.duration", "1.5s"),
        (ModelDeploymentSpec, "strategy.canary.steps[0].pause.duration", "24h"),
        (ModelDeploymentSpec, "postPromotion.window", "7h30m"),
    ],
)
def test_durations_within_their_bounds_are_accepted(model: type, path: str, value: str) -> None:
    accepted(model, {**(DS_URL if model is DatasetSpec else MD), **_set(path, value)})


def test_every_duration_field_has_bounds_in_the_schema() -> None:
    for kind in ("Dataset", "ModelDeployment"):
        for path, sub in _walk(schema_of(kind)["properties"]["spec"], "spec"):
            if sub.get("pattern", "").startswith("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"):
                rules = [r["rule"] for r in sub.get("x-kubernetes-validations", [])]
                assert any("duration(self) <= duration(" in r for r in rules), f"{kind} {path} has no upper bound"


def _set(path: str, value: Any) -> dict[str, Any]:
    """{a: {b: [ {c: value} ]}} from `a.b[0].c`."""
    parts = re.findall(r"[^.\[\]]+|\[0\]", path)
    out: Any = value
    for part in reversed(parts):
        out = [out] if part == "[0]" else {part: out}
    return out


def _walk(schema: dict[str, Any], path: str):
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


# ------------------------------------------------------------------------------------ analysis steps


@pytest.mark.parametrize(
    ("analysis", "named", "ok"),
    [
        ({}, ["error-rate"], True),
        ({}, ["latency-p95", "error-rate"], True),
        ({}, ["accuracy"], False),
        ({"metrics": [{"name": "errors", "template": "errorRate", "threshold": 0.05}]}, ["errors"], True),
        ({"metrics": [{"name": "errors", "template": "errorRate", "threshold": 0.05}]}, ["error-rate"], False),
    ],
)
def test_an_analysis_step_may_name_only_metrics_that_exist(analysis: dict, named: list[str], ok: bool) -> None:
    steps = [{"setWeight": 10}, {"analysis": {"metrics": named}}]
    body = {**MD, "analysis": analysis, "strategy": {"canary": {"steps": steps}}}
    if ok:
        accepted(ModelDeploymentSpec, body)
        return
    message = refusal(ModelDeploymentSpec, body)
    assert message.startswith("spec.strategy.canary.steps[1].analysis.metrics names"), message
    if not analysis:
        assert "only the defaults ['error-rate', 'latency-p95'] exist" in message


def test_the_default_metric_names_are_the_metrics_judged_by_default() -> None:
    assert list(DEFAULT_METRIC_NAMES) == [m.name for m in DEFAULT_METRICS]
    rule, *_others = schema_of("ModelDeployment")["properties"]["spec"]["x-kubernetes-validations"]
    assert (
        "['error-rate', 'latency-p95']" in rule["rule"]
        and "self.analysis.metrics.exists(d, d.name == m)" in rule["rule"]
    )
    # The CEL rule compares strings of bounded length: its cost estimate stays small.
    assert node("ModelDeployment", "spec.strategy.canary.steps[].analysis.metrics[]")["maxLength"] == 50


# ------------------------------------------------------------------------------------------- params


def test_params_too_large_for_the_jobs_environment_are_refused() -> None:
    body = {**TR, "model": {**TR["model"], "params": {"class_weight": {str(i): 1.0 for i in range(20_000)}}}}
    message = refusal(TrainingRunSpec, body)
    assert message.startswith("spec.model.params: the parameters take ")
    assert f"more than {PARAMS_MAX_BYTES}" in message and "environment variable" in message


def test_params_are_bounded_in_number_by_the_schema_and_the_model() -> None:
    assert node("TrainingRun", "spec.model.params")["maxProperties"] == 64
    assert node("TrainingRun", "spec.model.params")["x-kubernetes-preserve-unknown-fields"] is True
    body = {**TR, "model": {**TR["model"], "params": {f"p{i}": i for i in range(65)}}}
    assert refusal(TrainingRunSpec, body).startswith("spec.model.params:")


def test_none_in_params_reaches_the_job() -> None:
    spec = accepted(TrainingRunSpec, {**TR, "model": {**TR["model"], "params": {"class_weight": None}}})
    assert job_wire(spec)["model"]["params"] == {"class_weight": None}, "None is a value sklearn reads"
    assert TrainingRunSpec.model_validate(job_wire(spec)) == spec


def test_a_schema_too_large_for_the_check_job_is_refused_and_a_wide_one_is_not() -> None:
    wide = {"columns": [{"name": f"column_{i:04d}", "type": "float"} for i in range(2000)]}
    accepted(DatasetSpec, {**DS, "schema": wide})
    values = [f"value-{i:06d}" for i in range(1000)]
    huge = {"columns": [{"name": f"c{i}", "type": "category", "allowedValues": values} for i in range(20)]}
    message = refusal(DatasetSpec, {**DS, "schema": huge})
    assert message.startswith("spec.schema: the columns take ") and "environment variable" in message


# ---------------------------------------------------------------------------------------- resources


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        ({"requests": {"cpu": "lots"}}, ".requests.cpu: 'lots' is not a quantity, e.g. 500m, 2 or 1.5Gi"),
        ({"requests": {"cpu": "-1"}}, ".requests.cpu: '-1' is not a quantity"),
        ({"requests": {"memory": "1.5 Gi"}}, ".requests.memory: '1.5 Gi' is not a quantity"),
        ({"limits": {"cpu": -2}}, ".limits.cpu: -2 is negative: resources are amounts"),
        ({"requests": {"gpu": 1}}, ": requests names ['gpu']: a resource is cpu, memory, ephemeral-storage"),
        ({"limits": {"CPU": "1"}}, ": limits names ['CPU']"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}, ": requests.cpu (2) is more than limits.cpu (500m)"),
        ({"requests": {"memory": "1Gi"}, "limits": {"memory": "1G"}}, ": requests.memory (1Gi) is more than"),
        ({"requests": {f"example.com/r{i}": 1 for i in range(17)}}, ".requests: Dictionary should have at most 16"),
    ],
)
def test_garbage_in_resources_is_refused(resources: dict, words: str) -> None:
    assert f"spec.resources{words}" in refusal(TrainingRunSpec, {**TR, "resources": resources})
    assert f"spec.server.resources{words}" in refusal(ModelDeploymentSpec, {**MD, "server": {"resources": resources}})


def test_sane_resources_are_accepted() -> None:
    resources = {
        "requests": {
            "cpu": "500m",
            "memory": "512Mi",
            "ephemeral-storage": "1e9",
            "nvidia.com/gpu": 1,
            "hugepages-2Mi": "64Mi",
        },
        "limits": {"cpu": 2, "memory": "1Gi", "nvidia.com/gpu": 1},
    }
    spec = accepted(TrainingRunSpec, {**TR, "resources": resources})
    assert (
        desired_training_job(
            name="r",
            namespace="ml",
            uid="u",
            spec=spec,
            dataset=DatasetPin(name="d", version="v"),
            config=OperatorConfig(),
        )["spec"]["template"]["spec"]["containers"][0]["resources"]
        == resources
    )


def test_quantities_are_checked_by_the_schema_too() -> None:
    for path in ("spec.resources.requests{}", "spec.resources.limits{}"):
        values = node("TrainingRun", path)
        assert values["x-kubernetes-int-or-string"] is True and values["pattern"] == QUANTITY_PATTERN
        assert node("TrainingRun", path.removesuffix("{}"))["maxProperties"] == 16
    assert node("ModelDeployment", "spec.server.resources.limits{}")["pattern"] == QUANTITY_PATTERN
    for good in ("1", "500m", "1.5Gi", ".5", "2e3", "1E", "100Ki"):
        assert re.fullmatch(QUANTITY_PATTERN, good), good
    for bad in ("-1", "+1", "lots", "1.5 Gi", "1Kb", "", "1e"):
        assert not re.fullmatch(QUANTITY_PATTERN, bad), bad


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("500m", "0.5"),
        (2, "2"),
        ("1Ki", "1024"),
        ("1k", "1000"),
        ("1.5Gi", str(3 * 2**29)),
        ("2e3", "2000"),
        ("1E", "1e18"),
        ("1E3", "1000"),
    ],
)
def test_quantities_compare_by_the_amount_they_stand_for(quantity: str | int, value: str) -> None:
    assert quantity_value(quantity) == Decimal(value)


# --------------------------------------------------------------------------------------- other bounds


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (TrainingRunSpec, {**TR, "evaluation": {"seed": 2**32}}, "spec.evaluation.seed"),
        (TrainingRunSpec, {**TR, "datasetWaitSeconds": 8 * 24 * 3600}, "spec.datasetWaitSeconds"),
        (DatasetSpec, {**DS, "schema": {"minRows": 10**10}}, "spec.schema.minRows"),
    ],
)
def test_numbers_without_a_sane_upper_bound_are_refused(model: type, body: dict, field: str) -> None:
    assert refusal(model, body).startswith(f"{field}: Input should be less than or equal to")
    kind = {TrainingRunSpec: "TrainingRun", DatasetSpec: "Dataset"}[model]
    assert "maximum" in node(kind, field)


def test_a_field_with_a_few_allowed_values_says_so_in_the_schema() -> None:
    assert node("Dataset", "spec.format")["enum"] == ["csv", "parquet", "auto"]
    assert refusal(DatasetSpec, {**DS, "format": "xlsx"}).startswith("spec.format: Input should be 'csv'")


def test_no_free_form_field_is_unbounded() -> None:
    for kind in RULES:
        for path, sub in _walk_all(schema_of(kind)["properties"]["spec"], "spec"):
            if sub.get("type") == "string":
                assert "enum" in sub or "maxLength" in sub, f"{kind} {path}"
            if sub.get("type") == "array":
                assert "maxItems" in sub, f"{kind} {path}"
            if sub.get("type") == "object" and "properties" not in sub:
                assert "maxProperties" in sub, f"{kind} {path}"


def _walk_all(schema: dict[str, Any], path: str):
    yield from _walk(schema, path)
    for inner_path, inner in list(_walk(schema, path)):
        if isinstance(inner.get("additionalProperties"), dict):
            yield inner_path + "{}", inner["additionalProperties"]


# ----------------------------------------------------------------------- the request a Job gets


def test_an_oversized_request_is_refused_before_the_job_exists() -> None:
    assert json.loads(request_env({"spec": {"a": 1}})) == {"spec": {"a": 1}}
    with pytest.raises(RequestTooLarge, match=r"more than the 131072 bytes the kernel allows .*MLOPS_REQUEST"):
        request_env({"spec": {"blob": "x" * JOB_ENV_VALUE_MAX_BYTES}})
    # A spec that slipped past the model (built without validation) still never becomes a futile Job.
    unchecked = TrainingRunSpec.model_validate(TR).model_copy(
        update={"model": TrainingRunSpec.model_validate(TR).model.model_copy(update={"params": {"x": "y" * 200_000}})}
    )
    with pytest.raises(RequestTooLarge):
        desired_training_job(
            name="r",
            namespace="ml",
            uid="u",
            spec=unchecked,
            dataset=DatasetPin(name="d", version="v"),
            config=OperatorConfig(),
        )


def test_the_largest_specs_the_models_accept_fit_in_the_jobs_environment() -> None:
    params = {"x": "y" * (PARAMS_MAX_BYTES - len(json.dumps({"x": ""})))}  # exactly at the bound
    key = "d" * 200 + ".example.com/" + "r" * 58
    resources = {part: {f"{key}{i:02d}": "1" * 60 for i in range(16)} for part in ("requests", "limits")}
    gates = [{"metric": "accuracy", "min": 0.123456789, "max": 0.987654321} for _ in range(16)]
    metrics = ["accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc"]
    body = {
        **TR,
        "model": {**TR["model"], "params": params, "preprocessing": ["sklearn.decomposition.PCA"] * 5},
        "resources": resources,
        "promotion": {"gates": gates, "beatChampion": {"metric": "accuracy"}},
        "evaluation": {"metrics": metrics},
    }
    run = accepted(TrainingRunSpec, body)
    pin = {"name": "d" * 63, "version": "sha256:" + "0" * 64, "snapshotUri": "x" * 400, "target": "t" * 253}
    job = desired_training_job(
        name="r" * TRAINING_RUN_NAME.max_length,
        namespace="n" * 63,
        uid="u",
        spec=run,
        dataset=DatasetPin.model_validate(pin),
        config=OperatorConfig(),
    )
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert len(f"MLOPS_REQUEST={env['MLOPS_REQUEST']}".encode()) < JOB_ENV_VALUE_MAX_BYTES

    values = [f"{'v' * 200}{i:03d}" for i in range(1000)]
    columns = [{"name": "c" * 253, "type": "category", "allowedValues": values[:590]}]
    source = {"url": {"url": "https://e.org/" + "p" * 2000, "sha256": "0" * 64}}
    data = accepted(DatasetSpec, {"source": source, "target": "t" * 253, "schema": {"columns": columns}})
    job = desired_dataset_check_job(
        name="d" * 63, namespace="n" * 63, uid="u", spec=data, check=1, config=OperatorConfig()
    )
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert len(f"MLOPS_REQUEST={env['MLOPS_REQUEST']}".encode()) < JOB_ENV_VALUE_MAX_BYTES
    assert len(env["MLOPS_REQUEST"]) > 120_000, "close to the bound"


# ------------------------------------------------------------------------ the dataset's source check


def test_a_pvc_source_on_the_artifact_claim_fails_at_once_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ARTIFACT_PVC", "store")
    monkeypatch.setattr(dataset_controller.kube, "read_pvc", lambda namespace, name: {"metadata": {"name": name}})
    monkeypatch.setattr(dataset_controller.kube, "read_namespace", lambda name: {"metadata": {"name": name}})
    monkeypatch.setattr(
        dataset_controller, "create_job", lambda *a, **k: pytest.fail("no Job for a source it cannot read")
    )
    spec = DatasetSpec.model_validate({"source": {"pvc": {"claimName": "store", "path": "iris.csv"}}})
    body = {"metadata": {"name": "d", "namespace": "ml", "uid": "u", "generation": 1}}
    observed = Observed(body=body, status={}, generation=1, now="2026-01-01T00:00:00Z")
    status = dataset_controller.start_check(spec, observed, DatasetStatus(), dataset_controller.Events())
    assert status.last_check is not None and not status.last_check.succeeded
    assert status.last_check.reason == "SourceUnavailable"
    assert "PersistentVolumeClaim store is the artifact store" in status.last_check.message
    assert "another claim" in status.last_check.message
    other = DatasetSpec.model_validate({"source": {"pvc": {"claimName": "raw-data", "path": "iris.csv"}}})
    assert dataset_controller._source_problem(other, "ml") is None


@pytest.mark.parametrize(
    ("uri", "other"),
    [
        ("s3://ml/artifacts/datasets/team-b/iris/abc/data.csv", "team-b"),
        ("s3://ml/artifacts/models/team-b/iris/r1-u/model.skops", "team-b"),
        ("s3://ml/artifacts/captures/team-b/iris/1-pod-0/records.jsonl", "team-b"),
        ("s3://ml/artifacts/datasets/./team-b/iris/abc/data.csv", "team-b"),
        ("s3://ml/artifacts//captures/team-b/x", "team-b"),
        ("s3://ml/artifacts/datasets/team-a/../team-b/iris/abc/data.csv", "team-b"),
        ("s3://ml/artifacts/datasets/team-b/../team-a/iris/abc/data.csv", "team-b"),  # literal on some servers
        ("s3://ml/artifacts/datasets", "every namespace"),
        ("s3://ml/artifacts/datasets/team-a/iris/abc/data.csv", None),  # its own
        ("s3://ml/raw/iris.csv", None),  # the bucket, outside the store
        ("s3://other-bucket/datasets/team-b/x.csv", None),
    ],
)
def test_a_source_among_another_namespaces_artifacts_is_refused(uri: str, other: str | None) -> None:
    from mlops_operator.resources.store import another_namespaces_artifacts

    assert another_namespaces_artifacts(uri, store_uri="s3://ml/artifacts", namespace="team-a") == other


def test_a_dataset_source_in_another_namespaces_store_prefix_starts_no_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ARTIFACT_STORE", "s3://mlops/artifacts")
    monkeypatch.setattr(dataset_controller.kube, "read_namespace", lambda name: {"metadata": {"name": name}})
    monkeypatch.setattr(dataset_controller, "create_job", lambda *a, **k: pytest.fail("a Job for a refused source"))
    spec = DatasetSpec.model_validate(
        {"source": {"s3": {"uri": "s3://mlops/artifacts/datasets/team-b/iris/v/data.csv"}}}
    )
    body = {"metadata": {"name": "d", "namespace": "team-a", "uid": "u", "generation": 1}}
    observed = Observed(body=body, status={}, generation=1, now="2026-01-01T00:00:00Z")
    status = dataset_controller.start_check(spec, observed, DatasetStatus(), dataset_controller.Events())
    assert status.last_check is not None and status.last_check.reason == "SourceRefused"
    assert "among the artifacts of team-b" in status.last_check.message


# ------------------------------------------------------------------------------- what users apply


def _manifests() -> list[dict[str, Any]]:
    texts = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    texts += [path.read_text() for path in sorted((REPO / "examples").rglob("*.yaml"))]
    return [
        doc
        for text in texts
        for doc in yaml.safe_load_all(text)
        if doc and doc.get("apiVersion") == "mlops.dev/v1alpha1"
    ]


@pytest.mark.parametrize("manifest", _manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}")
def test_the_readmes_manifests_and_the_examples_pass_every_rule(manifest: dict[str, Any]) -> None:
    model = {"Dataset": DatasetSpec, "TrainingRun": TrainingRunSpec, "ModelDeployment": ModelDeploymentSpec}
    accepted(model[manifest["kind"]], manifest["spec"])
    assert name_allowed(RULES[manifest["kind"]], manifest["metadata"]["name"])
