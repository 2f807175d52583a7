"""The Jobs the operator owns: dataset checks and trainings. Pure functions, table-tested without a cluster.

Pods are `restricted` Pod Security compliant: non-root, no privilege escalation, all capabilities
dropped, RuntimeDefault seccomp, read-only root filesystem with an emptyDir at /tmp.

A Job gets its request (the spec and what the operator pinned) in one environment variable,
MLOPS_REQUEST. The kernel refuses to start a process with an environment string over 128 KiB, and the
pod then fails with "argument list too long" while the Job says only BackoffLimitExceeded. The spec
models bound every part of a spec so that this cannot happen; `request_env` refuses it anyway, before
the Job exists, with the reason in words.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from ..api import API_VERSION
from ..api.clock import parse_time
from ..api.common import JOB_ENV_VALUE_MAX_BYTES, job_wire
from ..api.dataset import DatasetSpec
from ..api.names import (
    DATASET_LABEL,
    IMAGE_ENV,
    JOB_CONTROLLER_UID_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    TRAINING_RUN_LABEL,
)
from ..api.trainingrun import DatasetPin, TrainingRunSpec
from ..config import S3_SOURCE_ENV_PREFIX, OperatorConfig
from .results import ChampionRef, TrainingRequest, parse_termination_message
from .store import snapshot_store_access, store_access

JOB_CONTAINER = "main"
PERMANENT_FAILURE_EXIT_CODE = 2
REQUEST_ENV = "MLOPS_REQUEST"


class RequestTooLarge(ValueError):
    """The request of a Job does not fit in an environment variable: creating the Job would be futile."""


def request_env(request: dict[str, Any]) -> str:
    """The request as the value of MLOPS_REQUEST; RequestTooLarge if the kernel would refuse it.

    The kernel's limit (MAX_ARG_STRLEN) counts the whole `NAME=value` string and its terminating NUL.
    """
    value = json.dumps(request)
    size = len(f"{REQUEST_ENV}={value}".encode()) + 1
    if size > JOB_ENV_VALUE_MAX_BYTES:
        raise RequestTooLarge(
            f"the request for the Job takes {size} bytes, more than the {JOB_ENV_VALUE_MAX_BYTES} bytes the "
            f"kernel allows an environment variable ({REQUEST_ENV}); shorten the spec's free-form fields"
        )
    return value


def child_name(parent: str, suffix: str, *, limit: int = 63) -> str:
    """`<parent>-<suffix>`, shortened with a hash when too long for a label value (63 characters)."""
    name = f"{parent}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{parent[: limit - len(suffix) - 10].rstrip('-.')}-{digest}-{suffix}"


def owner_reference(*, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def restricted_pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}


def _job(
    *,
    name: str,
    owner: dict[str, Any],
    labels: dict[str, str],
    command: str,
    env: dict[str, str],
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    config: OperatorConfig,
    env_from: list[dict[str, Any]] | None = None,
    deadline: int,
    backoff_limit: int,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    container = {
        "name": JOB_CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "args": [command],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        **({"envFrom": env_from} if env_from else {}),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "File",
    }
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": JOB_CONTAINER,
                            "operator": "In",
                            "values": [PERMANENT_FAILURE_EXIT_CODE],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
                },
            },
        },
    }


def desired_dataset_check_job(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: DatasetSpec,
    check: int,
    config: OperatorConfig,
    capture: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Job that reads, validates, versions and profiles the source of Dataset `name` (check number `check`)."""
    store = store_access(config, read_only=False)
    volumes, mounts = list(store.volumes), list(store.mounts)
    if spec.source.config_map:
        items = [{"key": spec.source.config_map.key, "path": "data.csv"}]
        volumes.append({"name": "source", "configMap": {"name": spec.source.config_map.name, "items": items}})
        mounts.append({"name": "source", "mountPath": "/input/configmap", "readOnly": True})
    if spec.source.pvc:
        volumes.append(
            {"name": "source", "persistentVolumeClaim": {"claimName": spec.source.pvc.claim_name, "readOnly": True}}
        )
        mounts.append({"name": "source", "mountPath": "/input/pvc", "readOnly": True})
    env_from, source_env = list(store.env_from), {}
    if spec.source.s3:  # its own credentials and endpoint, if named, beside the store's (data/sources.py)
        if spec.source.s3.secret_name:
            env_from.append({"prefix": S3_SOURCE_ENV_PREFIX, "secretRef": {"name": spec.source.s3.secret_name}})
        if spec.source.s3.endpoint:
            source_env[f"{S3_SOURCE_ENV_PREFIX}ENDPOINT"] = spec.source.s3.endpoint
    request = {"namespace": namespace, "name": name, "spec": job_wire(spec)}
    if capture is not None:  # a capture source: the base snapshot and the captured batches, in the store
        request["capture"] = capture
    return _job(
        name=child_name(name, f"check-{check}"),
        owner=owner_reference(kind="Dataset", name=name, uid=uid),
        labels={MANAGED_BY_LABEL: MANAGED_BY, DATASET_LABEL: name[:63]},
        command="dataset-check",
        env={**store.env, **source_env, "HOME": "/tmp", REQUEST_ENV: request_env(request), "MLOPS_INPUT_DIR": "/input"},
        env_from=env_from,
        volumes=volumes,
        mounts=mounts,
        config=config,
        deadline=600,
        backoff_limit=0,
        resources=config.default_resources("check"),
    )


