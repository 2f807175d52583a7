"""ModelDeployment controller: serve the target version, roll new ones out through canary steps.

Each reconcile: resolve the target (the champion of spec.model.name, or a pinned TrainingRun), observe
the canary pods and, when one is due, take a measurement on Prometheus; the pure state machine
(rollout.canary) decides; this applies the Deployments and the Service and writes status once.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import threading
from typing import Any

from ..adapters import kube
from ..adapters.prometheus import measure
from ..api import conditions as c
from ..api.clock import format_time, utc_now
from ..api.common import Condition
from ..api.modeldeployment import (
    AnalysisResult,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from ..api.reasons import ConditionStatus, ConditionType, DeploymentPhase, EventReason, Reason
from ..config import OperatorConfig
from ..modelformat.environment import current_environment
from ..modelformat.replay import served_on_other_libraries
from ..operator_metrics import CANARY_WEIGHT, ROLLBACKS
from ..registry import MODEL_LABEL, PROMOTED_LABEL
from ..registry.rollbacks import marks_to_write, retried_versions, rollback_record
from ..resources.autoscaling import autoscaler_summary, desired_autoscaler, pod_selector
from ..resources.jobs import child_name
from ..resources.ownership import controlled_by
from ..resources.routing import routed_weight, weight_patch
from ..resources.serving import (
    ServingPlan,
    capture_plan,
    desired_receipt_key_secret,
    plan_serving,
    ready_replicas_of,
    replicas_of,
    running_version,
    selector_labels,
    server_refusal,
    stalled_at,
    upgrade_rolls,
)
from ..rollout.analysis import metrics_to_judge, refused_estimate, refused_prometheus_url, refused_queries
from ..rollout.canary import APPROVE_INPUTS_ANNOTATION, COMMANDS, Observation, Target, next_rollout, variant_replicas
from ..rollout.timing import measurement_due, next_wake, progress_deadline_exceeded
from .cache import CACHE
from .children import cached_child, ensure_child
from .contract import Event, Events, Observed, Outcome, invalid_spec_outcome
from .loop import register_reconciler
from .measurements import take_measurement
from .reads import namespace_config, read_child
from .retraining import TRIGGERS_CHECKED, reconcile_retraining


def _champion(namespace: str, model: str) -> dict[str, Any] | None:
    """The run labelled champion of `model` (the newest decision, should a hand-over be under way)."""
    found = CACHE.list("trainingruns", namespace, labels={MODEL_LABEL: model, PROMOTED_LABEL: "true"})
    return max(
        found, key=lambda r: ((r.get("status") or {}).get("promotion") or {}).get("decidedAt") or "", default=None
    )


def resolve_target(spec: ModelDeploymentSpec, namespace: str) -> tuple[Target | None, str, str]:
    """(target, model name, why there is none), from the cached TrainingRuns (their events wake us)."""
    if spec.model.training_run:
        run = CACHE.get("trainingruns", namespace, spec.model.training_run)
        if run is None and (run := kube.get_custom("trainingruns", namespace, spec.model.training_run)):
            CACHE.observe("trainingruns", run)  # there, but its watch has not listed it yet (a restart)
        if run is None:
            return None, "", f"TrainingRun {spec.model.training_run} does not exist"
        model_name = run["spec"]["model"]["name"]
    else:
        model_name = spec.model.name or ""
        run = _champion(namespace, model_name)
        if run is None:
            return None, model_name, f"model {model_name} has no promoted version yet"
    model = (run.get("status") or {}).get("model")
    if not model:
        return None, model_name, f"TrainingRun {run['metadata']['name']} has no stored model yet"
    rolled_back, why = rollback_record(run), ""
    if rolled_back is not None:
        name = run["metadata"]["name"]
        why = (
            f"TrainingRun {name} was rolled back by ModelDeployment {rolled_back.model_deployment} "
            f"({rolled_back.reason}); try it again with: kubectl mlops retry {name}"
        )
        if not spec.model.training_run:  # a champion rolled back loses the title in a moment: hold until then
            return None, model_name, why
    # A pinned version rolled back elsewhere may be canaried here, never served first at 100 % (rollout.canary).
    target = Target(
        version=model["version"],
        model_uri=model["uri"],
        sha256=model["sha256"],
        signature=model.get("signatureSha256"),
        rolled_back=why or None,
    )
    return target, model_name, why


def canary_share_routed(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int | None:
    """The canary's share the HTTPRoute carried at the last apply (status.canary.weight is what was achieved);
    None when the traffic follows the pods."""
    if spec.traffic_routing.mode != "GatewayAPI":
        return None
    return status.canary.weight if status.canary else 0


def canary_refusal(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, *, namespace: str, md: str, now: dt.datetime
) -> str | None:
    """Why the canary's servers refused its version, read (one list of its pods) only once its progress
    deadline has come: the rollback then names the cause (resources.serving.server_refusal)."""
    canary = status.canary
    if canary is None or not progress_deadline_exceeded(spec, canary, now):
        return None
    return pods_refusal(
        namespace, selector_labels(md, "canary"), deployment=child_name(md, "canary"), version=canary.version
    )


# What the model servers run on: the operator's own image (OperatorConfig.image), so its own libraries.
SERVERS_ENVIRONMENT = functools.cache(current_environment)
CHECKED_SO = {
    "replay": "its servers predicted its golden rows as in training before they became ready",
    "strict": "reproducibility strict: its servers refuse to serve it",
    "off": "reproducibility off: nothing checks that it predicts as in training",
}


def other_libraries(spec: ModelDeploymentSpec, namespace: str, status: ModelDeploymentStatus) -> str:
    """The served versions trained on other libraries than the servers run, and what that means; "" if none.
    With spec.server.image Training a version that recorded its image is served on it: the same libraries."""
    recorded = served_environments(namespace, status)
    if spec.server.image == "Training":
        recorded = {v: env for v, env in recorded.items() if not env.get("image")}
    differing = served_on_other_libraries(recorded, SERVERS_ENVIRONMENT())
    return f"{differing} ({CHECKED_SO[spec.server.reproducibility]})" if differing else ""


def served_environments(namespace: str, status: ModelDeploymentStatus) -> dict[str, dict[str, str]]:
    """{version: the environment it was trained with} for the versions served (their TrainingRuns' status)."""
    found = {}
    for served in (status.stable, status.canary):
        run = CACHE.get("trainingruns", namespace, served.version) if served else None
        environment = (((run or {}).get("status") or {}).get("model") or {}).get("environment")
        if served and environment:
            found[served.version] = environment
    return found


def uncalibrated_versions(namespace: str, versions: set[str]) -> list[str]:
    """The versions whose TrainingRun reports a model without a confidence calibration."""
    found = []
    for version in sorted(versions):
        run = CACHE.get("trainingruns", namespace, version)
        model = ((run or {}).get("status") or {}).get("model")
        if model and not model.get("calibrated"):
            found.append(version)
    return found


def reconcile_modeldeployment(spec: ModelDeploymentSpec, observed: Observed, logger: Any) -> Outcome:
    namespace, name, now = observed.namespace, observed.name, observed.now
    config = OperatorConfig.from_env()
    refused = refused_queries(spec, allow_raw_queries=config.allow_raw_queries) or refused_prometheus_url(
        spec, default=config.prometheus_url, allowed=config.prometheus_allowed_urls
    )
    if refused:  # reported like a spec the schema let through: nothing is served or changed
        return invalid_spec_outcome(observed, refused)
    before = ModelDeploymentStatus.model_validate(observed.status)
    status = before.model_copy(deep=True)
    target, model, why = resolve_target(spec, namespace)
    judged = {v.version for v in (status.stable, status.canary) if v} | ({target.version} if target else set())
    refused = refused_estimate(spec, uncalibrated_versions(namespace, judged))
    if refused:  # as a spec the schema let through: the version would be judged on an estimate it cannot give
        return invalid_spec_outcome(observed, refused)
    moment = utc_now()
    canary_dep = cached_child("deployments", namespace, child_name(name, "canary"), uid=observed.uid)
    canary_ready = ready_replicas_of(canary_dep, status.canary.version) if status.canary else 0
    measurement, message, running = None, "", False
    if status.stable and measurement_due(spec, status, moment):
        judged = status.canary or status.stable
        prometheus = spec.prometheus_url or OperatorConfig.from_env().prometheus_url
        metrics = metrics_to_judge(spec, status)
        window = spec.analysis.interval if spec.analysis.interval.endswith("m") else "1m"
        taken = take_measurement(
            ("modeldeployments", namespace, name),
            version=judged.version,
            measure=lambda: measure(
                metrics,
                prometheus_url=prometheus,
                namespace=namespace,
                model=model,
                version=judged.version,
                window=window,
            ),
        )
        running = taken is None
        if taken is not None:
            measurement, message, results = taken
            status.last_analysis = [
                AnalysisResult(
                    metric=r.metric, phase=r.phase, value=r.value, message=r.message, measured_at=format_time(moment)
                )
                for r in results
            ]
    annotations = observed.body["metadata"].get("annotations") or {}
    commands = {command: annotations[key] for command, key in COMMANDS.items() if annotations.get(key)}
    failed_runs = {v: run for v in status.failed_versions if (run := CACHE.get("trainingruns", namespace, v))}
    routed = canary_share_routed(spec, status)
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
            retried=retried_versions(status, failed_runs),
            inputs_approved_for=annotations.get(APPROVE_INPUTS_ANNOTATION),
            routed_weight=routed,
            canary_refusal=canary_refusal(spec, status, namespace=namespace, md=name, now=moment),
        ),
    )
    status = decision.status
    mark_rolled_back_versions(status, observed=observed)
    events = Events(Event(reason, words, warning=kind != "Normal") for kind, reason, words in decision.events)
    status.selector = pod_selector(name)
    stall_wake = None
    if status.stable:
        stall_wake = apply_serving(
            spec, status, observed=observed, model=model, weight=decision.canary_weight, routed=routed
        )
        status.autoscaler = apply_autoscaling(spec, observed=observed)
    retrain_wake = None
    if spec.retraining and status.stable:
        status.retraining, retrain_wake = reconcile_retraining(
            spec, status, observed=observed, model=model, now=moment, events=events
        )
    else:
        TRIGGERS_CHECKED.pop((observed.namespace, observed.name), None)
    stalled = (status.server_upgrade or "").startswith("stalled")
    if stalled and status.server_upgrade != before.server_upgrade:
        events.warn(reason=EventReason.UPGRADE_STALLED, message=status.server_upgrade or "")
    record_metrics(observed, previous=before, status=status)
    conditions, phase = deployment_conditions(
        status,
        why=why,
        generation=observed.generation,
        now=now,
        other_libraries=other_libraries(spec, namespace, status),
    )
    status.conditions, status.phase, status.observed_generation = conditions, phase, observed.generation
    # The deadlines as they are after applying (the pods the canary now needs are in status).
    # Waiting for an upgrade-roll slot: a roll that finishes wakes us (controllers/watches.py); look again
    # in 30 s all the same, should that event be missed.
    slot_wake = moment + dt.timedelta(seconds=30) if (status.server_upgrade or "").startswith("waiting") else None
    wakes = (next_wake(spec, status, moment, measurement_running=running), retrain_wake, slot_wake, stall_wake)
    wake = min(
        (w for w in wakes if w),
        default=None,
    )
    return Outcome(status=status.model_dump(mode="json", by_alias=True, exclude_none=True), wake_at=wake, events=events)


