"""HTTPRoute weights: only our backendRefs change; everything else in the user's route is left alone."""

from __future__ import annotations

import copy

import jsonpatch

from mlops_operator.resources.routing import routed_weight, weight_patch

ROUTE = {
    "spec": {
        "parentRefs": [{"name": "gw"}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                "backendRefs": [{"name": "other", "port": 80, "weight": 5}],
            },
            {
                "backendRefs": [
                    {"name": "iris-stable", "port": 80, "weight": 100},
                    {"name": "iris-canary", "port": 80, "weight": 0},
                    {"name": "mirror", "port": 80, "weight": 7},
                ]
            },
        ],
    }
}


def test_only_our_weights_change() -> None:
    operations = weight_patch(ROUTE, stable="iris-stable", canary="iris-canary", canary_weight=30)
    patched = jsonpatch.apply_patch(copy.deepcopy(ROUTE), operations)
    expected = copy.deepcopy(ROUTE)
    expected["spec"]["rules"][1]["backendRefs"][0]["weight"] = 70
    expected["spec"]["rules"][1]["backendRefs"][1]["weight"] = 30
    assert patched == expected
    assert routed_weight(patched, stable="iris-stable", canary="iris-canary") == 30


def test_no_change_no_patch_and_no_refs_no_weight() -> None:
    assert weight_patch(ROUTE, stable="iris-stable", canary="iris-canary", canary_weight=0) == []
    assert routed_weight(ROUTE, stable="a", canary="b") is None


def test_the_patch_tests_names_first() -> None:
    operations = weight_patch(ROUTE, stable="iris-stable", canary="iris-canary", canary_weight=50)
    assert operations[0] == {"op": "test", "path": "/spec/rules/1/backendRefs/0/name", "value": "iris-stable"}
    moved = copy.deepcopy(ROUTE)
    moved["spec"]["rules"][1]["backendRefs"].reverse()  # edited by someone else meanwhile
    try:
        jsonpatch.apply_patch(moved, operations)
    except jsonpatch.JsonPatchTestFailed:
        return
    raise AssertionError("a stale patch must not apply")
