"""The Helm chart's static files: CRDs in step with the models, a strict values schema, a dashboard
whose queries name metrics that really exist. (Rendering is tested with helm in
tests/integration/test_chart_offline.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from mlops_operator.api import crd
from mlops_operator.server.monitoring import AccuracyWindow, DriftWindow, ServerMetrics
from support import REPO

CHART = REPO / "charts/mlops-operator"


@pytest.mark.parametrize("filename", sorted(crd.crd_files()))
def test_chart_crd_matches_the_models(filename: str) -> None:
    in_chart = (CHART / "crds" / filename).read_text()
    assert in_chart == crd.crd_files()[filename], f"charts/mlops-operator/crds/{filename} is stale: run `make crds`"


def test_chart_crds_are_ours_only() -> None:
    assert {p.name for p in (CHART / "crds").iterdir()} == set(crd.crd_files())


def test_chart_version_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert chart["apiVersion"] == "v2"
    assert package and chart["appVersion"] == package.group(1)


# --- values.schema.json ------------------------------------------------------------------------------------------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

# The keywords the schema may use: the small validator below implements exactly these.
KEYWORDS = {
    "$schema",
    "title",
    "description",
    "type",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "enum",
    "minimum",
    "minLength",
    "maxLength",
    "pattern",
    "uniqueItems",
    "minItems",
    "anyOf",
}
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Errors of `value` against the draft-07 subset in KEYWORDS (jsonschema is not a dependency)."""
    if "anyOf" in schema:
        if all(schema_errors(value, option, path) for option in schema["anyOf"]):
            return [f"{path or '/'}: matches none of anyOf"]
        return []
    expected = schema.get("type")
    if expected and (not isinstance(value, TYPES[expected]) or (expected != "boolean" and isinstance(value, bool))):
        return [f"{path or '/'}: {value!r} is not of type {expected}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < minimum {schema['minimum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: length of {value!r} out of bounds")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            errors.append(f"{path}: items are not unique")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}/{i}")
    if isinstance(value, dict):
        errors += [f"{path}: {key!r} is required" for key in schema.get("required", []) if key not in value]
        properties, additional = schema.get("properties", {}), schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{path}/{key}")
            elif additional is False:
                errors.append(f"{path}: additional property {key!r} not allowed")
            elif isinstance(additional, dict):
                errors += schema_errors(item, additional, f"{path}/{key}")
    return errors


def _nodes(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}/{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}/{key}")
    for i, option in enumerate(schema.get("anyOf", [])):
        yield from _nodes(option, f"{path}/anyOf/{i}")


def test_values_schema_is_draft7_and_strict() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    for path, node in _nodes(SCHEMA):
        assert set(node) <= KEYWORDS, f"{path or '/'}: keywords {set(node) - KEYWORDS} not checked by this test"
        assert node.get("type", "object") in TYPES, path
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or '/'} must refuse unknown keys"
            assert set(node.get("required", [])) <= set(node["properties"]), path
        if "pattern" in node:
            re.compile(node["pattern"])


def test_values_yaml_conforms_and_is_fully_described() -> None:
    assert schema_errors(VALUES, SCHEMA) == []
    described = set(SCHEMA["properties"]) - {"global"}
    assert set(VALUES) == described, "every value has a default in values.yaml and a place in the schema"


SPREAD = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"replicas": -1}, "minimum"),
        ({"replicas": "2"}, "not of type integer"),
        ({"colour": "blue"}, "additional property 'colour'"),
        ({"image": {**VALUES["image"], "pullPolicy": "Sometimes"}}, "not one of"),
        ({"artifacts": {**VALUES["artifacts"], "hostPath": "relative/dir"}}, "does not match"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "does not match"),
        ({"resources": {"requests": {"cpu": "a lot"}}}, "anyOf"),
        ({"topologySpreadConstraints": [{**SPREAD, "maxSkew": 0}]}, "minimum"),
        ({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "h"}]}, "'whenUnsatisfiable' is required"),
        ({"topologySpreadConstraints": [{**SPREAD, "topologykey": "h"}]}, "additional property 'topologykey'"),
    ],
)
def test_values_schema_refuses_bad_values(change: dict[str, Any], message: str) -> None:
    errors = schema_errors({**VALUES, **change}, SCHEMA)
    assert any(message in error for error in errors), errors


# --- the Grafana dashboard ---------------------------------------------------------------------------------------


def _family_names(families) -> set[str]:
    """The series names a scrape shows for these metric families (prometheus_client adds the suffixes)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}
    names = set()
    for family in families:
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def exported_metrics() -> set[str]:
    from mlops_operator import operator_metrics

    server = ServerMetrics(model="m", version="v1", drift=DriftWindow(None, []), accuracy=AccuracyWindow())
    names = _family_names(server.registry.collect())
    for value in vars(operator_metrics).values():
        if isinstance(value, MetricWrapperBase):
            names |= _family_names(value.collect())
    return names


def test_dashboard_queries_name_exported_metrics() -> None:
    dashboard = json.loads((CHART / "dashboards/mlops-canary.json").read_text())
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource", "namespace", "model"}
    assert next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")["query"] == "prometheus"
    exported = exported_metrics()
    assert {"mlops_requests_total", "mlops_modeldeployment_canary_weight"} <= exported
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\b(mlops_[a-z0-9_]+)\b", target["expr"]))
            assert names, f"panel {panel['title']!r} queries no mlops metric"
            assert names <= exported, f"panel {panel['title']!r} queries unknown metrics {names - exported}"
            used |= names
    for name in ("mlops_request_duration_seconds_bucket", "mlops_feedback_correct_total", "mlops_feature_psi"):
        assert name in used
