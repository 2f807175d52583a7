"""The CRDs are generated from the models: checked-in YAML matches, and the schemas are structural."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from mlops_operator.api import crd
from support import REPO


@pytest.mark.parametrize("filename", sorted(crd.crd_files()))
def test_checked_in_crd_matches_the_models(filename: str) -> None:
    checked_in = (REPO / "crds" / filename).read_text()
    assert checked_in == crd.crd_files()[filename], f"crds/{filename} is stale: run `make crds`"


def test_no_stray_crd_files() -> None:
    assert sorted(p.name for p in (REPO / "crds").glob("*.yaml")) == sorted(crd.crd_files())


def _walk(node: dict[str, Any], path: str):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_schema_is_structural_and_documented(info: crd.KindInfo) -> None:
    schema = crd.crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema["properties"]["spec"], "spec"):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs"} & node.keys(), path
        typed = (
            "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        )
        assert typed, f"{path} has no type"
        if not path.endswith(("[]", "{}")) and path != "spec":
            assert node.get("description"), f"{path} has no description"
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_crd_names_status_and_columns(info: crd.KindInfo) -> None:
    generated = yaml.safe_load(crd.render_crd(info))
    names = generated["spec"]["names"]
    assert names["categories"] == ["mlops"]
    assert names["shortNames"] == info.short_names
    version = generated["spec"]["versions"][0]
    scale = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    # kubectl scale and a HorizontalPodAutoscaler reach a ModelDeployment's replicas through `scale`.
    expected = {"status": {}, "scale": scale} if info.kind == "ModelDeployment" else {"status": {}}
    assert version["subresources"] == expected
    assert any(col["name"] == "Ready" for col in version["additionalPrinterColumns"])


def test_cel_rules_are_present_where_openapi_cannot_say_it() -> None:
    specs = [
        crd.crd_for(i)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] for i in crd.KINDS
    ]
    text = "\n".join(
        rule["message"]
        for spec in specs
        for _, node in _walk(spec, "spec")
        for rule in node.get("x-kubernetes-validations", [])
    )
    for message in (
        "exactly one of builtin, url, configMap, pvc, s3 or capture must be set",
        "setWeight must not decrease from one step to the next",
        "url must be an http:// or https:// URL",
        "set exactly one of name or trainingRun",
        "strategy.canary.steps[].analysis.metrics must name metrics of analysis.metrics",
        "must be at least 1m and at most 168h",
        "must be at least 1s and at most 1h",
        "must be at least 1s and at most 24h",
        "must be whole numbers of units, e.g. 90s, not 1.5m",
        "a toleration without a key tolerates every taint: its operator must be Exists",
        "value must be empty when operator is Exists",
        "tolerationSeconds applies only to effect NoExecute",
        "minDomains applies only to whenUnsatisfiable DoNotSchedule",
        # options that do not apply to the variant chosen
        "format applies only to url, configMap, pvc and s3 sources",
        "refreshInterval does not apply to a builtin source",
        "window applies only when the guard is enabled",
        "minSamples applies only to the accuracy, precision, recall, f1, estimatedAccuracy, mae, rmse templates",
        # expressions: placeholders a query can have, bounds a template can be compared with
        "the only placeholders are {{version}} and {{namespace}}",
        "the threshold of errorRate, accuracy, precision, recall, f1, estimatedAccuracy is a fraction from 0 to 1",
        "threshold must not be negative",
        "the bound of accuracy, precision, recall, f1, estimatedAccuracy is a fraction from 0 to 1",
        # references between fields
        "evaluation.metrics must be metrics of the estimator's task",
        "promotion.gates[].metric must be metrics of the estimator's task",
        "promotion.beatChampion.metric must be a metric of the estimator's task",
        "promotion.gates[].metric must be one of evaluation.metrics",
        "promotion.beatChampion.metric must be one of evaluation.metrics",
        "triggers.quality.template must measure the template's estimator",
        "a retraining template must not pin datasetRef.version",
        "analysis.metrics[].template must measure the estimator retraining trains",
    ):
        assert message in text


def test_the_success_condition_pattern_is_a_comparison_with_a_number() -> None:
    schema = crd.crd_for(crd.KINDS[2])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    metric = schema["properties"]["spec"]["properties"]["analysis"]["properties"]["metrics"]["items"]
    pattern = re.compile(metric["properties"]["successCondition"]["pattern"])
    for condition in ("result < 0.05", "result>=1", "result != -.5", "result <= 1e-05", "result == 3."):
        assert pattern.search(condition), condition
    for condition in ("result < e", "result < 1.2.3", "result < --", "result < .", "result < 5%", "result <"):
        assert not pattern.search(condition), condition


def _rules_with_field_paths(node: dict[str, Any], path: str):
    for rule in node.get("x-kubernetes-validations") or []:
        if "fieldPath" in rule:
            yield path, node, rule


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_every_rules_field_path_names_a_field_of_its_node(info: crd.KindInfo) -> None:
    """A rule's fieldPath is where the API server's error points: it must name a field below the rule (the
    API server refuses a CRD whose fieldPath does not resolve)."""
    spec = crd.crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    found = 0
    for path, node in _walk(spec, "spec"):
        for _, _, rule in _rules_with_field_paths(node, path):
            target = node
            for name in rule["fieldPath"].lstrip(".").split("."):
                assert name in target.get("properties", {}), f"{path}: {rule['fieldPath']}"
                target = target["properties"][name]
            found += 1
    assert found > 0


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_metadata_constrains_only_the_name(info: crd.KindInfo) -> None:
    """The API server refuses a CRD whose metadata schema says anything but name and generateName."""
    schema = crd.crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    metadata = schema["properties"]["metadata"]
    assert metadata.keys() == {"type", "properties"} and metadata["properties"].keys() == {"name"}
    name = metadata["properties"]["name"]
    assert name["type"] == "string" and name["maxLength"] <= 63 and name["pattern"].startswith("^[a-z")


def test_no_cel_rule_reads_a_string_or_list_without_a_bound() -> None:
    """The API server refuses a CRD whose CEL rules may cost too much; a rule's cost grows with the sizes
    of what it reads, so every node a rule sits on, and every list or string inside it, is bounded."""
    for info in crd.KINDS:
        spec = crd.crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for path, node in _walk(spec, "spec"):
            if not node.get("x-kubernetes-validations"):
                continue
            for inner_path, inner in _walk(node, path):
                if inner.get("type") == "string" and "enum" not in inner:
                    assert "maxLength" in inner, f"{info.kind} {inner_path}"
                if inner.get("type") == "array":
                    assert "maxItems" in inner, f"{info.kind} {inner_path}"
