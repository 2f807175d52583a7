"""Traffic weights on a user's HTTPRoute (Gateway API): we own only the weights of our own backendRefs.

The route belongs to the user (or to Argo CD): everything else in it — other rules, other backends,
matches, filters — stays as it is. The change is a JSON patch with a `test` of each backendRef's
name before its weight is set, so a route edited meanwhile makes the patch fail instead of writing
a weight into someone else's backend.
"""

from __future__ import annotations

from typing import Any


def weight_patch(route: dict[str, Any], *, stable: str, canary: str, canary_weight: int) -> list[dict[str, Any]]:
    """JSON patch operations setting stable to 100-w and canary to w wherever the route refers to them."""
    wanted = {stable: 100 - canary_weight, canary: canary_weight}
    operations: list[dict[str, Any]] = []
    for r, rule in enumerate(route.get("spec", {}).get("rules") or []):
        for b, ref in enumerate(rule.get("backendRefs") or []):
            name = ref.get("name")
            if name not in wanted or ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
                continue
            if ref.get("weight", 1) == wanted[name]:
                continue
            path = f"/spec/rules/{r}/backendRefs/{b}"
            operations += [
                {"op": "test", "path": f"{path}/name", "value": name},
                {"op": "add", "path": f"{path}/weight", "value": wanted[name]},
            ]
    return operations


def routed_weight(route: dict[str, Any], *, stable: str, canary: str) -> int | None:
    """The canary's share in percent as the route says now (first rule that refers to both), or None."""
    for rule in route.get("spec", {}).get("rules") or []:
        weights = {ref.get("name"): ref.get("weight", 1) for ref in rule.get("backendRefs") or []}
        if stable in weights and canary in weights:
            total = weights[stable] + weights[canary]
            return round(100 * weights[canary] / total) if total else 0
    return None