def apply_autoscaling(spec: ModelDeploymentSpec, *, observed: Observed) -> str | None:
    """The HorizontalPodAutoscaler spec.autoscaling asks for, or none (ours deleted once the spec drops
    it); what it reports, in words."""
    namespace, name = observed.namespace, observed.name
    if spec.autoscaling is None:
        found = CACHE.get("horizontalpodautoscalers", namespace, name)  # only ours, or labelled so, are watched
        if found is not None and controlled_by(found, observed.uid):
            kube.delete_autoscaler(namespace, name, uid=found["metadata"]["uid"])
        return None
    desired = desired_autoscaler(md=name, uid=observed.uid, autoscaling=spec.autoscaling)
    return autoscaler_summary(ensure_child("horizontalpodautoscalers", namespace, desired, uid=observed.uid))


def apply_serving(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    *,
    observed: Observed,
    model: str,
    weight: int,
    routed: int | None,
) -> dt.datetime | None:
    """Apply the serving plan (resources.serving.plan_serving) and the traffic split; record in status what
    was achieved. `routed`: the canary's share on the route the rollout's decision read. Returns when to
    look again by itself (a stalled upgrade roll whose pods said nothing yet; a route: route_look_again)."""
    name, namespace = observed.name, observed.namespace
    config, _ = namespace_config(namespace)  # the servers read the store their model's URI names
    canary, stable = status.canary, status.stable
    assert stable is not None
    gateway = spec.traffic_routing.mode == "GatewayAPI"
    _, status.capture = capture_plan(spec, md=name, namespace=namespace, config=config)
    if status.receipt_key_secret is None:  # once: its name is recorded in status, it is never read back
        key = desired_receipt_key_secret(md=name, uid=observed.uid, key=secrets.token_bytes(32))
        status.receipt_key_secret = kube.create_secret(namespace, key)
    # Read through on a miss: right after a restart the watch may not have listed them yet, and a plan made
    # without them would re-template running servers at once (resources/serving.py, "Upgrade rolls").
    deployments = {
        v: read_child("deployments", namespace, child_name(name, v), uid=observed.uid) for v in ("stable", "canary")
    }

    recorded = served_environments(namespace, status)
    trained_in = {version: env["image"] for version, env in recorded.items() if "image" in env}

    def plan(may_upgrade: bool) -> ServingPlan:
        return plan_serving(
            spec,
            md=name,
            uid=observed.uid,
            namespace=namespace,
            model=model,
            stable=stable,
            canary=canary,
            wanted=variant_replicas(spec.replicas, weight, gateway=gateway),
            deployments=deployments,
            config=config,
            receipt_secret=status.receipt_key_secret,
            may_upgrade=may_upgrade,
            trained_in=trained_in,
        )

    planned = plan(may_upgrade=False)
    servers = {"namespace": namespace, "deployments": deployments, "uid": observed.uid}
    applied: dict[str, dict[str, Any]] = {}
    status.server_upgrade = None
    if planned.upgrade == "waiting":  # the servers' template changed by the operator alone: a slot first
        with UPGRADE_SLOTS:
            uids = {
                (md["metadata"].get("namespace") or "", md["metadata"]["name"]): md["metadata"]["uid"]
                for md in CACHE.all("modeldeployments")
            }
            rolling = upgrade_rolls(CACHE.all("deployments"), uids) - {(namespace, name)}
            if len(rolling) < config.server_upgrades_at_once:
                planned = plan(may_upgrade=True)
                applied = apply_server_deployments(
                    planned, namespace=namespace, deployments=deployments, uid=observed.uid
                )
            else:
                status.server_upgrade = (
                    "waiting to roll the servers onto the operator's new pod template: "
                    f"{len(rolling)} ModelDeployments roll at once (serverUpgrades.maxConcurrent "
                    f"{config.server_upgrades_at_once})"
                )
    if not applied:
        applied = apply_server_deployments(planned, **servers)
    if planned.upgrade == "rolling":
        status.server_upgrade = "rolling the servers onto the operator's new pod template, one surge pod at a time"
    look_again = None
    stalled = stalled_upgrade(namespace, name, applied)
    if stalled is not None:
        status.server_upgrade, look_again = stalled
    pods = 0
    for variant_plan, served in ((planned.stable, stable), (planned.canary, canary)):
        result = applied[variant_plan.variant]
        pods += int((result.get("status") or {}).get("replicas") or 0)
        if served is not None:
            served.replicas = variant_plan.replicas
            served.ready_replicas = int((result.get("status") or {}).get("readyReplicas") or 0)
    for service in planned.services:
        ensure_child("services", namespace, service, uid=observed.uid)
    status.replicas = pods  # what the scale subresource reports: the pods there are, as their Deployments count
    if gateway:
        wanted = weight if canary else 0
        achieved, status.routing = route_traffic(spec, namespace=namespace, md=name, weight=wanted)
        route_look = route_look_again(wanted=wanted, achieved=achieved, recorded=routed if canary else None)
        if route_look is not None:
            look_at = utc_now() + route_look
            look_again = min(look_again, look_at) if look_again else look_at
    else:
        achieved = planned.canary_share
        status.routing = (
            f"replica ratio behind Service {name}: {planned.stable.replicas} stable, {planned.canary.replicas} canary"
        )
    stable.weight = 100 - achieved
    if canary:
        canary.weight = achieved
    return look_again


