"""Building blocks shared by the three kinds: the camelCase base model, conditions, references.

Every field carries a description: it becomes the CRD's documentation (`kubectl explain`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# A Kubernetes object name (RFC 1123 subdomain) and a DNS label (what Deployment names derive from).
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
DnsLabel = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
# A Go-style duration as Argo Rollouts and Kubernetes write them: 30s, 5m, 1h30m.
Duration = Annotated[str, Field(max_length=32, pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")]
Sha256Version = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$")]
Timestamp = Annotated[str, Field(description="RFC 3339 time.", max_length=64)]


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


class ResourceRequirements(SpecModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, str | int] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 512Mi}."
    )
    limits: dict[str, str | int] | None = Field(
        default=None, description="Maximum resources, e.g. {cpu: 2, memory: 2Gi}."
    )


class LocalObjectReference(SpecModel):
    """A reference to an object in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")
