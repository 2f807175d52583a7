"""Watches: what the operator listens to, and which objects each change wakes.

The API server filters the children's watches by our labels (`watch_selectors`), so the operator
never caches the cluster: only our three kinds, the Jobs, Deployments, Services and
HorizontalPodAutoscalers we created, the Jobs' pods, the artifact store claims, the Namespaces (for
their artifact store annotation), and the HTTPRoutes a ModelDeployment may name (those are the
user's, so they cannot carry our label; there are few of them).

Every event updates the cache and wakes exactly the objects it concerns (`objects_to_wake`, pure):
- a child (Job, Deployment, Service, HorizontalPodAutoscaler) wakes its owner; a Job's pod wakes the run
  or Dataset it works for; a server Deployment that finished an upgrade roll also wakes the
  ModelDeployments waiting for a slot (resources/serving.py, "Upgrade rolls");
- a TrainingRun wakes the ModelDeployments that follow its model or pin it (a champion change);
- a Dataset wakes itself, the TrainingRuns waiting for a version of it and the Datasets that add captured
  rows to it;
- an artifact store claim wakes the unfinished Datasets and TrainingRuns of its namespace;
- an HTTPRoute wakes the ModelDeployments that route through it;
- a Namespace (its artifact store annotation) wakes its Datasets.
"""

from __future__ import annotations

import copy
from typing import Any

import kopf

from ..api import GROUP, VERSION
from ..api.names import JOB_NAME_LABEL, KINDS, MANAGED_BY, MANAGED_BY_LABEL
from ..config import OperatorConfig
from ..registry import MODEL_LABEL
from ..resources.serving import upgrade_roll_finished
from .cache import CACHE, WAKERS, Key, ObjectCache

OURS = tuple(k.plural for k in KINDS)
MANAGED = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
OWNER_KINDS = {k.kind: k.plural for k in KINDS}
TERMINAL_RUN_PHASES = ("Succeeded", "Failed")


def watch_selectors(config: OperatorConfig) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(label selectors, field selectors) by (group, plural), sent with each watch and list."""
    labels = {
        ("batch", "jobs"): MANAGED,
        ("apps", "deployments"): MANAGED,
        ("", "services"): MANAGED,
        ("autoscaling", "horizontalpodautoscalers"): MANAGED,
        ("", "pods"): f"{MANAGED},batch.kubernetes.io/job-name",
    }
    fields = {("", "persistentvolumeclaims"): f"metadata.name={config.artifact_pvc}"}
    return labels, fields


def _spec(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("spec") or {}


def objects_to_wake(plural: str, body: dict[str, Any], cache: ObjectCache) -> list[Key]:
    """The objects whose reconcile depends on this object of kind `plural`."""
    meta = body["metadata"]
    namespace, name = meta.get("namespace") or "", meta["name"]
    if plural in ("jobs", "deployments", "services", "horizontalpodautoscalers"):
        owners: list[Key] = [
            (OWNER_KINDS[ref["kind"]], namespace, ref["name"])
            for ref in meta.get("ownerReferences") or []
            if ref.get("apiVersion", "").startswith(f"{GROUP}/") and ref.get("kind") in OWNER_KINDS
        ]
        if plural == "deployments" and upgrade_roll_finished(body):  # a slot is free: whoever waits for one
            owners += [
                ("modeldeployments", md["metadata"].get("namespace") or "", md["metadata"]["name"])
                for md in cache.all("modeldeployments")
                if ((md.get("status") or {}).get("serverUpgrade") or "").startswith("waiting")
            ]
        return owners
    if plural == "pods":  # a Job's pod: its Job's owner (the label's value is the Job's full name)
        job = cache.get("jobs", namespace, (meta.get("labels") or {}).get(JOB_NAME_LABEL, ""))
        return objects_to_wake("jobs", job, cache) if job else []
    wake: list[Key] = [(plural, namespace, name)] if plural in OURS else []
    if plural == "trainingruns":
        model = (meta.get("labels") or {}).get(MODEL_LABEL) or (_spec(body).get("model") or {}).get("name")
        for md in cache.list("modeldeployments", namespace):
            selector = _spec(md).get("model") or {}
            if selector.get("trainingRun") == name or (model and selector.get("name") == model):
                wake.append(("modeldeployments", namespace, md["metadata"]["name"]))
    elif plural == "datasets":
        for dataset in cache.list("datasets", namespace):  # a capture source adds rows to this one's version
            if ((_spec(dataset).get("source") or {}).get("capture") or {}).get("base") == name:
                wake.append(("datasets", namespace, dataset["metadata"]["name"]))
        for run in cache.list("trainingruns", namespace):
            waiting = not (run.get("status") or {}).get("dataset")
            if waiting and (_spec(run).get("datasetRef") or {}).get("name") == name:
                wake.append(("trainingruns", namespace, run["metadata"]["name"]))
    elif plural == "persistentvolumeclaims":
        wake += [("datasets", namespace, d["metadata"]["name"]) for d in cache.list("datasets", namespace)]
        wake += [
            ("trainingruns", namespace, r["metadata"]["name"])
            for r in cache.list("trainingruns", namespace)
            if (r.get("status") or {}).get("phase") not in TERMINAL_RUN_PHASES
        ]
    elif plural == "namespaces":  # its artifact store annotation: the Datasets may have a check to start
        wake += [("datasets", name, d["metadata"]["name"]) for d in cache.list("datasets", name)]
    elif plural == "httproutes":
        for md in cache.list("modeldeployments", namespace):
            routing = (_spec(md).get("trafficRouting") or {}).get("gatewayAPI") or {}
            if routing.get("httpRoute") == name:
                wake.append(("modeldeployments", namespace, md["metadata"]["name"]))
    return wake


def _watch(group: str, version: str, plural: str) -> None:
    async def on_event(event: dict[str, Any], **_: Any) -> None:
        body = event.get("object")
        if not body or event.get("type") not in ("ADDED", "MODIFIED", "DELETED", None):
            return
        body = copy.deepcopy(dict(body))
        if event.get("type") == "DELETED":
            CACHE.forget(plural, body)
        else:
            CACHE.observe(plural, body)
        WAKERS.wake(objects_to_wake(plural, body, CACHE))

    kopf.on.event(group, version, plural, id=f"watch-{plural}")(on_event)


for _plural in OURS:
    _watch(GROUP, VERSION, _plural)
_watch("batch", "v1", "jobs")
_watch("", "v1", "pods")
_watch("apps", "v1", "deployments")
_watch("", "v1", "services")
_watch("autoscaling", "v2", "horizontalpodautoscalers")
_watch("", "v1", "persistentvolumeclaims")
_watch("gateway.networking.k8s.io", "v1", "httproutes")
_watch("", "v1", "namespaces")
