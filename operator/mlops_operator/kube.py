"""Kubernetes API access for the reconcilers (the official client; handlers run in kopf's thread pool)."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from .api import GROUP, VERSION


@functools.cache
def _client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


def core() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(_client())


def apps() -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(_client())


FIELD_MANAGER = "mlops-operator"


def server_side_apply(patch: Any, namespace: str, body: dict[str, Any]) -> Any:
    """Server-side apply of a child we own (field manager mlops-operator): idempotent, no read-modify-write."""
    return patch(body["metadata"]["name"], namespace, body, field_manager=FIELD_MANAGER, force=True,
                 _content_type="application/apply-patch+yaml")  # fmt: skip


# An unchanged child is re-applied at least this often: often enough to recreate one a person deleted,
# rarely enough that a 1 s resync does not send every child to the API server every second.
REAPPLY_UNCHANGED_SECONDS = 10.0
_last_applied: dict[tuple[str, str, str], tuple[str, float]] = {}


def server_side_apply_if_changed(patch: Any, namespace: str, body: dict[str, Any]) -> bool:
    """`server_side_apply` unless this very body was applied less than REAPPLY_UNCHANGED_SECONDS ago.

    Only an optimisation: nothing is decided from it, and a restarted operator simply applies again.
    Returns whether it applied."""
    key = (body["kind"], namespace, body["metadata"]["name"])
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    last = _last_applied.get(key)
    if last and last[0] == digest and time.monotonic() - last[1] < REAPPLY_UNCHANGED_SECONDS:
        return False
    server_side_apply(patch, namespace, body)
    _last_applied[key] = (digest, time.monotonic())
    return True


def batch() -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(_client())


def custom() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(_client())


def plain(obj: Any) -> dict[str, Any]:
    """A client model object as the plain camelCase dict the API server sent."""
    return _client().sanitize_for_serialization(obj)


def read_or_none(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def create_or_get(create: Any, read: Any, namespace: str, body: dict[str, Any]) -> Any:
    """Create a child with a deterministic name; "already exists" is success (idempotent children)."""
    try:
        return create(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise
    return read(body["metadata"]["name"], namespace)


def get_custom(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    return read_or_none(custom().get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)


def list_custom(plural: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    listed = custom().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, label_selector=label_selector)
    return listed.get("items", [])


def patch_labels(plural: str, namespace: str, name: str, labels: dict[str, str | None]) -> None:
    custom().patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"metadata": {"labels": labels}})


def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    """A merge patch of the status subresource: the only place the operator writes our kinds' state."""
    custom().patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, {"status": status})


def termination_message(pod: Any) -> dict[str, Any] | None:
    """The JSON result a Job's container left in its termination message, if any."""
    for status in (pod.status.container_statuses or []) if pod.status else []:
        terminated = status.state.terminated if status.state else None
        if terminated and terminated.message:
            try:
                return json.loads(terminated.message)
            except ValueError:
                return {"ok": False, "message": terminated.message[:500]}
    return None


def job_pods(namespace: str, job_name: str) -> list[Any]:
    pods = core().list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}").items
    return sorted(pods, key=lambda p: p.metadata.creation_timestamp)


def job_finished(job: Any) -> Any:
    """The Job's Complete or Failed condition once it has one, else None."""
    conditions = (job.status.conditions or []) if job.status else []
    return next((x for x in conditions if x.type in ("Complete", "Failed") and x.status == "True"), None)


GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"


def get_httproute(namespace: str, name: str) -> dict[str, Any] | None:
    api = custom()
    return read_or_none(api.get_namespaced_custom_object, GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name)


def json_patch_httproute(namespace: str, name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    return custom().patch_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name, operations,
        _content_type="application/json-patch+json",
    )  # fmt: skip
