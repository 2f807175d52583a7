"""The serving children of a ModelDeployment: one Deployment per variant (stable, canary) and one Service.

Both variants carry the same `mlops.dev/deployment` label the Service selects, so with the default
traffic routing the share of each is the share of its ready pods (replica ratio).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..api.clock import parse_duration, parse_time
from ..api.modeldeployment import ModelDeploymentSpec, ServerSpec, VersionStatus
from ..api.names import (
    DEPLOYMENT_LABEL,
    DESIRED_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    NAME_LABEL,
    SERVER_INPUTS_ANNOTATION,
    SERVER_NAME,
    SERVER_TEMPLATE_ANNOTATION,
    UPGRADE_ROLL_ANNOTATION,
    VARIANT_LABEL,
    VERSION_LABEL,
)
from ..config import OperatorConfig
from .jobs import child_name, owner_reference, restricted_container_security, restricted_pod_security
from .ownership import controlled_by
from .store import serving_store_access

SERVER_CONTAINER = "server"
# Where a server finds the key it signs feedback receipts with (the Secret of desired_receipt_key_secret).
RECEIPT_KEY_DIR = "/etc/mlops/receipts"
RECEIPT_KEY_FILE = "key"


def selector_labels(md: str, variant: str | None = None) -> dict[str, str]:
    labels = {NAME_LABEL: SERVER_NAME, DEPLOYMENT_LABEL: md[:63]}
    return {**labels, VARIANT_LABEL: variant} if variant else labels


def _pod_field(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def pod_scheduling(server: ServerSpec, selector: dict[str, str]) -> dict[str, Any]:
    """The pod spec's scheduling fields from server settings; none when they are unset, so a spec without
    them keeps the pod template it always had (an operator upgrade rolls no server pod).

    A spread constraint counts the pods of one variant (`selector`) and of one ReplicaSet
    (`pod-template-hash`): in a rolling update the new pods spread among themselves, not around old
    pods about to go (which would leave them bunched on a few nodes once those are gone)."""
    counted = {"labelSelector": {"matchLabels": selector}, "matchLabelKeys": ["pod-template-hash"]}
    fields = {
        "nodeSelector": server.node_selector,
        "tolerations": [_pod_field(t) for t in server.tolerations],
        "topologySpreadConstraints": [{**_pod_field(c), **counted} for c in server.topology_spread_constraints],
    }
    return {name: value for name, value in fields.items() if value}


def capture_plan(
    spec: ModelDeploymentSpec, *, md: str, namespace: str, config: OperatorConfig
) -> tuple[list[str], str | None]:
    """The model server's capture arguments for spec.capture, and what happens in words (status.capture).

    Captured batches go to the namespace's artifact store under `captures/<namespace>/<md>/`: object
    storage only, where every replica writes its own objects; a claim is mounted read-only by the servers
    (and a ReadWriteOnce one could not follow them across nodes)."""
    capture = spec.capture
    if capture is None or not capture.enabled:
        return [], None
    if not config.uses_object_store:
        return [], (
            f"not captured: capture needs an object store (s3://), and this namespace's artifact store is "
            f"{config.store_uri}"
        )
    uri = f"{config.store_uri}/captures/{namespace}/{md}"
    args = [
        "--capture-uri",
        uri,
        "--capture-sample-rate",
        f"{capture.sample_rate:g}",
        "--capture-max-age-seconds",
        f"{parse_duration(capture.retention.max_age):g}",
        "--capture-max-bytes",
        str(capture.retention.max_megabytes << 20),
    ]
    return args, f"capturing {capture.sample_rate:.0%} of the requests and the labels posted back to {uri}"


def server_image(spec: ModelDeploymentSpec, version: dict[str, str], config: OperatorConfig) -> str:
    """The image a version's servers run: the operator's, or with `spec.server.image: Training` the one it
    was trained in (recorded by the operator's own training Job), when it recorded one."""
    if spec.server.image == "Training":
        return version.get("image") or config.image
    return config.image


def desired_server_deployment(
    *,
    md: str,
    uid: str,
    variant: str,
    spec: ModelDeploymentSpec,
    model: str,
    version: dict[str, str],
    replicas: int,
    config: OperatorConfig,
    capture_args: list[str] | None = None,
    receipt_secret: str | None = None,
) -> dict[str, Any]:
    """The Deployment serving `version` ({version, modelUri, sha256}, and the image it was trained in when
    known) as `variant` with `replicas` pods; `receipt_secret` holds the key its pods sign feedback receipts
    with (every variant shares it)."""
    labels = {
        **selector_labels(md, variant),
        MODEL_LABEL: model,
        VERSION_LABEL: version["version"][:63],
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    server = spec.server
    store = serving_store_access(version["modelUri"], config)
    container = {
        "name": SERVER_CONTAINER,
        "image": server_image(spec, version, config),
        "imagePullPolicy": config.image_pull_policy,
        "args": [
            "serve",
            "--model-uri",
            version["modelUri"],
            "--sha256",
            version["sha256"],
            "--port",
            str(server.port),
            "--max-batch-size",
            str(server.max_batch_size),
            "--max-batch-delay-ms",
            str(server.max_batch_delay_ms),
            *(capture_args or []),
            *(["--reproducibility", server.reproducibility] if server.reproducibility != "replay" else []),
            *(["--receipt-key-file", f"{RECEIPT_KEY_DIR}/{RECEIPT_KEY_FILE}"] if receipt_secret else []),
        ],
        "env": [
            {"name": k, "value": v} for k, v in {**store.env, "HOME": "/tmp", "MLOPS_MODEL_DIR": "/tmp/models"}.items()
        ],
        **({"envFrom": store.env_from} if store.env_from else {}),
        "ports": [{"name": "http", "containerPort": server.port}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
        # A pod scaled away keeps answering until kube-proxy (or a gateway) has dropped its endpoint.
        **({"lifecycle": {"preStop": {"sleep": {"seconds": server.drain_seconds}}}} if server.drain_seconds else {}),
        # Loading Python, scikit-learn and the model takes seconds, minutes on a busy node: liveness
        # is judged only once the server has started, or a slow start would be killed over and over.
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 300,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            *store.mounts,
            *([{"name": "receipts", "mountPath": RECEIPT_KEY_DIR, "readOnly": True}] if receipt_secret else []),
        ],
        "securityContext": restricted_container_security(),
    }
    resources = server.resources.model_dump(exclude_none=True) if server.resources else None
    if resources := resources or config.default_resources("server"):
        container["resources"] = resources
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": child_name(md, variant),
            "labels": labels,
            "ownerReferences": [owner_reference(kind="ModelDeployment", name=md, uid=uid)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(md, variant)},
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            # A new version replaces pods one surge pod at a time, never one fewer than wanted.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(server.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    "containers": [container],
                    # /tmp holds the downloaded model too (from object storage), checked before it loads.
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        *store.volumes,
                        *([{"name": "receipts", "secret": {"secretName": receipt_secret}}] if receipt_secret else []),
                    ],
                    **pod_scheduling(server, selector_labels(md, variant)),
                    # The drain, then 20 s at least for the requests in flight (Kubernetes' default is 30 s).
                    **(
                        {"terminationGracePeriodSeconds": server.drain_seconds + 20}
                        if server.drain_seconds > 10
                        else {}
                    ),
                },
            },
        },
    }
    inputs = {
        "server": server_inputs(server),
        "capture": spec.capture and spec.capture.model_dump(mode="json"),
    }
    deployment["metadata"]["annotations"] = {
        SERVER_TEMPLATE_ANNOTATION: _digest(deployment["spec"]["template"]),
        SERVER_INPUTS_ANNOTATION: _digest(inputs),
    }
    return deployment