# Held while a reconcile counts the upgrade rolls in progress and starts one, so that two ModelDeployments
# reconciled at once do not both take the last slot (the count is read from the watched Deployments).
UPGRADE_SLOTS = threading.Lock()


def apply_server_deployments(
    planned: ServingPlan, *, namespace: str, deployments: dict[str, dict[str, Any] | None], uid: str
) -> dict[str, dict[str, Any]]:
    """Apply the two server Deployments of a plan (or only scale one the plan leaves as it is); each as applied."""
    applied = {}
    for variant_plan in (planned.stable, planned.canary):
        if variant_plan.body is None:
            existing = deployments[variant_plan.variant]
            applied[variant_plan.variant] = scale_child(namespace, existing, variant_plan.replicas)  # type: ignore[arg-type]
        else:
            applied[variant_plan.variant] = ensure_child("deployments", namespace, variant_plan.body, uid=uid)
    return applied


STALL_LOOK = dt.timedelta(minutes=5)  # how long after a roll stalled its pods' words are looked for


def stalled_upgrade(
    namespace: str, md: str, applied: dict[str, dict[str, Any]]
) -> tuple[str, dt.datetime | None] | None:
    """Why an upgrade roll of these servers stalled (resources.serving.stalled_at), in words with what its new
    pods said (one list of the variant's pods, only while stalled), and when to look again for what they say;
    None if none stalled. Its new pods may still be starting: they are looked at again for a while (their
    restarts change no Deployment, so no event would come), not for ever (a pod that never starts says nothing)."""
    for variant, deployment in applied.items():
        since = stalled_at(deployment)
        if since is None:
            continue
        version = running_version(deployment) or "its version"
        said = pods_refusal(
            namespace, selector_labels(md, variant), deployment=deployment["metadata"]["name"], version=version
        )
        words = (
            f"stalled: the {variant} servers of {version} on the operator's new pod template did not become ready "
            f"within progressDeadlineSeconds{f' ({said})' if said else ''}; the old pods keep serving it"
        )
        now = utc_now()
        return words, (now + dt.timedelta(seconds=30) if not said and now < since + STALL_LOOK else None)
    return None


