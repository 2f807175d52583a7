"""Building blocks shared by the three kinds: the camelCase base model, conditions, references, and the
bounds every free-form value has.

Every field carries a description: it becomes the CRD's documentation (`kubectl explain`). A bound is
written once, here or on its field, and reaches both the CRD schema (the API server refuses the object,
naming the field) and the model (a spec that got past an older CRD becomes Ready=False InvalidSpec with
the same words). What a schema cannot say (a key's format, a size in bytes, requests above limits) is
checked by the model alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from .clock import parse_duration

# A Kubernetes object name (RFC 1123 subdomain) and a DNS label (what Deployment names derive from).
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
DnsLabel = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
Sha256Version = Annotated[str, Field(max_length=71, pattern=r"^sha256:[a-f0-9]{64}$")]
Sha256Hex = Annotated[str, Field(max_length=64, pattern=r"^[a-f0-9]{64}$")]  # a pin on a source's bytes
Timestamp = Annotated[str, Field(description="RFC 3339 time.", max_length=64)]

# ------------------------------------------------------------------------------------ object names

RFC1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RFC1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE_MAX = 63


@dataclass(frozen=True)
class NameRule:
    """What the name of one of our kinds may be, and why: the CRD puts it on metadata.name.

    A name is the prefix of its children's names (`<name>-train`, `<name>-stable`, `<name>-canary`,
    `<name>-check-<n>`) and a label value on them and on their pods. Label values have at most 63
    characters and start and end alphanumeric; no dots, since a Job's pods are named after it and a pod's
    hostname is a DNS label; a Service name is an RFC 1035 label, which also starts with a letter.
    """

    max_length: int
    pattern: str
    why: str
    # Endings a new name may not have: those its children's names end with, so that no two objects of
    # the kind want a child of the same name (`a-stable` would want the Service `a` names `a-stable`).
    reserved_endings: tuple[str, ...] = ()

    def creation_rules(self) -> list[dict[str, Any]]:
        """CEL rules (at the schema's root: the only place a rule sees metadata.name) checked when an
        object is created and never again, so an object named before a rule existed keeps its status
        writable (`optionalOldSelf`: on an update the rule holds whatever the name)."""
        if not self.reserved_endings:
            return []
        endings = " || ".join(f"self.metadata.name.endsWith('{e}')" for e in self.reserved_endings)
        return [
            {
                "rule": f"oldSelf.hasValue() || !({endings})",
                "optionalOldSelf": True,
                "message": f"metadata.name may not end with {' or '.join(self.reserved_endings)}: "
                "the children of another object of this kind are named so",
                "reason": "FieldValueInvalid",
            }
        ]

    @property
    def field(self) -> Any:
        """The pydantic type of a reference to an object of this kind (a reference to a name that
        cannot exist is refused as early as the name itself)."""
        return Annotated[str, Field(min_length=1, max_length=self.max_length, pattern=self.pattern)]

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of metadata.name: the API server applies it on top of its own name rules."""
        return {"type": "string", "maxLength": self.max_length, "pattern": self.pattern, "description": self.why}


DATASET_NAME = NameRule(
    max_length=LABEL_VALUE_MAX,
    pattern=RFC1123_LABEL,
    why="At most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(an RFC 1123 label). The name is the label mlops.dev/dataset on its check Jobs, `<name>-check-<n>`; "
    "those are shortened with a hash when longer than 63 characters, as the checks are numbered without end.",
)
TRAINING_RUN_NAME = NameRule(
    max_length=LABEL_VALUE_MAX - len("-train"),
    pattern=RFC1123_LABEL,
    why="At most 57 characters: lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(an RFC 1123 label). The training Job is `<name>-train`, within 63 characters, and the name is the model "
    "version: a label value on every server pod that serves it.",
)
MODEL_DEPLOYMENT_NAME = NameRule(
    max_length=LABEL_VALUE_MAX - len("-canary"),
    pattern=RFC1035_LABEL,
    why="At most 56 characters: lowercase letters, digits and '-', starting with a letter and ending with a "
    "letter or digit (an RFC 1035 label, as Service names are). The Service is `<name>`, the Deployments and "
    "Services of the two versions `<name>-stable` and `<name>-canary`, exactly these names (an HTTPRoute's "
    "backendRefs name them), within 63 characters; not ending with -stable or -canary (another "
    "ModelDeployment's children are named so).",
    reserved_endings=("-stable", "-canary"),
)
# References to our kinds (a ModelDeployment is referred to by nothing).
DatasetName = DATASET_NAME.field
TrainingRunName = TRAINING_RUN_NAME.field

# ------------------------------------------------------------------------------------------ durations


# A Go-style duration as Argo Rollouts and Kubernetes write them: 30s, 5m, 1h30m. CEL's duration() reads
# the same syntax, so the API server compares them with bounds; every duration field has both.
def exactly_one_rule(fields: list[str], message: str) -> dict[str, str]:
    """A CEL rule: exactly one of the (optional) fields is set."""
    has = ", ".join(f"has(self.{f})" for f in fields)
    return {"rule": f"[{has}].filter(x, x).size() == 1", "message": message}


def http_url_rule(field: str) -> dict[str, Any]:
    """CEL: an http(s) URL with a host and no whitespace anywhere (a pasted URL with a space or a newline
    is a mistake the API server can name; requests would only fail later, far from the spec)."""
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.matches('^https?://[^/[:space:]]+[^[:space:]]*$')",
                "message": f"{field} must be an http:// or https:// URL with a host and no whitespace",
            }
        ]
    }


DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


def bounded_duration(shortest: str, longest: str, *, whole_units: bool = False) -> Any:
    """A duration from `shortest` to `longest` (both included); `whole_units`: no fractions (90s, not
    1.5m), for a duration that also becomes a Prometheus range, which refuses fractions."""
    rules = [
        {
            "rule": f"duration(self) >= duration('{shortest}') && duration(self) <= duration('{longest}')",
            "message": f"must be at least {shortest} and at most {longest}",
        }
    ]
    if whole_units:
        rules.append({"rule": "!self.contains('.')", "message": "must be whole numbers of units, e.g. 90s, not 1.5m"})
    low, high = parse_duration(shortest), parse_duration(longest)

    def within(value: str) -> str:
        if not low <= parse_duration(value) <= high:
            raise ValueError(rules[0]["message"])
        if whole_units and "." in value:
            raise ValueError(rules[1]["message"])
        return value

    return Annotated[
        str,
        Field(max_length=32, pattern=DURATION_PATTERN, json_schema_extra={"x-kubernetes-validations": rules}),
        AfterValidator(within),
    ]


# ------------------------------------------------------------------------------------------ sizes

# The operator hands a spec to its Jobs in one environment variable (MLOPS_REQUEST); the kernel refuses
# to start a process with an environment string over 128 KiB ("argument list too long"). The free-form
# parts of a spec are bounded well below that, so the request always fits (resources.jobs checks it too).
JOB_ENV_VALUE_MAX_BYTES = 128 * 1024


def job_wire(spec: BaseModel) -> dict[str, Any]:
    """A spec as it travels to a Job: JSON-ready, camelCase, unset optional fields left out (the Job
    parses it with the same model, which gives them back). None inside free-form values is kept."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def json_size(value: Any) -> int:
    """Bytes of `value` as JSON, as the operator writes it into a Job's environment."""
    return len(json.dumps(value).encode())


def at_most_bytes(limit: int, *, what: str) -> AfterValidator:
    """A validator refusing a value larger than `limit` bytes as JSON (as it travels to a Job), saying why."""

    def small_enough(value: Any) -> Any:
        size = json_size(job_wire(value) if isinstance(value, BaseModel) else value)
        if size > limit:
            raise ValueError(
                f"{what} take {size} bytes as JSON, more than {limit}: they travel to a Job in an "
                f"environment variable, which the kernel limits to {JOB_ENV_VALUE_MAX_BYTES // 1024} KiB"
            )
        return value

    return AfterValidator(small_enough)