# ServerSpec fields added after the servers' inputs digest (SERVER_INPUTS_ANNOTATION) was first written:
# left out of it while at their default, so that an upgrade adding one does not make every server look
# changed by its user (which rolls at once, where the operator's own changes roll a bounded few at a time).
ADDED_LATER = ("image",)


def server_inputs(server: ServerSpec) -> dict[str, Any]:
    """spec.server as its servers' inputs digest covers it."""
    left_out = {name for name in ADDED_LATER if getattr(server, name) == ServerSpec.model_fields[name].default}
    return server.model_dump(mode="json", exclude=left_out)


def _digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def desired_receipt_key_secret(*, md: str, uid: str, key: bytes) -> dict[str, Any]:
    """The Secret holding the key a ModelDeployment's servers sign feedback receipts with (HMAC-SHA256):
    a receipt proves that one of its servers made the prediction it carries, so feedback can be scored.

    Created once, under a generated name recorded in status.receiptKeySecret: no user object can be taken
    over by name, and the operator needs only `create` on Secrets — it never reads one. Owned by the
    ModelDeployment (garbage-collected with it); every variant and version mounts it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "generateName": f"{md[:40]}-receipts-",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, DEPLOYMENT_LABEL: md[:63]},
            "ownerReferences": [owner_reference(kind="ModelDeployment", name=md, uid=uid)],
        },
        "type": "Opaque",
        "data": {RECEIPT_KEY_FILE: base64.b64encode(key).decode()},
    }


def desired_service(*, md: str, uid: str, spec: ModelDeploymentSpec) -> dict[str, Any]:
    """One Service in front of both variants: `http://<md>.<namespace>/v2/models/<model>/infer`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": md,
            "labels": {**selector_labels(md), MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(kind="ModelDeployment", name=md, uid=uid)],
        },
        "spec": {"selector": selector_labels(md), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def desired_variant_service(*, md: str, uid: str, variant: str) -> dict[str, Any]:
    """`<md>-stable` / `<md>-canary`: the backendRefs a Gateway API HTTPRoute weights between."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": child_name(md, variant),
            "labels": {**selector_labels(md, variant), MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(kind="ModelDeployment", name=md, uid=uid)],
        },
        "spec": {
            "selector": selector_labels(md, variant),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def with_fingerprint(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with an annotation naming its content: the next reconcile compares fingerprints instead
    of applying again, so an unchanged child costs no request."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    metadata = {
        **body["metadata"],
        "annotations": {**(body["metadata"].get("annotations") or {}), DESIRED_ANNOTATION: digest},
    }
    return {**body, "metadata": metadata}


def is_current(desired: dict[str, Any], actual: dict[str, Any] | None) -> bool:
    """Whether the child as watched is what we would apply: same fingerprint, and for a Deployment the
    same replica count (the one field someone else — `kubectl scale` — is likely to change)."""
    if actual is None or actual["metadata"].get("deletionTimestamp"):
        return False
    fingerprint = (desired["metadata"].get("annotations") or {}).get(DESIRED_ANNOTATION)
    if (actual["metadata"].get("annotations") or {}).get(DESIRED_ANNOTATION) != fingerprint:
        return False
    wanted = (desired.get("spec") or {}).get("replicas")
    return wanted is None or (actual.get("spec") or {}).get("replicas") == wanted


def held_replicas(
    *, wanted: tuple[int, int], current: tuple[int, int], ready: tuple[int, int], total: int
) -> tuple[int, int]:
    """(stable, canary) replicas to apply so that serving capacity never drops while traffic moves.

    `wanted` is the split of the current weight; `current` the replicas the two Deployments have now;
    `ready` their ready pods that run the version each should serve. A variant that grows gets what it
    wants at once; a variant that shrinks keeps as many of its ready pods as the other still lacks
    ready ones (pods that are not ready carry no traffic: they go at once). So a promotion keeps the
    canary's pods until the stable Deployment serves the new version on all its pods, and an abort or
    a rollback keeps them until the stable version is back at full strength, one pod going for each
    stable pod ready: the Service always has `total` ready pods behind it, of one version or the other.
    (A rolled-back version once stopped at the first ready stable pod; one pod, ready to the kubelet but
    not yet in every node's rules, then left the Service with no endpoint and requests were refused.)
    """
    (want_stable, want_canary), (has_stable, has_canary), (ready_stable, ready_canary) = wanted, current, ready
    stable, canary = want_stable, want_canary
    if want_stable < has_stable:
        stable = max(want_stable, min(has_stable, ready_stable, total - ready_canary))
    if want_canary < has_canary:
        canary = max(want_canary, min(has_canary, ready_canary, total - ready_stable))
    return stable, canary


def running_version(deployment: dict[str, Any] | None) -> str | None:
    """The version label of the pods a server Deployment runs (its template's)."""
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL)


def replicas_of(deployment: dict[str, Any] | None) -> int:
    """The replicas a Deployment asks for (0 when there is none)."""
    return int(((deployment or {}).get("spec") or {}).get("replicas") or 0)


def ready_replicas_of(deployment: dict[str, Any] | None, version: str) -> int:
    """Ready pods of the Deployment that run `version` (0 while its rollout to that version is unfinished)."""
    if deployment is None or running_version(deployment) != version[:63]:
        return 0
    s = deployment.get("status") or {}
    if (s.get("observedGeneration") or 0) < (deployment["metadata"].get("generation") or 0):
        return 0
    return min(s.get("updatedReplicas") or 0, s.get("readyReplicas") or 0)


@dataclass(frozen=True)
class VariantPlan:
    """One server Deployment as it should be: `body` to apply, or (body None) only its replica count set to
    `replicas` — a canary whose pods run a version rolled back is scaled down, never re-templated (which
    would restart its pods)."""

    variant: str
    replicas: int
    body: dict[str, Any] | None
    # "waiting" for an upgrade-roll slot (body None: only scaled), "rolling" onto the operator's new template.
    upgrade: str | None = None


# Upgrade rolls. A server Deployment whose pod template changes while neither the version it serves nor
# the ModelDeployment's spec that shapes it (spec.server, spec.capture) did is changed by the operator
# itself: a new operator image, a chart setting such as podResources. Such a change restarts pods outside
# any canary, so it waits for a slot: at most `serverUpgrades.maxConcurrent` ModelDeployments roll at once
# (counted across the cluster from the Deployments marked UPGRADE_ROLL_ANNOTATION whose rollout is not
# complete), each with maxUnavailable 0; until then its Deployments keep their template and are only scaled.
# A roll whose new pods never become ready (they refuse the model on the new image: ModelNotReproducible)
# stalls at the Deployment's progress deadline: the old pods go on serving, the slot is freed, and the
# ModelDeployment says why in status.serverUpgrade.


def operator_retemplate(desired: dict[str, Any], actual: dict[str, Any] | None) -> bool:
    """Whether applying `desired` over the server Deployment `actual` changes its pods' template although
    the version they serve and the spec that shapes them are unchanged (or unknown: made by an older
    operator, which did not record them)."""
    if actual is None or actual["metadata"].get("deletionTimestamp"):
        return False
    if running_version(actual) != running_version(desired):
        return False
    want, have = desired["metadata"]["annotations"], actual["metadata"].get("annotations") or {}
    if have.get(SERVER_TEMPLATE_ANNOTATION) == want[SERVER_TEMPLATE_ANNOTATION]:
        return False
    return have.get(SERVER_INPUTS_ANNOTATION) in (None, want[SERVER_INPUTS_ANNOTATION])


def upgrade_rolling(deployment: dict[str, Any]) -> bool:
    """Whether `deployment` is rolling onto a template only the operator changed and has not finished:
    not all its pods run the new template, available."""
    annotations = deployment["metadata"].get("annotations") or {}
    if not annotations.get(UPGRADE_ROLL_ANNOTATION):
        return False
    wanted = replicas_of(deployment)
    s = deployment.get("status") or {}
    return not (
        (s.get("observedGeneration") or 0) >= (deployment["metadata"].get("generation") or 0)
        and (s.get("updatedReplicas") or 0) == wanted
        and (s.get("replicas") or 0) == wanted
        and (s.get("availableReplicas") or 0) == wanted
    )


def upgrade_stalled(deployment: dict[str, Any]) -> bool:
    """Whether `deployment` is an upgrade roll the Deployment controller gave up on: its new pods did not
    become available within its progressDeadlineSeconds (condition Progressing=False,
    ProgressDeadlineExceeded), e.g. because they refuse the model on the new image. Its old pods keep
    serving (maxUnavailable 0), and it holds no slot: one stuck model must not stop every other roll."""
    return _gave_up(deployment) is not None and upgrade_rolling(deployment)


def stalled_at(deployment: dict[str, Any]) -> dt.datetime | None:
    """When the Deployment controller gave up on an upgrade roll of `deployment` (None: it did not)."""
    found = _gave_up(deployment) if upgrade_rolling(deployment) else None
    return parse_time((found or {}).get("lastTransitionTime") or (found or {}).get("lastUpdateTime"))


def _gave_up(deployment: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return next(
        (
            c
            for c in conditions
            if c.get("type") == "Progressing"
            and c.get("status") == "False"
            and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )


def upgrade_roll_finished(deployment: dict[str, Any]) -> bool:
    """Whether `deployment` is marked as an upgrade roll that has completed or stalled (its slot is free)."""
    marked = (deployment["metadata"].get("annotations") or {}).get(UPGRADE_ROLL_ANNOTATION)
    return bool(marked) and (not upgrade_rolling(deployment) or upgrade_stalled(deployment))


def upgrade_rolls(deployments: list[dict[str, Any]], uids: dict[tuple[str, str], str]) -> set[tuple[str, str]]:
    """The ModelDeployments (namespace, name) whose servers are in an upgrade roll now. Only a server
    Deployment of ours counts: named as a ModelDeployment's child and controlled by its uid (`uids`, by
    namespace and name) — labels and annotations anyone can write would otherwise hold the cluster's slots."""
    found = set()
    for d in deployments:
        namespace, labels = d["metadata"].get("namespace") or "", d["metadata"].get("labels") or {}
        md = labels.get(DEPLOYMENT_LABEL) or ""
        uid = uids.get((namespace, md))
        ours = uid is not None and controlled_by(d, uid)
        named = d["metadata"]["name"] in (child_name(md, "stable"), child_name(md, "canary"))
        if ours and named and upgrade_rolling(d) and not upgrade_stalled(d):
            found.add((namespace, md))
    return found


def with_upgrade_roll(body: dict[str, Any]) -> dict[str, Any]:
    """`body` marked as an upgrade roll onto its template (it holds a slot until its rollout completes)."""
    annotations = body["metadata"]["annotations"]
    marked = {**annotations, UPGRADE_ROLL_ANNOTATION: annotations[SERVER_TEMPLATE_ANNOTATION]}
    return {**body, "metadata": {**body["metadata"], "annotations": marked}}


@dataclass(frozen=True)
class ServingPlan:
    """The serving children of a ModelDeployment as they should be now: the stable and the canary
    Deployments, the three Services, and the canary's share of the pods (its traffic by replica ratio)."""

    stable: VariantPlan
    canary: VariantPlan
    services: tuple[dict[str, Any], ...]
    canary_share: int  # percent of the pods that are the canary's (0 without a canary)

    @property
    def upgrade(self) -> str | None:
        """ "waiting" if a Deployment waits for an upgrade-roll slot, else "rolling" if one rolls, else None."""
        found = {self.stable.upgrade, self.canary.upgrade}
        return "waiting" if "waiting" in found else "rolling" if "rolling" in found else None


def plan_serving(
    spec: ModelDeploymentSpec,
    *,
    md: str,
    uid: str,
    namespace: str,
    model: str,
    stable: VersionStatus,
    canary: VersionStatus | None,
    wanted: tuple[int, int],
    deployments: dict[str, dict[str, Any] | None],
    config: OperatorConfig,
    receipt_secret: str | None,
    may_upgrade: bool = True,
    trained_in: dict[str, str] | None = None,
) -> ServingPlan:
    """What apply_serving applies, from the status and the Deployments as watched; no request is made.

    `wanted` is the (stable, canary) split of the current weight; `deployments` the two server Deployments
    as they are; `may_upgrade` whether an upgrade roll may start (see "Upgrade rolls" above); `trained_in`
    the image each version was trained in, by version (spec.server.image: Training). Capacity
    never drops while traffic moves (held_replicas). After an abort or a rollback
    (no canary in status) the canary Deployment still runs the version that was rolled back: it serves
    until stable is whole again, and is only scaled down, until it has none."""
    capture_args, _ = capture_plan(spec, md=md, namespace=namespace, config=config)
    canary_version = (canary or stable).version
    draining = canary is None and running_version(deployments["canary"]) not in (None, stable.version[:63])
    if draining:
        canary_version = running_version(deployments["canary"]) or ""
    stable_replicas, canary_replicas = held_replicas(
        wanted=wanted,
        current=(replicas_of(deployments["stable"]), replicas_of(deployments["canary"])),
        ready=(
            ready_replicas_of(deployments["stable"], stable.version),
            ready_replicas_of(deployments["canary"], canary_version),
        ),
        total=sum(wanted),
    )

    def variant(name: str, served: VersionStatus, replicas: int) -> VariantPlan:
        if name == "canary" and draining and replicas > 0:
            return VariantPlan(name, replicas, None)
        version = {"version": served.version, "modelUri": served.model_uri, "sha256": served.sha256}
        if (trained_in or {}).get(served.version):
            version["image"] = (trained_in or {})[served.version]
        body = desired_server_deployment(
            md=md,
            uid=uid,
            variant=name,
            spec=spec,
            model=model,
            version=version,
            replicas=replicas,
            config=config,
            capture_args=capture_args,
            receipt_secret=receipt_secret,
        )
        actual = deployments[name]
        if operator_retemplate(body, actual):
            if not may_upgrade:
                return VariantPlan(name, replicas, None, upgrade="waiting")
            return VariantPlan(name, replicas, with_upgrade_roll(body), upgrade="rolling")
        if actual is not None and upgrade_rolling(actual):  # the slot is held until the rollout completes
            marked = (actual["metadata"].get("annotations") or {}).get(UPGRADE_ROLL_ANNOTATION)
            if marked == body["metadata"]["annotations"][SERVER_TEMPLATE_ANNOTATION]:
                return VariantPlan(name, replicas, with_upgrade_roll(body), upgrade="rolling")
        return VariantPlan(name, replicas, body)

    services = (
        desired_variant_service(md=md, uid=uid, variant="stable"),
        desired_variant_service(md=md, uid=uid, variant="canary"),
        desired_service(md=md, uid=uid, spec=spec),
    )
    share = round(100 * canary_replicas / max(stable_replicas + canary_replicas, 1)) if canary else 0
    return ServingPlan(
        stable=variant("stable", stable, stable_replicas),
        canary=variant("canary", canary or stable, canary_replicas),
        services=services,
        canary_share=share,
    )


def server_refusal(pods: list[dict[str, Any]], *, deployment: str, version: str) -> str | None:
    """Why a server pod of `deployment` running `version` refused to serve it (its server container's
    termination message, `refusing to serve …`); None when none said so. Only pods a ReplicaSet of
    `deployment` controls (`<deployment>-<hash>`) count: a pod made by hand with the same labels is not
    one of its servers."""
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(VERSION_LABEL) != version[:63]:
            continue
        controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), {})
        if controller.get("kind") != "ReplicaSet" or not str(controller.get("name", "")).startswith(f"{deployment}-"):
            continue
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            if container.get("name") != SERVER_CONTAINER:
                continue
            for state in (container.get("state") or {}, container.get("lastState") or {}):
                message = ((state.get("terminated") or {}).get("message") or "").strip()
                if message.startswith("refusing to serve"):
                    return message[:1000]
    return None