def pods_refusal(namespace: str, labels: dict[str, str], *, deployment: str, version: str) -> str | None:
    """What a server pod of `deployment` said when it refused `version` (resources.serving.server_refusal);
    None also when the pods cannot be read: their words explain a decision, they never hold one up."""
    try:
        pods = kube.list_pods(namespace, labels)
    except kube.ApiException:
        return None
    return server_refusal(pods, deployment=deployment, version=version)


def scale_child(namespace: str, deployment: dict[str, Any], replicas: int) -> dict[str, Any]:
    """Only the replica count of a Deployment, leaving its pods' template as it is."""
    if replicas_of(deployment) == replicas:
        return deployment
    scaled = kube.scale_deployment(namespace, deployment["metadata"]["name"], replicas)
    CACHE.observe("deployments", scaled)
    return scaled


# How soon a ModelDeployment looks at its HTTPRoute again by itself: a route it may not be watching (see
# route_traffic) sends no event, so neither its fix nor the weight just set would wake the rollout.
ROUTE_LOOK, ROUTE_SET_LOOK = dt.timedelta(seconds=10), dt.timedelta(seconds=1)


def route_look_again(*, wanted: int, achieved: int, recorded: int | None) -> dt.timedelta | None:
    """When to look again after setting the route: while it does not carry the share wanted (missing, not
    ours to set, changed meanwhile) every ROUTE_LOOK; at once when this apply changed the share the
    rollout's next decision reads (status.canary.weight, `recorded` before it); else not for the route."""
    if achieved != wanted:
        return ROUTE_LOOK
    if recorded is not None and achieved != recorded:
        return ROUTE_SET_LOOK
    return None


