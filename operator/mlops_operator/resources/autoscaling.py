"""The HorizontalPodAutoscaler of a ModelDeployment with spec.autoscaling, and what it reports, in words.

The autoscaler targets the ModelDeployment itself, through its scale subresource, as it would a
Deployment: it sets `spec.replicas`, and the operator splits that total between the stable and the
canary version as the rollout's weight says. The pods it averages are the ones `status.selector`
names: the server pods of both versions.
"""

from __future__ import annotations

from typing import Any

from ..api import GROUP, VERSION
from ..api.modeldeployment import AutoscalingSpec, ScalingRules
from ..api.names import MANAGED_BY, MANAGED_BY_LABEL
from .jobs import owner_reference
from .serving import selector_labels

# The per-pod request rate, as the custom metrics API serves it from the servers' mlops_requests_total
# (docs/autoscaling.md gives the prometheus-adapter rule that names it so).
REQUEST_RATE_METRIC = "mlops_requests_per_second"

# Scale out as soon as demand is there, in by half at most a minute, after 5 minutes of lower demand.
DEFAULT_BEHAVIOR: dict[str, dict[str, Any]] = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 4, "periodSeconds": 15},
        ],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
    },
}


def pod_selector(md: str) -> str:
    """The label selector of a ModelDeployment's server pods, both versions (its Service's selector)."""
    return ",".join(f"{key}={value}" for key, value in selector_labels(md).items())


def _quantity(value: float) -> str:
    """A Kubernetes quantity for a rate: whole milli-units (2.5 -> 2500m)."""
    return f"{max(1, round(value * 1000))}m"


def _rules(default: dict[str, Any], override: ScalingRules | None) -> dict[str, Any]:
    if override is None:
        return default
    return {**default, **override.model_dump(mode="json", by_alias=True, exclude_none=True)}


def desired_behavior(autoscaling: AutoscalingSpec) -> dict[str, Any]:
    """The operator's defaults, each field the user set replacing the default one."""
    behavior = autoscaling.behavior
    return {
        "scaleUp": _rules(DEFAULT_BEHAVIOR["scaleUp"], behavior.scale_up if behavior else None),
        "scaleDown": _rules(DEFAULT_BEHAVIOR["scaleDown"], behavior.scale_down if behavior else None),
    }


def desired_metric(autoscaling: AutoscalingSpec) -> dict[str, Any]:
    if autoscaling.cpu_utilization is not None:
        target = {"type": "Utilization", "averageUtilization": autoscaling.cpu_utilization}
        return {"type": "Resource", "resource": {"name": "cpu", "target": target}}
    target = {"type": "AverageValue", "averageValue": _quantity(autoscaling.requests_per_second or 0)}
    return {"type": "Pods", "pods": {"metric": {"name": REQUEST_RATE_METRIC}, "target": target}}


def desired_autoscaler(*, md: str, uid: str, autoscaling: AutoscalingSpec) -> dict[str, Any]:
    """The autoscaling/v2 HorizontalPodAutoscaler named like the ModelDeployment, scaling it."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": md,
            "labels": {**selector_labels(md), MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(kind="ModelDeployment", name=md, uid=uid)],
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "name": md},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [desired_metric(autoscaling)],
            "behavior": desired_behavior(autoscaling),
        },
    }


def autoscaler_summary(hpa: dict[str, Any] | None) -> str | None:
    """What the autoscaler reports, in words: its replicas, or why it cannot scale. The metric's current
    value is left out: it moves at every sync of the autoscaler, and status changes only on decisions
    (`kubectl get hpa` shows it)."""
    if hpa is None:
        return None
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    bounds = f"{spec.get('minReplicas', 1)} to {spec.get('maxReplicas')}"
    words = (
        f"HorizontalPodAutoscaler {hpa['metadata']['name']}: {status.get('currentReplicas', 0)} replicas, "
        f"wants {status.get('desiredReplicas', 0)} ({bounds})"
    )
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("AbleToScale", "ScalingActive") and condition.get("status") == "False":
            words += f"; {condition['type']}=False ({condition.get('reason')}): {condition.get('message', '')}"
    return words
