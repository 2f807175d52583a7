"""The plugin's only contact with the API server: a client picked as kubectl picks it, a GET, a merge
PATCH and a CREATE of a custom object, and every API failure turned into one line a person can act on.

The kubernetes client is imported inside the functions, so `--help` and the pure views start fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import GROUP, VERSION
from .args import KINDS, Kind, PluginError, one_line

REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Connection:
    api: Any  # kubernetes.client.ApiClient
    namespace: str
    host: str


def context_namespace(contexts: list[dict[str, Any]], active: dict[str, Any] | None, chosen: str | None) -> str | None:
    """The namespace set in the chosen (or the current) kubeconfig context, if any."""
    if chosen:
        found = next((c for c in contexts if c.get("name") == chosen), None)
        if found is None:
            raise PluginError(f"context {chosen} is not in the kubeconfig")
    else:
        found = active
    return ((found or {}).get("context") or {}).get("namespace") or None


def connect(*, kubeconfig: str | None, context: str | None, namespace: str | None) -> Connection:
    """An API client from the kubeconfig (as kubectl picks it), or in-cluster credentials without one."""
    from kubernetes import client, config

    configuration = client.Configuration()
    paths = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    existing = [p for p in paths.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
    if kubeconfig and not existing:
        raise PluginError(f"kubeconfig {kubeconfig} does not exist")
    if not existing:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise PluginError(f"no kubeconfig found at {paths}: pass --kubeconfig or set KUBECONFIG")
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as error:
            raise PluginError(f"in-cluster configuration: {error}") from None
        found = namespace or _read_text(SERVICE_ACCOUNT_NAMESPACE) or "default"
    else:
        try:
            contexts, active = config.list_kube_config_contexts(config_file=paths)
        except (config.ConfigException, KeyError, TypeError, ValueError, OSError) as error:
            raise PluginError(f"kubeconfig {paths}: {one_line(error)}") from None
        found = namespace or context_namespace(contexts, active, context) or "default"
        try:
            config.load_kube_config(
                config_file=paths, context=context, client_configuration=configuration, persist_config=False
            )
        except (config.ConfigException, KeyError, TypeError, ValueError, OSError) as error:
            raise PluginError(f"kubeconfig {paths}: {one_line(error)}") from None
    configuration.retries = 1
    return Connection(client.ApiClient(configuration=configuration), found, configuration.host)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip() or None
    except OSError:
        return None


def describe_api_error(error: Any, *, verb: str, kind: Kind, name: str, namespace: str) -> str:
    """An ApiException as one line a person can act on."""
    status = getattr(error, "status", None)
    try:
        body = json.loads(getattr(error, "body", None) or "{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = one_line(body.get("message") or getattr(error, "reason", "") or "")
    if status == 404:
        if not (body.get("details") or {}).get("name"):
            return f"the API server does not serve {kind.resource}: are the mlops.dev CRDs installed?"
        return f"{kind.kind} {name} not found in namespace {namespace}"
    if status == 403:
        return f"no permission to {verb} {kind.resource} in namespace {namespace}: {message}"
    if status == 401:
        return f"the API server refused the credentials (401 Unauthorized): check the kubeconfig's user ({message})"
    return f"{verb} {kind.kind} {name}: {status} {message}".rstrip()


def _call(connection: Connection, verb: str, kind: Kind, name: str, action: Callable[[], Any]) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return action()
    except ApiException as error:
        text = describe_api_error(error, verb=verb, kind=kind, name=name, namespace=connection.namespace)
        if error.status == 404 and "not found in namespace" in text:
            text += _other_kind_hint(connection, kind, name)
        raise PluginError(text) from None
    except HTTPError as error:
        reason = one_line(getattr(error, "reason", None) or error).split(">: ", 1)[-1]
        raise PluginError(f"cannot reach the API server at {connection.host}: {reason}") from None


def _other_kind_hint(connection: Connection, kind: Kind, name: str) -> str:
    """`; iris-baseline is a TrainingRun, not a ModelDeployment` when the name belongs to another kind."""
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    for other in KINDS:
        if other == kind:
            continue
        try:
            api.get_namespaced_custom_object(
                GROUP, VERSION, connection.namespace, other.plural, name, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception:  # only a hint: any failure means no hint
            continue
        return f" ({name} is a {other.kind}, not a {kind.kind})"
    return ""


def fetch(connection: Connection, kind: Kind, name: str) -> dict[str, Any]:
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    return _call(
        connection,
        "get",
        kind,
        name,
        lambda: api.get_namespaced_custom_object(
            GROUP, VERSION, connection.namespace, kind.plural, name, _request_timeout=REQUEST_TIMEOUT
        ),
    )


def patch(connection: Connection, kind: Kind, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch: only the annotations named in `body` change."""
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    return _call(
        connection,
        "patch",
        kind,
        name,
        lambda: api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            connection.namespace,
            kind.plural,
            name,
            body,
            _content_type="application/merge-patch+json",
            _request_timeout=REQUEST_TIMEOUT,
        ),
    )


def create(connection: Connection, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
    """Create an object in the connection's namespace (`metadata.generateName` names it)."""
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    name = body["metadata"].get("name") or body["metadata"].get("generateName", "?") + "…"
    return _call(
        connection,
        "create",
        kind,
        name,
        lambda: api.create_namespaced_custom_object(
            GROUP, VERSION, connection.namespace, kind.plural, body, _request_timeout=REQUEST_TIMEOUT
        ),
    )