def route_traffic(spec: ModelDeploymentSpec, *, namespace: str, md: str, weight: int) -> tuple[int, str]:
    """Set our backendRefs' weights on the HTTPRoute; (achieved canary weight, what happened in words)."""
    route_name = spec.traffic_routing.gateway_api.http_route
    stable, canary = child_name(md, "stable"), child_name(md, "canary")
    route = CACHE.get("httproutes", namespace, route_name)  # the user's routes are watched, not read each time
    watched = route is not None
    if not watched:
        # Absent, or not watched: kopf looks for a new API only when a CRD event comes, and may look before
        # the API server serves it (the Gateway API installed after the operator started). One read tells.
        route = kube.read_httproute(namespace, route_name)
    if route is None:
        return 0, f"HTTPRoute {route_name} does not exist: traffic cannot be shifted"
    operations = weight_patch(route, stable=stable, canary=canary, canary_weight=weight)
    if operations:
        try:
            route = kube.json_patch_httproute(namespace, route_name, operations)
        except kube.ApiException as error:
            if error.status not in (404, 422):  # 422: a `test` failed, the route changed since it was read
                raise
            CACHE.forget("httproutes", route)
            return 0, f"HTTPRoute {route_name} changed while its weights were set: set again at the next look"
        if watched:  # the watch keeps it current from here; an unwatched route is read again next time
            CACHE.observe("httproutes", route)
    achieved = routed_weight(route, stable=stable, canary=canary)
    if achieved is None:
        return 0, f"HTTPRoute {route_name} has no rule with backendRefs to both {stable} and {canary}"
    return achieved, f"HTTPRoute {route_name}: {100 - achieved}% {stable}, {achieved}% {canary}"


