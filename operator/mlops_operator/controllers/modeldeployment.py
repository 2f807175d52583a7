"""ModelDeployment controller: serve the target version, roll new ones out through canary steps.

Each reconcile: resolve the target (the champion of spec.model.name, or a pinned TrainingRun), observe
the canary pods and, when one is due, take a measurement on Prometheus; the pure state machine
(rollout.canary) decides; this applies the Deployments and the Service and writes status once.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import kopf

from .. import kube
from ..api import conditions as c
from ..api.modeldeployment import ModelDeploymentSpec
from ..config import OperatorConfig
from ..registry import champions
from ..resources.jobs import child_name
from ..resources.routing import routed_weight, weight_patch
from ..resources.serving import desired_server_deployment, desired_service, desired_variant_service
from ..rollout.analysis import measure
from ..rollout.canary import COMMANDS, Observation, Target, measurement_due, next_rollout, replica_split
from .common import Observed, Outcome, register_reconciler
from .metrics import CANARY_WEIGHT, ROLLBACKS


def resolve_target(spec: ModelDeploymentSpec, namespace: str) -> tuple[Target | None, str, str]:
    """(target, model name, why there is none)."""
    if spec.model.training_run:
        run = kube.get_custom("trainingruns", namespace, spec.model.training_run)
        if run is None:
            return None, "", f"TrainingRun {spec.model.training_run} does not exist"
        model_name = run["spec"]["model"]["name"]
    else:
        model_name = spec.model.name or ""
        found = champions.current_champion(namespace, model_name, exclude="")
        if found is None:
            return None, model_name, f"model {model_name} has no promoted version yet"
        run = kube.get_custom("trainingruns", namespace, found.name)
    model = ((run or {}).get("status") or {}).get("model")
    if not model:
        return None, model_name, f"TrainingRun {run['metadata']['name']} has no stored model yet"
    return Target(version=model["version"], model_uri=model["uri"], sha256=model["sha256"]), model_name, ""


def ready_replicas_of(deployment: Any, version: str) -> int:
    """Ready pods of the Deployment that run `version` (0 while its rollout to that version is unfinished)."""
    if deployment is None or not deployment.status:
        return 0
    labels = deployment.spec.template.metadata.labels or {}
    s = deployment.status
    if labels.get("mlops.dev/version") != version[:63] or (s.observed_generation or 0) < deployment.metadata.generation:
        return 0
    return min(s.updated_replicas or 0, s.ready_replicas or 0)


def reconcile_modeldeployment(spec: ModelDeploymentSpec, observed: Observed, logger: Any) -> Outcome:
    namespace, name, now = observed.namespace, observed.name, observed.now
    status = dict(observed.status)
    target, model, why = resolve_target(spec, namespace)
    moment = dt.datetime.now(dt.UTC)  # rollout timing is to the millisecond (status.now is whole seconds)
    canary = status.get("canary")
    canary_dep = kube.read_or_none(kube.apps().read_namespaced_deployment, child_name(name, "canary"), namespace)
    canary_ready = ready_replicas_of(canary_dep, canary["version"]) if canary else 0
    measurement, message = None, ""
    if status.get("stable") and measurement_due(spec, status, moment):
        judged = canary or status["stable"]
        prometheus = spec.prometheus_url or os.environ.get("MLOPS_PROMETHEUS_URL")
        measurement, message, results = measure(
            spec.analysis.metrics, prometheus_url=prometheus, namespace=namespace, model=model,
            version=judged["version"], window=spec.analysis.interval if spec.analysis.interval.endswith("m") else "1m",
        )  # fmt: skip
        status["lastAnalysis"] = [
            {"metric": r.metric, "phase": r.phase, "value": r.value, "message": r.message, "measuredAt": now}
            for r in results
        ]
    annotations = observed.body["metadata"].get("annotations") or {}
    commands = {command: annotations[key] for command, key in COMMANDS.items() if annotations.get(key)}
    decision = next_rollout(
        spec,
        status,
        Observation(
            now=moment,
            target=target,
            canary_ready_replicas=canary_ready,
            measurement=measurement,
            measurement_message=message,
            commands=commands,
        ),  # fmt: skip
    )
    status = decision.status
    for kind, reason, words in decision.events:
        (kopf.info if kind == "Normal" else kopf.warn)(observed.body, reason=reason, message=words)
    if status.get("stable"):
        status = apply_serving(spec, status, observed=observed, model=model, weight=decision.canary_weight)
    record_metrics(observed, previous=observed.status, status=status)
    conditions, phase = deployment_conditions(status, why=why, generation=observed.generation, now=now)
    return Outcome(
        status={**status, "conditions": conditions, "phase": phase, "observedGeneration": observed.generation},
        requeue_after=decision.requeue_after,
    )


def apply_serving(spec: ModelDeploymentSpec, status: dict[str, Any], *, observed: Observed, model: str,
                  weight: int) -> dict[str, Any]:  # fmt: skip
    """Apply the Deployments, the Services and the traffic split; return status with what was achieved."""
    name, namespace, config = observed.name, observed.namespace, OperatorConfig.from_env()
    canary = status.get("canary")
    gateway = spec.traffic_routing.mode == "GatewayAPI"
    stable_replicas, canary_replicas = replica_split(spec.replicas, weight)
    if gateway:  # the route splits traffic: the stable keeps all its pods, the canary gets pods for its share
        stable_replicas = spec.replicas
    apps, core = kube.apps(), kube.core()
    for variant, version, replicas in (("stable", status["stable"], stable_replicas),
                                       ("canary", canary or status["stable"], canary_replicas)):  # fmt: skip
        body = desired_server_deployment(md=name, uid=observed.uid, variant=variant, spec=spec, model=model,
                                         version=version, replicas=replicas, config=config)  # fmt: skip
        applied = kube.server_side_apply(apps.patch_namespaced_deployment, namespace, body)
        ready = (applied.status.ready_replicas or 0) if applied.status else 0
        key = "stable" if variant == "stable" else ("canary" if canary else None)
        if key:
            status[key] = {**status[key], "replicas": replicas, "readyReplicas": ready}
        variant_service = desired_variant_service(md=name, uid=observed.uid, variant=variant)
        kube.server_side_apply_if_changed(core.patch_namespaced_service, namespace, variant_service)
    kube.server_side_apply_if_changed(
        core.patch_namespaced_service, namespace, desired_service(md=name, uid=observed.uid, spec=spec)
    )
    if gateway:
        achieved, status["routing"] = route_traffic(spec, namespace=namespace, md=name, weight=weight if canary else 0)
    else:
        achieved = round(100 * canary_replicas / max(stable_replicas + canary_replicas, 1)) if canary else 0
        status["routing"] = f"replica ratio behind Service {name}: {stable_replicas} stable, {canary_replicas} canary"
    status["stable"]["weight"] = 100 - achieved
    if canary:
        status["canary"]["weight"] = achieved
    return status


def route_traffic(spec: ModelDeploymentSpec, *, namespace: str, md: str, weight: int) -> tuple[int, str]:
    """Set our backendRefs' weights on the HTTPRoute; (achieved canary weight, what happened in words)."""
    route_name = spec.traffic_routing.gateway_api.http_route
    stable, canary = child_name(md, "stable"), child_name(md, "canary")
    route = kube.get_httproute(namespace, route_name)
    if route is None:
        return 0, f"HTTPRoute {route_name} does not exist: traffic cannot be shifted"
    operations = weight_patch(route, stable=stable, canary=canary, canary_weight=weight)
    if operations:
        route = kube.json_patch_httproute(namespace, route_name, operations)
    achieved = routed_weight(route, stable=stable, canary=canary)
    if achieved is None:
        return 0, f"HTTPRoute {route_name} has no rule with backendRefs to both {stable} and {canary}"
    return achieved, f"HTTPRoute {route_name}: {100 - achieved}% {stable}, {achieved}% {canary}"