def desired_training_job(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: TrainingRunSpec,
    dataset: DatasetPin,
    config: OperatorConfig,
    champion: ChampionRef | None = None,
) -> dict[str, Any]:
    """The Job that trains TrainingRun `name` on the pinned `dataset`; with `champion` it also scores that
    model on its held-out rows."""
    store = store_access(config, read_only=False)
    snapshots = snapshot_store_access(dataset.snapshot_uri, config)
    request = TrainingRequest(
        namespace=namespace, run=name, run_uid=uid, spec=spec, dataset=dataset, champion=champion
    ).wire()
    resources = spec.resources.model_dump(exclude_none=True) if spec.resources else config.default_resources("training")
    return _job(
        name=child_name(name, "train"),
        owner=owner_reference(kind="TrainingRun", name=name, uid=uid),
        labels={MANAGED_BY_LABEL: MANAGED_BY, TRAINING_RUN_LABEL: name[:63]},
        command="train",
        env={**store.env, **snapshots.env, "HOME": "/tmp", REQUEST_ENV: request_env(request), IMAGE_ENV: config.image},
        env_from=store.env_from + [e for e in snapshots.env_from if e not in store.env_from],
        volumes=[*store.volumes, *snapshots.volumes],
        mounts=[*store.mounts, *snapshots.mounts],
        config=config,
        deadline=spec.active_deadline_seconds,
        backoff_limit=spec.backoff_limit,
        resources=resources,
    )


# Reading the Jobs back, as the watches deliver them (plain dicts).


def job_finished(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Job's Complete or Failed condition once it has one, else None."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return next((x for x in conditions if x.get("type") in ("Complete", "Failed") and x.get("status") == "True"), None)


def job_attempts(job: dict[str, Any]) -> int:
    counts = job.get("status") or {}
    return sum(int(counts.get(k) or 0) for k in ("failed", "succeeded", "active"))


def termination_result(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON result a Job's container left in its termination message, if any (results.py: what it
    holds and why it is small; text that is no JSON object is a ResultUnreadable failure)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        message = ((status.get("state") or {}).get("terminated") or {}).get("message")
        if message:
            return parse_termination_message(message)
    return None


# The fields of a container that decide what it runs: a pod whose containers differ from its Job's
# template in any of them did not run our code, whatever it claims.
_RUN_FIELDS = ("name", "image", "command", "args", "env", "envFrom", "volumeMounts")


def _what_runs(containers: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    return [tuple(json.dumps(c.get(k), sort_keys=True) for k in _RUN_FIELDS) for c in containers or []]


def pods_of_job(pods: list[dict[str, Any]], job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods a Job made, among `pods` found by its name label: only their results are evidence.

    Anyone who can create a pod in the namespace can give it the Job's labels, and even an owner
    reference to the Job (which the Job controller then counts as its own); neither makes it run the
    trainer. A pod counts when its controller owner reference and its `controller-uid` label name the
    Job's uid, and its containers run what the Job's template says (image, command, arguments,
    environment — the request — and mounts).
    """
    uid = job["metadata"].get("uid")
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    wanted = (_what_runs(template.get("containers")), _what_runs(template.get("initContainers")))
    found = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        labels = meta.get("labels") or {}
        if not uid or owner is None or owner.get("kind") != "Job" or owner.get("uid") != uid:
            continue
        if labels.get(JOB_CONTROLLER_UID_LABEL, labels.get("controller-uid")) != uid:
            continue
        if (_what_runs(spec.get("containers")), _what_runs(spec.get("initContainers"))) != wanted:
            continue
        found.append(pod)
    return found


def latest_result(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The result of the newest pod that left one (a retried Job has several pods)."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True):
        result = termination_result(pod)
        if result is not None:
            return result
    return None


# Waiting reasons of a container that will not start by itself soon: a missing Secret or ConfigMap
# (CreateContainerConfigError: e.g. the artifact store's credentials), an image that cannot be pulled.
# The kubelet reports some of them for a moment on its own (a Secret created just before the pod is not
# in its cache yet): a pod counts as stuck only once it has waited that way this long.
CANNOT_START = (
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
)
STUCK_POD_SECONDS = 20.0


def pod_cannot_start(pods: list[dict[str, Any]], *, now: dt.datetime) -> tuple[str | None, dt.datetime | None]:
    """Why the newest pod of a Job cannot start its container, in the kubelet's words, once it has been
    stuck for STUCK_POD_SECONDS; else None and, while it might still be, when to look again."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)[:1]:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") not in CANNOT_START:
                continue
            created = pod["metadata"].get("creationTimestamp")
            stuck_at = (parse_time(created) if created else now) + dt.timedelta(seconds=STUCK_POD_SECONDS)
            if now < stuck_at:
                return None, stuck_at
            message = waiting.get("message", "")
            return f"pod {pod['metadata']['name']} cannot start: {waiting['reason']}: {message}", None
    return None, None


def pod_started(pods: list[dict[str, Any]]) -> bool:
    """Whether a container of one of the Job's pods has started (runs, or ran): what ends a wait for a
    pod that could not start. A container that never ran has no `startedAt` (a pod deleted while it
    waited reports `terminated`, ContainerStatusUnknown, without one)."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                if state.get("running") or ((state.get("terminated") or {}).get("startedAt")):
                    return True
    return False