def mark_rolled_back_versions(status: ModelDeploymentStatus, *, observed: Observed) -> None:
    """Write the rollback mark on each version rolled back here whose TrainingRun lacks it (registry.rollbacks):
    the registry then moves the champion title back and no ModelDeployment serves the version first."""
    namespace = observed.namespace
    runs = {v: run for v in status.failed_versions if (run := CACHE.get("trainingruns", namespace, v))}
    for version, patch in marks_to_write(status, runs, md=observed.name).items():
        try:
            CACHE.observe("trainingruns", kube.patch_metadata("trainingruns", namespace, version, patch))
        except kube.ApiException as error:
            if error.status != 404:  # a run deleted since: nothing to mark
                raise


def record_metrics(observed: Observed, *, previous: ModelDeploymentStatus, status: ModelDeploymentStatus) -> None:
    CANARY_WEIGHT.labels(observed.namespace, observed.name).set(status.canary.weight if status.canary else 0)
    if status.degraded is not None and status.degraded != previous.degraded:
        ROLLBACKS.labels(observed.namespace, observed.name, status.degraded.reason).inc()


def deployment_conditions(
    status: ModelDeploymentStatus, *, why: str, generation: int | None, now: str, other_libraries: str = ""
) -> tuple[list[Condition], DeploymentPhase]:
    """Available, Progressing, Degraded, EnvironmentDiffers (`other_libraries`: which served versions were
    trained on other libraries, in words) and the aggregate Ready, and the phase, from the rollout's status."""
    stable, canary, degraded = status.stable, status.canary, status.degraded
    conditions = list(status.conditions)
    T, F = ConditionStatus.TRUE, ConditionStatus.FALSE

    def put(type_: ConditionType, state: ConditionStatus, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = c.set_condition(
            conditions,
            type_=type_,
            status=state,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
            typed=True,
        )

    if stable is None:
        put(ConditionType.AVAILABLE, F, Reason.MODEL_NOT_FOUND, why)
        put(ConditionType.READY, F, Reason.MODEL_NOT_FOUND, why)
        return conditions, DeploymentPhase.PENDING
    available = stable.ready_replicas > 0
    put(
        ConditionType.AVAILABLE,
        T if available else F,
        Reason.SERVING_STABLE if available else Reason.STABLE_NOT_READY,
        f"{stable.version}: {stable.ready_replicas}/{stable.replicas} pods ready",
    )
    if other_libraries:
        put(ConditionType.ENVIRONMENT_DIFFERS, T, Reason.ENVIRONMENT_DIFFERS, other_libraries)
    else:
        words = "every version served runs on the libraries it was trained with"
        put(ConditionType.ENVIRONMENT_DIFFERS, F, Reason.SAME_ENVIRONMENT, words)
    if canary is not None:
        pause = status.pause_reason
        words = f"{canary.version} at {canary.weight}%, step {canary.step_index}"
        put(
            ConditionType.PROGRESSING,
            T,
            pause or Reason.CANARY_IN_PROGRESS,
            words + (f" (paused: {pause})" if pause else ""),
        )
    else:
        put(ConditionType.PROGRESSING, F, Reason.ROLLOUT_COMPLETE, f"{stable.version} serves 100%")
    if degraded is not None:
        put(ConditionType.DEGRADED, T, degraded.reason, degraded.message)
        put(ConditionType.READY, F, degraded.reason, degraded.message)
        return conditions, DeploymentPhase.DEGRADED
    put(ConditionType.DEGRADED, F, Reason.NO_ROLLBACK, "no rollback since the last promotion")
    if canary is not None:
        put(ConditionType.READY, F, Reason.ROLLOUT_IN_PROGRESS, f"rolling out {canary.version}")
        return conditions, DeploymentPhase.PAUSED if status.pause_reason else DeploymentPhase.PROGRESSING
    if not available:
        put(ConditionType.READY, F, Reason.STABLE_NOT_READY, f"waiting for pods of {stable.version}")
        return conditions, DeploymentPhase.PROGRESSING
    put(ConditionType.READY, T, Reason.SERVING_STABLE, f"{stable.version} serves 100%")
    return conditions, DeploymentPhase.HEALTHY


register_reconciler("modeldeployments", ModelDeploymentSpec, reconcile_modeldeployment)