def record_metrics(observed: Observed, *, previous: dict[str, Any], status: dict[str, Any]) -> None:
    weight = (status.get("canary") or {}).get("weight", 0)
    CANARY_WEIGHT.labels(observed.namespace, observed.name).set(weight)
    if (status.get("degraded") or {}) != (previous.get("degraded") or {}) and status.get("degraded"):
        ROLLBACKS.labels(observed.namespace, observed.name, status["degraded"]["reason"]).inc()


def deployment_conditions(status: dict[str, Any], *, why: str, generation: int | None, now: str) -> tuple[list, str]:
    stable, canary, degraded = status.get("stable"), status.get("canary"), status.get("degraded")
    conditions = status.get("conditions") or []

    def put(type_: str, state: str, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = c.set_condition(conditions, type_=type_, status=state, reason=reason, message=message,
                                     generation=generation, now=now)  # fmt: skip

    if not stable:
        put(c.AVAILABLE, "False", c.MODEL_NOT_FOUND, why)
        put(c.READY, "False", c.MODEL_NOT_FOUND, why)
        return conditions, "Pending"
    available = (stable.get("readyReplicas") or 0) > 0
    put(c.AVAILABLE, "True" if available else "False", "ServingStable" if available else "StableNotReady",
        f"{stable['version']}: {stable.get('readyReplicas', 0)}/{stable.get('replicas', 0)} pods ready")  # fmt: skip
    if canary:
        pause = status.get("pauseReason")
        words = f"{canary['version']} at {canary.get('weight', 0)}%, step {canary['stepIndex']}"
        put(c.PROGRESSING, "True", pause or "CanaryInProgress", words + (f" (paused: {pause})" if pause else ""))
    else:
        put(c.PROGRESSING, "False", "RolloutComplete", f"{stable['version']} serves 100%")
    if degraded:
        put(c.DEGRADED, "True", degraded["reason"], degraded["message"])
    else:
        put(c.DEGRADED, "False", "NoRollback", "no rollback since the last promotion")
    if degraded:
        put(c.READY, "False", degraded["reason"], degraded["message"])
        phase = "Degraded"
    elif canary:
        put(c.READY, "False", "RolloutInProgress", f"rolling out {canary['version']}")
        phase = "Paused" if status.get("pauseReason") else "Progressing"
    elif not available:
        put(c.READY, "False", "StableNotReady", f"waiting for pods of {stable['version']}")
        phase = "Progressing"
    else:
        put(c.READY, "True", "ServingStable", f"{stable['version']} serves 100%")
        phase = "Healthy"
    return conditions, phase


register_reconciler("modeldeployments", ModelDeploymentSpec, reconcile_modeldeployment, resync_seconds=1)
