"""Where the pods the operator creates may run: nodeSelector, tolerations and topology spread, in the
shape of a Pod's fields and with the checks the API server makes on them.

Without the checks here, a value the API server refuses in a Pod would be accepted in the spec and only
fail when the operator applies the Deployment, far from the field that is wrong. Rules across fields
are CEL (the API server names the field) and validators (a spec that got past an older CRD becomes
Ready=False InvalidSpec with the same words).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .common import LABEL_VALUE_MAX, SpecModel

# A label key is a qualified name: an optional DNS subdomain prefix (at most 253 characters) and '/',
# then a name of at most 63 alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
LABEL_PREFIX_MAX = 253
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


def _label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if not re.fullmatch(LABEL_KEY_PATTERN, key) or len(prefix) > LABEL_PREFIX_MAX or len(name) > LABEL_VALUE_MAX:
        raise ValueError(
            f"{key[:80]!r} is not a label key: a name of at most 63 characters (letters, digits, '-', '_', '.'), "
            "optionally after a DNS subdomain and '/', e.g. kubernetes.io/arch"
        )
    return key


def _label_keys(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        _label_key(key)
    return labels


LabelKey = Annotated[
    str,
    Field(min_length=1, max_length=LABEL_PREFIX_MAX + 1 + LABEL_VALUE_MAX, pattern=LABEL_KEY_PATTERN),
    AfterValidator(_label_key),
]
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)]
# The schema bounds the values; a map's keys have no place in a CRD schema, so the model checks them.
NodeSelector = Annotated[dict[str, LabelValue], AfterValidator(_label_keys)]

TOLERATION_RULES = [
    {
        "rule": "has(self.key) || self.operator == 'Exists'",
        "message": "a toleration without a key tolerates every taint: its operator must be Exists",
    },
    {
        "rule": "self.operator != 'Exists' || !has(self.value) || self.value == ''",
        "message": "value must be empty when operator is Exists",
    },
    {
        "rule": "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        "message": "tolerationSeconds applies only to effect NoExecute",
    },
]
MIN_DOMAINS_RULE = {
    "rule": "!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
    "message": "minDomains applies only to whenUnsatisfiable DoNotSchedule",
}


class Toleration(SpecModel):
    """Lets the pods be scheduled on (or keep running on) nodes with a matching taint, as a Pod's toleration."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": TOLERATION_RULES}}

    key: LabelKey | None = Field(default=None, description="The taint's key; absent (with operator Exists): any key.")
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Equal: the taint's value is value; Exists: any value (then no value)."
    )
    value: LabelValue | None = Field(default=None, description="The taint's value, for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="The taint's effect; absent: any effect."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        description="With effect NoExecute: how long the pod stays on a node after the taint appears (then it "
        "is evicted); absent: for ever. Kubernetes gives every pod 300 s for node.kubernetes.io/not-ready "
        "and node.kubernetes.io/unreachable unless it sets its own.",
    )

    @model_validator(mode="after")
    def _as_kubernetes_checks_it(self) -> Toleration:
        broken = [
            self.key is None and self.operator != "Exists",
            self.operator == "Exists" and bool(self.value),
            self.toleration_seconds is not None and self.effect != "NoExecute",
        ]
        for rule, failed in zip(TOLERATION_RULES, broken, strict=True):
            if failed:
                raise ValueError(rule["message"])
        return self


class TopologySpreadConstraint(SpecModel):
    """Spread the pods evenly over the domains of a node label (each node, each zone), as a Pod's topology
    spread constraint. The operator selects the pods it counts: those of the same variant (stable or
    canary) and of the same ReplicaSet, so that a rolling update's new pods spread among themselves."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [MIN_DOMAINS_RULE]}}

    max_skew: int = Field(
        default=1, ge=1, le=100, description="Most pods one domain may have beyond the domain with the fewest."
    )
    topology_key: LabelKey = Field(
        description="The node label whose values are the domains: kubernetes.io/hostname (nodes), "
        "topology.kubernetes.io/zone (zones)."
    )
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule: a pod waits rather than exceed maxSkew; ScheduleAnyway: prefer the "
        "domains with fewer pods, but schedule anyway."
    )
    min_domains: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="With DoNotSchedule: while fewer domains exist, count the missing ones as empty (so each "
        "domain gets at most maxSkew pods).",
    )
    node_affinity_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Whether nodes the pods may not run on (nodeSelector) count; default Honor."
    )
    node_taints_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Whether nodes with taints the pods do not tolerate count; default Ignore."
    )

    @model_validator(mode="after")
    def _min_domains_only_when_strict(self) -> TopologySpreadConstraint:
        if self.min_domains is not None and self.when_unsatisfiable != "DoNotSchedule":
            raise ValueError(MIN_DOMAINS_RULE["message"])
        return self


def _one_per_key_and_action(constraints: list[TopologySpreadConstraint]) -> list[TopologySpreadConstraint]:
    pairs = [(c.topology_key, c.when_unsatisfiable) for c in constraints]
    repeated = sorted({f"{key} ({action})" for key, action in pairs if pairs.count((key, action)) > 1})
    if repeated:
        raise ValueError(
            f"more than one constraint for {', '.join(repeated)}: a pod has one per topologyKey and whenUnsatisfiable"
        )
    return constraints


# One constraint per (topologyKey, whenUnsatisfiable), as in a Pod: the schema's list-map keys, and the model.
SpreadConstraints = Annotated[
    list[TopologySpreadConstraint],
    Field(
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["topologyKey", "whenUnsatisfiable"],
        }
    ),
    AfterValidator(_one_per_key_and_action),
]
