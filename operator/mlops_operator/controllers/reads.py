"""The reads a reconcile makes beyond its own object: the namespace's configuration and artifact store, a
child, a Job's pods — from the watch cache, and from the API server only on a miss (a moment of change,
never the idle state)."""

from __future__ import annotations

from typing import Any

from ..adapters import kube
from ..api.names import JOB_NAME_LABEL
from ..config import OperatorConfig
from ..resources.jobs import pods_of_job
from ..resources.ownership import owned
from .cache import CACHE


def namespace_config(namespace: str) -> tuple[OperatorConfig, str | None]:
    """The operator's configuration for the objects of a namespace: its own artifact store if the
    namespace names one (config.STORE_ANNOTATION), and why that annotation is refused, if it is."""
    found = CACHE.get("namespaces", "", namespace)
    if found is None and (found := kube.read_namespace(namespace)) is not None:  # watch not listed yet
        CACHE.observe("namespaces", found)
    return OperatorConfig.from_env().for_namespace(((found or {}).get("metadata") or {}).get("annotations"))


def artifact_store_problem(namespace: str) -> str | None:
    """Jobs and servers mount the namespace's artifact claim: say so plainly when it is missing. (With
    the artifacts in object storage there is no claim: what the pods cannot reach, they report.)"""
    config, refused = namespace_config(namespace)
    if refused:
        return refused
    if config.uses_object_store:
        return None
    claim = config.artifact_pvc
    # The claims are watched (by name): the cache answers, and a new claim wakes who waits for it.
    found = CACHE.get("persistentvolumeclaims", namespace, claim)
    if found is None and (found := kube.read_pvc(namespace, claim)) is not None:  # watch not listed yet
        CACHE.observe("persistentvolumeclaims", found)
    if found is None:
        return (
            f"the artifact store PersistentVolumeClaim {claim} does not exist in namespace {namespace}; "
            "create it (ReadWriteMany, or ReadWriteOnce on a single node) and this resumes by itself"
        )
    return None


def read_child(plural: str, namespace: str, name: str, *, uid: str) -> dict[str, Any] | None:
    """The child of the object with `uid` named `name`, None if there is none: from the cache, and on a
    miss (just deleted, or its watch has not listed yet) from the API — a moment of change (the child is
    about to be created), never the idle state. NameConflict when an object that is not that child holds
    the name (resources.ownership): nothing of it is read further."""
    found = CACHE.get(plural, namespace, name)
    if found is None:
        read = {"jobs": kube.read_job, "deployments": kube.read_deployment}[plural]
        found = owned(plural, read(namespace, name), uid)  # never cached if foreign: the watch (our labels)
        if found is not None:  # would not deliver its deletion, and the conflict would outlive the object
            CACHE.observe(plural, found)
        return found
    return owned(plural, found, uid)


def job_pods(namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods this Job made (resources.jobs.pods_of_job: owned by its uid, running its template), from
    the cache; listed from the API when a finished Job has none there. Pods that only carry its labels
    are not its pods: their termination messages are never read."""
    selector = {JOB_NAME_LABEL: job["metadata"]["name"]}
    pods = pods_of_job(CACHE.list("pods", namespace, labels=selector), job)
    if not pods:
        listed = kube.list_pods(namespace, selector)
        for pod in listed:
            CACHE.observe("pods", pod)
        pods = pods_of_job(listed, job)
    return pods
