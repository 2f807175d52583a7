"""Generates the CustomResourceDefinitions from the pydantic models (`mlops-operator crds`).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema: no $ref,
every node typed, no anyOf for optional fields, no additionalProperties beside properties.
`structural_schema()` does that translation; CEL rules travel through `json_schema_extra`.

Names are constrained on `metadata.name` with OpenAPI (maxLength, pattern), the one part of metadata a
CRD may constrain, rather than with a CEL rule at the root: the API server's error then names
`metadata.name` (a root rule reports `<nil>`), the constraint costs nothing in the CEL budget, and
validation ratcheting leaves an object created before the rule writable (a root rule would be evaluated
again on every status write, and lock the operator out of an old object's status). What a pattern cannot
say without look-ahead — a name's reserved endings — is a root rule checked on creation only
(`NameRule.creation_rules`, `optionalOldSelf`), so an old object is never locked out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from . import GROUP, VERSION
from .common import DATASET_NAME, MODEL_DEPLOYMENT_NAME, TRAINING_RUN_NAME, NameRule
from .dataset import DatasetSpec, DatasetStatus
from .modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from .names import DATASET, MODEL_DEPLOYMENT, TRAINING_RUN
from .trainingrun import TrainingRunSpec, TrainingRunStatus

# Keys of JSON Schema that have no place (or another meaning) in a CRD schema.
_DROPPED_KEYS = {"title", "$defs", "additionalProperties", "const", "examples"}


@dataclass(frozen=True)
class KindInfo:
    """Everything the CRD of one kind needs besides its models."""

    kind: str
    plural: str
    short_names: list[str]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    name_rule: NameRule
    printer_columns: list[dict[str, str]] = field(default_factory=list)
    scale: dict[str, str] | None = None  # the scale subresource's paths, for kinds that have one

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _ready_column() -> dict[str, str]:
    return {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


def _age_column() -> dict[str, str]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS = [
    KindInfo(
        kind=DATASET.kind,
        plural=DATASET.plural,
        short_names=[DATASET.short_name],
        spec_model=DatasetSpec,
        status_model=DatasetStatus,
        name_rule=DATASET_NAME,
        printer_columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            _ready_column(),
            {"name": "Rows", "type": "integer", "jsonPath": ".status.rows"},
            {"name": "Version", "type": "string", "jsonPath": ".status.version"},
            _age_column(),
        ],
    ),
    KindInfo(
        kind=TRAINING_RUN.kind,
        plural=TRAINING_RUN.plural,
        short_names=[TRAINING_RUN.short_name],
        spec_model=TrainingRunSpec,
        status_model=TrainingRunStatus,
        name_rule=TRAINING_RUN_NAME,
        printer_columns=[
            {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            _ready_column(),
            {"name": "Metric", "type": "string", "jsonPath": ".status.primaryMetric"},
            {"name": "Value", "type": "string", "jsonPath": ".status.primaryValue"},
            {"name": "Promotion", "type": "string", "jsonPath": ".status.promotion.decision"},
            {"name": "Estimator", "type": "string", "jsonPath": ".spec.model.estimator", "priority": 1},
            {
                "name": "scikit-learn",
                "type": "string",
                "jsonPath": ".status.model.environment.scikitLearn",
                "priority": 1,
            },
            _age_column(),
        ],
    ),
    KindInfo(
        kind=MODEL_DEPLOYMENT.kind,
        plural=MODEL_DEPLOYMENT.plural,
        short_names=[MODEL_DEPLOYMENT.short_name],
        spec_model=ModelDeploymentSpec,
        status_model=ModelDeploymentStatus,
        name_rule=MODEL_DEPLOYMENT_NAME,
        printer_columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            _ready_column(),
            {"name": "Stable", "type": "string", "jsonPath": ".status.stable.version"},
            {"name": "Canary", "type": "string", "jsonPath": ".status.canary.version"},
            {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight"},
            {"name": "Step", "type": "integer", "jsonPath": ".status.canary.stepIndex"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
            _age_column(),
        ],
        # `kubectl scale` and a HorizontalPodAutoscaler set spec.replicas; the selector finds the server
        # pods of both versions, whose metrics the autoscaler averages.
        scale={
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    ),
]


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model, as a CRD wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _translate(raw, raw.get("$defs", {}))


def _translate(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:  # siblings of a $ref (description, CEL rules) override the referenced schema
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}
        rules = target.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
        if rules:
            merged["x-kubernetes-validations"] = rules
        node = merged
    if "anyOf" in node:
        node = _collapse_any_of(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and not _is_scalar(value)):
            continue
        if key == "properties":
            out[key] = {name: _translate(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _translate(value, defs)
        else:
            out[key] = value
    additional = node.get("additionalProperties")
    if isinstance(additional, dict) and "properties" not in node:
        out["additionalProperties"] = _translate(additional, defs)
    elif additional is True and "properties" not in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "const" in node and "enum" not in node:  # a one-value Literal: JSON Schema's const is no CRD keyword
        out["enum"] = [node["const"]]
    # JSON Schema's numeric exclusive bound is OpenAPI v3.0's bound plus a flag (once: a node can come by twice).
    if not isinstance(out.get("exclusiveMinimum", True), bool):
        out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
    if not isinstance(out.get("exclusiveMaximum", True), bool):
        out["maximum"], out["exclusiveMaximum"] = out["exclusiveMaximum"], True
    return out


def _collapse_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Optional[X] becomes X (optional = not required); str | int becomes int-or-string, keeping the
    string's pattern and length (they apply to string values only; an integer's bounds would apply to
    both, so the model alone checks those)."""
    options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
    types = sorted(o.get("type", "") for o in options)
    if len(options) == 1:
        inner = options[0]
        if "$ref" in inner:
            inner = _translate(inner, defs)
        return {**inner, **node}
    if types == ["integer", "string"]:
        text = next(o for o in options if o.get("type") == "string")
        kept = {k: v for k, v in text.items() if k in ("pattern", "maxLength", "minLength")}
        return {**kept, **node, "x-kubernetes-int-or-string": True}
    raise ValueError(f"cannot express anyOf {options} in a structural schema")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def crd_for(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = structural_schema(info.spec_model)
    status_schema = structural_schema(info.status_model)
    # kopf keeps its per-handler progress here (see controllers.settings), never in annotations.
    status_schema["properties"]["kopf"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Bookkeeping of the operator's handler framework (kopf).",
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": info.short_names,
                "categories": ["mlops"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}, **({"scale": info.scale} if info.scale else {})},
                    "additionalPrinterColumns": info.printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (info.spec_model.__doc__ or "")
                            .strip()
                            .split("\n")[0]
                            .replace("What the user wants", f"A {info.kind}"),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {
                                    "type": "object",
                                    "properties": {"name": info.name_rule.schema()},
                                },
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                            **(
                                {"x-kubernetes-validations": rules}
                                if (rules := info.name_rule.creation_rules())
                                else {}
                            ),
                        }
                    },
                }
            ],
        },
    }


def render_crd(info: KindInfo) -> str:
    """One CRD as YAML, with a header saying where it comes from."""
    header = "# Generated by `mlops-operator crds` from the models in operator/mlops_operator/api; do not edit.\n"
    return header + yaml.safe_dump(crd_for(info), sort_keys=False, width=120)


def render_all() -> str:
    """All CRDs as one multi-document YAML stream."""
    return "---\n".join(render_crd(info) for info in KINDS)


def crd_files() -> dict[str, str]:
    """File name → YAML of every CRD, as checked in under crds/ and the chart's crds/."""
    return {f"{GROUP}_{info.plural}.yaml": render_crd(info) for info in KINDS}
