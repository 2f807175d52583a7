"""Which objects are ours: a child is the operator's to change or delete only when its controller owner
reference names the very object that wants it (by uid). An object of the same name that does not — a
user's Service, another ModelDeployment's child, a Job made with our labels — is left untouched, and the
object that wanted the name reports `NameConflict` (controllers.contract.name_conflict_outcome).

Labels say nothing here: anyone who can create an object in the namespace can give it our labels.
"""

from __future__ import annotations

from typing import Any

# The kind of each child plural, for the words of a conflict.
KIND_OF = {
    "deployments": "Deployment",
    "services": "Service",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "jobs": "Job",
}


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference marked controller, if any."""
    return next((o for o in (obj.get("metadata") or {}).get("ownerReferences") or [] if o.get("controller")), None)


def controlled_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether `obj` is the child of the object with `uid` (its controller owner reference names it)."""
    owner = controller_of(obj)
    return owner is not None and owner.get("uid") == uid


def holder(obj: dict[str, Any]) -> str:
    """Who the object belongs to, in words."""
    owner = controller_of(obj)
    if owner is None:
        return "it was not created by the operator"
    return f"it belongs to {owner.get('kind')} {owner.get('name')} (uid {owner.get('uid')})"


class NameConflict(Exception):
    """The name of a child is taken by an object that is not this parent's: nothing of it was changed."""

    def __init__(self, plural: str, obj: dict[str, Any]) -> None:
        self.kind = KIND_OF.get(plural, plural)
        self.name = obj["metadata"]["name"]
        self.held = holder(obj)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return (
            f"{self.kind} {self.name} already exists and {self.held}: the operator leaves it untouched; "
            f"delete or rename that {self.kind}, or give this object another name"
        )


def owned(plural: str, obj: dict[str, Any] | None, uid: str) -> dict[str, Any] | None:
    """`obj` when it is the child of `uid`, None when there is none; NameConflict when the name is taken."""
    if obj is not None and not controlled_by(obj, uid):
        raise NameConflict(plural, obj)
    return obj
