"""Writing the children: each is created only if its name is free, and changed (or deleted) only while it
is the child of the object that wants it (resources.ownership). An object of the same name that is not
raises NameConflict and is left untouched; the loop reports it on the parent (contract.name_conflict_outcome).
"""

from __future__ import annotations

from typing import Any

from ..adapters import kube
from ..resources.jobs import job_finished
from ..resources.ownership import NameConflict, controlled_by, owned
from ..resources.serving import is_current, with_fingerprint
from .cache import CACHE


def cached_child(plural: str, namespace: str, name: str, *, uid: str) -> dict[str, Any] | None:
    """The watched child of `uid` named `name` (None: none watched); NameConflict when the watched object
    of that name is not that child (it carries our labels, which anyone can write, but not our owner)."""
    return owned(plural, CACHE.get(plural, namespace, name), uid)


def ensure_child(plural: str, namespace: str, desired: dict[str, Any], *, uid: str) -> dict[str, Any]:
    """The child as it is after making it `desired`: created if the name is free, applied only when the
    watched one is ours and differs; NameConflict when the name is taken by an object that is not ours."""
    desired = with_fingerprint(desired)
    name = desired["metadata"]["name"]
    actual = cached_child(plural, namespace, name, uid=uid)
    if actual is None:
        actual, created = kube.create_child(plural, namespace, desired)
        owned(plural, actual, uid)  # the name was taken: someone else's object, or ours not yet watched
        CACHE.observe(plural, actual)
        if created:
            return actual
    if is_current(desired, actual):
        return actual
    applied = kube.apply_child(plural, namespace, desired, uid=actual["metadata"]["uid"])
    CACHE.observe(plural, applied)
    return applied


def create_job(namespace: str, body: dict[str, Any], *, uid: str) -> dict[str, Any]:
    """Create a Job with a deterministic name, or find the one created before (idempotent children); a Job
    of that name that is not the child of `uid` raises NameConflict: its pods' results are never read."""
    job, _ = kube.create_child("jobs", namespace, body)
    return owned("jobs", job, uid)  # type: ignore[return-value]


def expire_recorded_job(namespace: str, name: str, *, uid: str, seconds: int) -> None:
    """Once a finished Job's result is recorded in its owner's status, let the TTL controller remove it and
    its pods `seconds` after it finished (kept that long for `kubectl logs`). Only the watched Job, only
    ours, only once: a Job already given a TTL, or gone, costs nothing."""
    job = CACHE.get("jobs", namespace, name)
    if job is None or not controlled_by(job, uid) or job_finished(job) is None:
        return
    if (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
        return
    try:
        CACHE.observe("jobs", kube.expire_job(namespace, name, uid=job["metadata"]["uid"], seconds=seconds))
    except kube.ApiException as error:
        if error.status not in (404, 409, 422):  # gone, or no longer that Job: nothing of ours to expire
            raise


__all__ = ["NameConflict", "cached_child", "create_job", "ensure_child", "expire_recorded_job"]
