"""Unchanged children are not re-sent to the API server on every resync, but still now and then."""

from __future__ import annotations

from mlops_operator import kube


def test_an_unchanged_body_is_applied_again_only_after_the_interval(monkeypatch) -> None:
    calls = []
    clock = [1000.0]
    monkeypatch.setattr(kube.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(kube, "_last_applied", {})

    def patch(name, namespace, body, **_):
        calls.append((name, namespace, body["spec"]["x"]))

    body = {"kind": "Service", "metadata": {"name": "iris"}, "spec": {"x": 1}}
    assert kube.server_side_apply_if_changed(patch, "ml", body)
    clock[0] += 1
    assert not kube.server_side_apply_if_changed(patch, "ml", body), "unchanged, 1 s later: skipped"
    assert kube.server_side_apply_if_changed(patch, "ml", {**body, "spec": {"x": 2}}), "a change is applied at once"
    assert kube.server_side_apply_if_changed(patch, "other", {**body, "spec": {"x": 2}}), "per namespace"
    clock[0] += kube.REAPPLY_UNCHANGED_SECONDS
    assert kube.server_side_apply_if_changed(patch, "ml", {**body, "spec": {"x": 2}}), "re-applied after the interval"
    assert calls == [("iris", "ml", 1), ("iris", "ml", 2), ("iris", "other", 2), ("iris", "ml", 2)]