# ------------------------------------------------------------------------------------------ models


class SpecModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StatusModel(BaseModel):
    """Base of every status model: camelCase on the wire, unknown fields kept out of the way."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """The state of one aspect of the object, in the shape of metav1.Condition."""

    type: str = Field(description="Type of the condition, CamelCase (Ready, Validated, Succeeded, ...).")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable explanation of the reason.")
    last_transition_time: Timestamp = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this condition was computed from."
    )


# ------------------------------------------------------------------------------------------ resources

# A Kubernetes quantity without a sign (Pods refuse negative resources): 500m, 2, 1.5Gi, 1e3. The
# pattern is apimachinery's (as controller-gen writes it for resource.Quantity) less the sign.
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
QUANTITY_MAX_LENGTH = 64


def _quantity(value: str | int) -> str | int:
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{value} is negative: resources are amounts")
    if isinstance(value, str) and (len(value) > QUANTITY_MAX_LENGTH or not re.fullmatch(QUANTITY_PATTERN, value)):
        raise ValueError(f"{value[:QUANTITY_MAX_LENGTH]!r} is not a quantity, e.g. 500m, 2 or 1.5Gi")
    return value


# The schema says int-or-string with the pattern (applied to strings); the model says it in words.
Quantity = Annotated[
    str | int,
    Field(json_schema_extra={"pattern": QUANTITY_PATTERN, "maxLength": QUANTITY_MAX_LENGTH}),
    AfterValidator(_quantity),
]
# The resource names a container may request: the standard ones, hugepages of a size, and extended
# resources qualified by a domain (nvidia.com/gpu). A Pod with any other name is refused when the Job
# or Deployment is created, long after the spec was accepted.
RESOURCE_NAME = re.compile(
    r"^(cpu|memory|ephemeral-storage|hugepages-[0-9]+(Ki|Mi|Gi)"
    r"|[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$"
)
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def quantity_value(quantity: str | int) -> Decimal:
    """The amount a quantity stands for (`500m` → 0.5, `1Ki` → 1024), to compare requests with limits."""
    if isinstance(quantity, int):
        return Decimal(quantity)
    number, suffix = re.fullmatch(r"([0-9.]+)(.*)", quantity).groups()  # type: ignore[union-attr]
    if suffix in _SUFFIXES:
        return Decimal(number) * _SUFFIXES[suffix]
    return Decimal(quantity)  # an exponent: 1e3, 2E-3


class ResourceRequirements(SpecModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Minimum resources, e.g. {cpu: 500m, memory: 512Mi}: cpu, memory, ephemeral-storage, "
        "hugepages-<size> or an extended resource qualified by a domain (nvidia.com/gpu), each a quantity; "
        "none more than its limit.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Maximum resources, e.g. {cpu: 2, memory: 2Gi}, with the same names as requests.",
    )

    @model_validator(mode="after")
    def _names_known_and_requests_within_limits(self) -> ResourceRequirements:
        for part, amounts in (("requests", self.requests), ("limits", self.limits)):
            unknown = sorted(name for name in amounts or {} if not RESOURCE_NAME.match(name))
            if unknown:
                raise ValueError(
                    f"{part} names {unknown}: a resource is cpu, memory, ephemeral-storage, hugepages-<size> "
                    "or an extended resource qualified by a domain, e.g. nvidia.com/gpu"
                )
        for name, request in (self.requests or {}).items():
            limit = (self.limits or {}).get(name)
            if limit is not None and quantity_value(request) > quantity_value(limit):
                raise ValueError(f"requests.{name} ({request}) is more than limits.{name} ({limit})")
        return self


class LocalObjectReference(SpecModel):
    """A reference to an object in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")
