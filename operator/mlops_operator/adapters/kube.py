"""Kubernetes API access for the reconcilers: the official client, every request counted.

The reconcilers run in worker threads, so the synchronous client never blocks kopf's event loop.
Every request, the reconcilers' and kopf's own, is counted by verb and resource in
`mlops_operator_api_requests_total`: an idle operator can be seen to be idle.
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from ..api import GROUP, VERSION
from ..operator_metrics import API_REQUESTS


def request_kind(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of an API request as the API server's audit log names them:
    `GET /apis/mlops.dev/v1alpha1/namespaces/ml/trainingruns` is (list, trainingruns)."""
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query)
    parts = [p for p in parsed.path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return method.lower(), parsed.path or "/"
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource (a Namespace itself is `namespaces`, name)
    resource = "/".join(rest[i] for i in (0, 2) if i < len(rest))
    named = len(rest) >= 2
    method = method.upper()
    if method == "GET":
        verb = "watch" if query.get("watch") in (["true"], ["1"]) else ("get" if named else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
    return verb, resource or "/"


def count_request(method: str, url: str, *, client: str) -> None:
    verb, resource = request_kind(method, url)
    API_REQUESTS.labels(client=client, verb=verb, resource=resource).inc()


def count_kopf_requests() -> None:
    """Count kopf's own requests too (watches, finalizers, Events, peering): kopf has no hook for
    this, so its one request function is wrapped; every kopf call goes through it by name."""
    from kopf._cogs.clients import api as kopf_api

    if getattr(kopf_api.request, "_counted", False):
        return
    original = kopf_api.request

    async def request(method: str, url: str, **kwargs: Any) -> Any:
        count_request(method, url, client="kopf")
        return await original(method, url, **kwargs)

    request._counted = True  # type: ignore[attr-defined]
    kopf_api.request = request


REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read


@functools.cache
def _client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    client = kubernetes.client.ApiClient()
    send = client.rest_client.request

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        count_request(method, url, client="reconciler")
        if kwargs.get("_request_timeout") is None:  # an API server that never answers holds no thread forever
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        return send(method, url, *args, **kwargs)

    client.rest_client.request = counted
    return client


def coordination() -> kubernetes.client.CoordinationV1Api:
    return kubernetes.client.CoordinationV1Api(_client())


def core() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(_client())


def apps() -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(_client())


def batch() -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(_client())


def autoscaling() -> kubernetes.client.AutoscalingV2Api:
    return kubernetes.client.AutoscalingV2Api(_client())


def custom() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(_client())


FIELD_MANAGER = "mlops-operator"


def plain(obj: Any) -> dict[str, Any]:
    """A client model object as the plain camelCase dict the API server sent (what watches deliver)."""
    return _client().sanitize_for_serialization(obj)


def read_or_none(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


# The children the operator creates and server-side-applies, by plural: (create, read, patch).
def _child_calls(plural: str) -> tuple[Any, Any, Any]:
    return {
        "deployments": (
            apps().create_namespaced_deployment,
            apps().read_namespaced_deployment,
            apps().patch_namespaced_deployment,
        ),
        "services": (core().create_namespaced_service, core().read_namespaced_service, core().patch_namespaced_service),
        "horizontalpodautoscalers": (
            autoscaling().create_namespaced_horizontal_pod_autoscaler,
            autoscaling().read_namespaced_horizontal_pod_autoscaler,
            autoscaling().patch_namespaced_horizontal_pod_autoscaler,
        ),
        "jobs": (batch().create_namespaced_job, batch().read_namespaced_job, batch().patch_namespaced_job),
    }[plural]


def create_child(plural: str, namespace: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create `body` only if its name is free: (the object created, True), or (the object that already
    holds the name, False) — never changed here; whether it is ours is the caller's question.

    Created with a POST, not an apply (an apply creates or takes over whatever holds the name). The fields
    the POST set are then handed to our apply field manager (the managedFields entry's operation becomes
    Apply, as `kubectl apply --server-side` does when it upgrades an object), so a field a later apply
    leaves out is removed, not kept by the creation's entry."""
    create, read, patch = _child_calls(plural)
    try:
        created = plain(create(namespace, body, field_manager=FIELD_MANAGER))
    except ApiException as error:
        if error.status != 409:
            raise
        return plain(read(body["metadata"]["name"], namespace)), False
    if plural == "jobs":  # never applied: a Job's template is immutable
        return created, True
    return _hand_to_apply(read, patch, created), True


def _hand_to_apply(read: Any, patch: Any, created: dict[str, Any], attempts: int = 3) -> dict[str, Any]:
    """Turn the creation's managedFields entry (ours, operation Update) into an Apply entry. The patch
    tests that entry where it is (its index shifts when a controller adds one of its own, e.g. a
    Deployment's status): on a failed test, read again and retry; if it never holds, the object stays
    as created (a field a later apply leaves out would then be kept, nothing else)."""
    name, namespace = created["metadata"]["name"], created["metadata"]["namespace"]
    current = created
    for _ in range(attempts):
        entries = current["metadata"].get("managedFields") or []
        index = next(
            (
                i
                for i, e in enumerate(entries)
                if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Update" and not e.get("subresource")
            ),
            None,
        )
        if index is None:
            return current
        at = f"/metadata/managedFields/{index}"
        operations = [
            {"op": "test", "path": f"{at}/manager", "value": FIELD_MANAGER},
            {"op": "test", "path": f"{at}/operation", "value": "Update"},
            {"op": "replace", "path": f"{at}/operation", "value": "Apply"},
        ]
        try:
            return plain(patch(name, namespace, operations, _content_type="application/json-patch+json"))
        except ApiException as error:
            if error.status not in (409, 422):
                raise
        current = plain(read(name, namespace))
    return current


def apply_child(plural: str, namespace: str, body: dict[str, Any], *, uid: str) -> dict[str, Any]:
    """Server-side apply (field manager mlops-operator) of a child that exists and is ours: the object
    with `uid`, so an object replaced meanwhile under the same name is refused (422: uid is immutable)."""
    _, _, patch = _child_calls(plural)
    guarded = {**body, "metadata": {**body["metadata"], "uid": uid}}
    return plain(
        patch(
            body["metadata"]["name"],
            namespace,
            guarded,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
    )


def delete_autoscaler(namespace: str, name: str, *, uid: str) -> None:
    """Delete a HorizontalPodAutoscaler we created, the one with `uid` only; one already gone is success."""
    try:
        autoscaling().delete_namespaced_horizontal_pod_autoscaler(name, namespace, body={"preconditions": {"uid": uid}})
    except ApiException as error:
        if error.status not in (404, 409):  # 409: not that object any more
            raise


def expire_job(namespace: str, name: str, *, uid: str, seconds: int) -> dict[str, Any]:
    """Give a finished Job (the one with `uid`) a ttlSecondsAfterFinished: the TTL controller then deletes
    it and its pods. A merge patch that carries the uid: another Job of that name is refused (422)."""
    body = {"metadata": {"uid": uid}, "spec": {"ttlSecondsAfterFinished": seconds}}
    return plain(batch().patch_namespaced_job(name, namespace, body))


def create_secret(namespace: str, body: dict[str, Any]) -> str:
    """Create a Secret (a generated name) and return its name; only its metadata is kept from the answer."""
    created = core().create_namespaced_secret(namespace, body)
    return created.metadata.name


def read_pvc(namespace: str, name: str) -> dict[str, Any] | None:
    found = read_or_none(core().read_namespaced_persistent_volume_claim, name, namespace)
    return plain(found) if found is not None else None


def read_namespace(name: str) -> dict[str, Any] | None:
    found = read_or_none(core().read_namespace, name)
    return plain(found) if found is not None else None


def read_config_map(namespace: str, name: str) -> dict[str, Any] | None:
    found = read_or_none(core().read_namespaced_config_map, name, namespace)
    return plain(found) if found is not None else None


def get_custom(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    return read_or_none(custom().get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)


def create_custom(plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create one of our objects with a deterministic name; "already exists" is success (it is read back)."""
    try:
        return custom().create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    except ApiException as error:
        if error.status != 409:
            raise
    return custom().get_namespaced_custom_object(GROUP, VERSION, namespace, plural, body["metadata"]["name"])


def list_custom(plural: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    listed = custom().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, label_selector=label_selector)
    return listed.get("items", [])


def patch_labels(plural: str, namespace: str, name: str, labels: dict[str, str | None]) -> dict[str, Any]:
    body = {"metadata": {"labels": labels}}
    return custom().patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)


def patch_metadata(plural: str, namespace: str, name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of labels and annotations (None removes one) of one of our custom objects."""
    return custom().patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"metadata": metadata})


def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of the status subresource: the only place the operator writes our kinds' state.
    Returns the object as written (the cache keeps it until the watch brings the same or newer)."""
    body = {"status": status}
    return custom().patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, body)


GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"


def json_patch_httproute(namespace: str, name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    return custom().patch_namespaced_custom_object(
        GATEWAY_GROUP,
        GATEWAY_VERSION,
        namespace,
        "httproutes",
        name,
        operations,
        _content_type="application/json-patch+json",
    )


def read_httproute(namespace: str, name: str) -> dict[str, Any] | None:
    """The HTTPRoute, or None when it (or the Gateway API itself) does not exist."""
    return read_or_none(
        custom().get_namespaced_custom_object, GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name
    )


def read_job(namespace: str, name: str) -> dict[str, Any] | None:
    found = read_or_none(batch().read_namespaced_job, name, namespace)
    return plain(found) if found is not None else None


def read_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    found = read_or_none(apps().read_namespaced_deployment, name, namespace)
    return plain(found) if found is not None else None


def list_pods(namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    return [plain(p) for p in core().list_namespaced_pod(namespace, label_selector=selector).items]


def scale_deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    return plain(apps().patch_namespaced_deployment(name, namespace, {"spec": {"replicas": replicas}}))
