"""The ModelDeployment controller, reconcile after reconcile, with its reads answered from memory and its
writes recorded: what it serves first, what it leaves alone when nothing changed, how it starts a canary,
and what a rollback writes — the Deployments, Services, Secret, marks and Events a user would see."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.config import OperatorConfig
from mlops_operator.controllers import children, reads
from mlops_operator.controllers import modeldeployment as controller
from mlops_operator.controllers.cache import ObjectCache
from mlops_operator.controllers.contract import Observed, apply_merge_patch, status_patch
from mlops_operator.resources.ownership import NameConflict
from mlops_operator.rollout.analysis import MetricResult

NS, NOW = "ml", "2026-01-01T00:00:00.000Z"
SPEC = {
    "model": {"name": "iris"},
    "replicas": 2,
    "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
    "analysis": {
        "interval": "5s",
        "failureLimit": 1,
        "metrics": [{"name": "errors", "template": "errorRate", "threshold": 0.05}],
    },
    "postPromotion": {"enabled": False},
}


def run(name: str, *, champion: bool, decided_at: str = NOW) -> dict:
    """A succeeded TrainingRun of model iris with its stored version."""
    labels = {"mlops.dev/model": "iris", **({"mlops.dev/promoted": "true"} if champion else {})}
    model = {"version": name, "uri": f"s3://b/models/ml/iris/{name}-u", "sha256": name[-1] * 64, "calibrated": True}
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "1", "labels": labels},
        "spec": {"model": {"name": "iris"}},
        "status": {
            "phase": "Succeeded",
            "model": model,
            "promotion": {"decision": "Promoted", "decidedAt": decided_at},
        },
    }


class World:
    """The cluster as the controller sees it: the cache, the API writes (recorded), a measurement."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cache, self.status, self.writes, self.rv = ObjectCache(), {}, [], 10
        self.pods_ready, self.measurement = True, None
        monkeypatch.setattr(controller, "CACHE", self.cache)
        monkeypatch.setattr(children, "CACHE", self.cache)
        monkeypatch.setattr(reads, "CACHE", self.cache)
        monkeypatch.setattr(controller, "namespace_config", lambda namespace: (OperatorConfig(), None))
        monkeypatch.setattr(controller, "take_measurement", lambda key, *, version, measure: self.measurement)
        self.server: dict[tuple[str, str], dict] = {}  # what the API server holds, ours or not (by plural, name)
        monkeypatch.setattr(controller.kube, "create_child", self._create_child)
        monkeypatch.setattr(controller.kube, "apply_child", self._apply_child)
        monkeypatch.setattr(controller.kube, "create_secret", self._create_secret)
        monkeypatch.setattr(controller.kube, "scale_deployment", self._scale)
        monkeypatch.setattr(controller.kube, "patch_metadata", self._patch_metadata)
        # Reads on a cache miss (a watch that has not listed yet): what the API server holds.
        monkeypatch.setattr(controller.kube, "read_deployment", lambda ns, name: self.server.get(("deployments", name)))
        monkeypatch.setattr(controller.kube, "get_custom", lambda plural, ns, name: self.server.get((plural, name)))

    def _version(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _stored(self, plural: str, namespace: str, body: dict) -> dict:
        name = body["metadata"]["name"]
        uid = (self.server.get((plural, name)) or {}).get("metadata", {}).get("uid") or f"uid-{plural}-{name}"
        stored = {**body, "metadata": {**body["metadata"], "namespace": namespace, "uid": uid}}
        if plural == "deployments":
            stored = self._with_status(stored)
        else:
            stored["metadata"]["resourceVersion"] = self._version()
        self.server[(plural, name)] = stored
        return stored

    def _create_child(self, plural: str, namespace: str, body: dict) -> tuple[dict, bool]:
        held = self.server.get((plural, body["metadata"]["name"]))
        if held is not None:
            return held, False
        self.writes.append((f"create {plural}", body["metadata"]["name"]))
        return self._stored(plural, namespace, body), True

    def _apply_child(self, plural: str, namespace: str, body: dict, *, uid: str) -> dict:
        assert self.server[(plural, body["metadata"]["name"])]["metadata"]["uid"] == uid, "applied over another"
        self.writes.append((f"apply {plural}", body["metadata"]["name"]))
        return self._stored(plural, namespace, body)

    def _with_status(self, body: dict) -> dict:
        replicas = body["spec"]["replicas"]
        ready = replicas if self.pods_ready else 0
        status = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": ready, "readyReplicas": ready}
        metadata = {**body["metadata"], "generation": 1, "resourceVersion": self._version()}
        return {**body, "metadata": metadata, "status": status}

    def _create_secret(self, namespace: str, body: dict) -> str:
        self.writes.append(("create secrets", body["metadata"]["generateName"]))
        return body["metadata"]["generateName"] + "x1"

    def _scale(self, namespace: str, name: str, replicas: int) -> dict:
        self.writes.append(("scale deployments", f"{name}={replicas}"))
        found = self.cache.get("deployments", namespace, name)
        return self._stored("deployments", namespace, {**found, "spec": {**found["spec"], "replicas": replicas}})

    def _patch_metadata(self, plural: str, namespace: str, name: str, patch: dict) -> dict:
        self.writes.append((f"patch {plural}", name))
        found = self.cache.get(plural, namespace, name)
        metadata = found["metadata"]
        labels = {**(metadata.get("labels") or {}), **(patch.get("labels") or {})}
        annotations = {**(metadata.get("annotations") or {}), **(patch.get("annotations") or {})}
        merged = {**metadata, "labels": labels, "annotations": annotations, "resourceVersion": self._version()}
        return {**found, "metadata": merged}

    def add(self, body: dict) -> None:
        self.cache.observe(
            "trainingruns", {**body, "metadata": {**body["metadata"], "resourceVersion": self._version()}}
        )

    def reconcile(self, spec: dict = SPEC) -> Any:
        """One reconcile; the status written back as the API server would; what it wrote since the last one."""
        self.writes = []
        meta = {"name": "iris", "namespace": NS, "uid": "md-uid", "generation": 1, "annotations": {}}
        observed = Observed(body={"metadata": meta}, status=json.loads(json.dumps(self.status)), generation=1, now=NOW)
        outcome = controller.reconcile_modeldeployment(ModelDeploymentSpec.model_validate(spec), observed, None)
        self.status = apply_merge_patch(
            self.status, json.loads(json.dumps(status_patch(observed.status, outcome.status)))
        )
        return outcome

    def deployment(self, variant: str) -> dict:
        return self.cache.get("deployments", NS, f"iris-{variant}")


def test_the_champion_is_served_first_with_its_services_and_one_receipt_key(monkeypatch) -> None:
    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    outcome = world.reconcile()
    assert [(e.reason, e.warning) for e in outcome.events] == [("Deployed", False)]
    assert sorted(world.writes) == [
        ("create deployments", "iris-canary"),
        ("create deployments", "iris-stable"),
        ("create secrets", "iris-receipts-"),
        ("create services", "iris"),
        ("create services", "iris-canary"),
        ("create services", "iris-stable"),
    ]
    stable = world.deployment("stable")
    assert stable["spec"]["replicas"] == 2 and world.deployment("canary")["spec"]["replicas"] == 0
    assert stable["metadata"]["ownerReferences"][0]["uid"] == "md-uid"
    assert stable["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "iris-a"
    assert (world.status["stable"]["version"], world.status["receiptKeySecret"]) == ("iris-a", "iris-receipts-x1")
    assert world.status["phase"] == "Healthy"


def test_nothing_changed_means_no_write_and_no_event(monkeypatch) -> None:
    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    world.reconcile()
    outcome = world.reconcile()
    assert world.writes == [] and outcome.events == [], "a settled ModelDeployment writes nothing"


def test_an_upgraded_operator_rolls_the_servers_only_in_a_free_slot_even_before_its_watch_has_listed_them(
    monkeypatch,
) -> None:
    """Restarted with a new server image (an upgrade) and one roll at a time while another ModelDeployment's
    servers roll: this one's Deployments, not yet watched, are read, left as they are and the wait is in
    status; once the other roll completes this one rolls, marked as an upgrade roll."""
    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    world.reconcile()
    before = world.deployment("stable")["spec"]["template"]
    upgraded = OperatorConfig(image="mlops-operator:next", server_upgrades_at_once=1)
    monkeypatch.setattr(controller, "namespace_config", lambda namespace: (upgraded, None))
    other = {
        "metadata": {
            "name": "other-stable",
            "namespace": "team-b",
            "generation": 2,
            "labels": {"mlops.dev/deployment": "other"},
            "annotations": {"mlops.dev/upgrade-roll": "t2"},
            "ownerReferences": [
                {
                    "apiVersion": "mlops.dev/v1alpha1",
                    "kind": "ModelDeployment",
                    "name": "other",
                    "uid": "other-uid",
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2},
    }
    for variant in ("stable", "canary"):  # the restart: the Deployments are not watched yet
        world.cache.forget("deployments", world.deployment(variant))
    world.cache.observe("deployments", other)
    world.cache.observe("modeldeployments", {"metadata": {"name": "other", "namespace": "team-b", "uid": "other-uid"}})
    world.reconcile()
    assert not [w for w in world.writes if w[0].endswith("deployments")], world.writes
    assert world.server[("deployments", "iris-stable")]["spec"]["template"] == before
    assert world.status["serverUpgrade"].startswith("waiting to roll the servers"), world.status
    world.cache.observe("deployments", {**other, "status": {**other["status"], "updatedReplicas": 2, "replicas": 2}})
    world.reconcile()
    assert ("apply deployments", "iris-stable") in world.writes
    stable = world.deployment("stable")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "mlops-operator:next"
    assert stable["metadata"]["annotations"]["mlops.dev/upgrade-roll"]
    assert world.status["serverUpgrade"].startswith("rolling the servers"), world.status


def test_a_new_champion_starts_a_canary_and_stable_keeps_its_pods_until_the_canarys_are_ready(monkeypatch) -> None:
    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    world.reconcile()
    world.pods_ready = False
    world.add(run("iris-a", champion=False))
    world.add(run("iris-b", champion=True, decided_at="2026-01-01T00:00:01.000Z"))
    outcome = world.reconcile()
    assert [e.reason for e in outcome.events] == ["CanaryStarted"]
    canary = world.deployment("canary")
    assert canary["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "iris-b"
    assert (world.deployment("stable")["spec"]["replicas"], canary["spec"]["replicas"]) == (2, 1)
    assert world.status["canary"]["version"] == "iris-b" and world.status["canary"]["weight"] == 33


def test_a_failed_measurement_rolls_back_marks_the_version_and_scales_its_pods_away(monkeypatch) -> None:
    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    world.reconcile()
    world.add(run("iris-a", champion=False))
    world.add(run("iris-b", champion=True, decided_at="2026-01-01T00:00:01.000Z"))
    world.reconcile()  # the canary at 50 %, every pod ready
    world.reconcile()  # the setWeight step completed: now the analysis step
    failed = MetricResult("errors", "Failed", 0.5, "errors 0.5 > 0.05")
    world.measurement = ("Failed", failed.message, [failed])
    outcome = world.reconcile()
    assert [(e.reason, e.warning) for e in outcome.events] == [("RolledBack", True)]
    assert world.status["degraded"]["reason"] == "AnalysisFailed" and "iris-b" in world.status["failedVersions"]
    assert ("patch trainingruns", "iris-b") in world.writes, "the rollback is recorded on the version"
    marked = world.cache.get("trainingruns", NS, "iris-b")["metadata"]["labels"]
    assert marked.get("mlops.dev/rolled-back") == "true"
    # The version judged bad keeps one pod for each stable pod not yet ready (stable was at 1 of 2): its
    # pods are only scaled, never re-templated; once stable is whole they go.
    canary = world.deployment("canary")
    assert canary["spec"]["replicas"] == 1, world.writes
    assert canary["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "iris-b"
    world.reconcile()
    assert world.deployment("canary")["spec"]["replicas"] == 0 and world.status["stable"]["readyReplicas"] == 2


def test_a_service_of_the_same_name_that_is_not_ours_is_left_untouched(monkeypatch) -> None:
    world = World(monkeypatch)
    users = {"metadata": {"name": "iris", "namespace": NS, "uid": "user-svc"}, "spec": {"selector": {"app": "mine"}}}
    world.server[("services", "iris")] = json.loads(json.dumps(users))
    world.add(run("iris-a", champion=True))
    with pytest.raises(NameConflict) as raised:
        world.reconcile()
    assert raised.value.message.startswith("Service iris already exists and it was not created by the operator")
    assert world.server[("services", "iris")] == users, "the user's Service was changed"
    assert ("apply services", "iris") not in world.writes and ("create services", "iris") not in world.writes


def test_a_child_with_our_labels_but_another_owner_is_never_changed(monkeypatch) -> None:
    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    world.reconcile()
    # Someone replaces the stable Deployment by one of their own, with our labels (anyone can write labels).
    forged = json.loads(json.dumps(world.deployment("stable")))
    forged["metadata"]["ownerReferences"][0]["uid"] = "another-md"
    forged["metadata"]["uid"] = "forged"
    forged["metadata"]["resourceVersion"] = world._version()
    world.cache.observe("deployments", forged)
    world.server[("deployments", "iris-stable")] = forged
    with pytest.raises(NameConflict) as raised:
        world.reconcile({**SPEC, "replicas": 3})
    assert "belongs to ModelDeployment iris (uid another-md)" in raised.value.message
    assert not [w for w in world.writes if w[1].startswith("iris-stable")], world.writes


def test_a_stalled_upgrade_roll_says_what_its_new_pods_said_and_looks_again_only_while_they_may_say_it(
    monkeypatch,
) -> None:
    """The servers' roll onto an upgraded operator's template stalls (the Deployment controller's progress
    deadline): the status says so with a Warning Event; until a new pod has said why, the ModelDeployment
    looks again in 30 s (for 5 minutes, not for ever); a pod list it may not read only leaves the words out."""
    import datetime as dt

    from mlops_operator.api.clock import format_time, utc_now

    world = World(monkeypatch)
    world.add(run("iris-a", champion=True))
    world.reconcile()
    upgraded = OperatorConfig(image="mlops-operator:next")
    monkeypatch.setattr(controller, "namespace_config", lambda namespace: (upgraded, None))
    world.reconcile()
    rolling = world.deployment("stable")
    said: list[Any] = []
    monkeypatch.setattr(controller.kube, "list_pods", lambda ns, labels: said.pop(0) if said else [])

    def stall(seconds_ago: float) -> None:
        at = format_time(utc_now() - dt.timedelta(seconds=seconds_ago))
        gave_up = {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "lastTransitionTime": at,
        }
        status = {**rolling["status"], "updatedReplicas": 1, "availableReplicas": 2, "conditions": [gave_up]}
        world.cache.observe("deployments", {**rolling, "status": status})

    stall(1)
    outcome = world.reconcile()
    assert world.status["serverUpgrade"].startswith("stalled: the stable servers of iris-a"), world.status
    assert [(e.reason, e.warning) for e in outcome.events] == [("UpgradeStalled", True)]
    assert outcome.wake_at is not None and outcome.wake_at - utc_now() <= dt.timedelta(seconds=30)
    refusing = {
        "metadata": {
            "labels": {"mlops.dev/version": "iris-a"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "iris-stable-5c9", "controller": True}],
        },
        "status": {
            "containerStatuses": [
                {
                    "name": "server",
                    "lastState": {"terminated": {"message": "refusing to serve x: ModelNotReproducible: y"}},
                }
            ]
        },
    }
    said.append([refusing])
    outcome = world.reconcile()
    assert (
        "(refusing to serve x: ModelNotReproducible: y); the old pods keep serving it" in world.status["serverUpgrade"]
    )
    assert outcome.wake_at is None, "said why: nothing more to look for"
    stall(600)
    said.append([])
    assert world.reconcile().wake_at is None, "10 minutes on, a pod that never said why is not looked for again"

    def forbidden(ns: str, labels: dict) -> list:
        raise controller.kube.ApiException(status=403)

    monkeypatch.setattr(controller.kube, "list_pods", forbidden)
    world.reconcile()
    assert world.status["serverUpgrade"].startswith("stalled"), "the words are left out, nothing fails"


def _json_patch(body: dict, operations: list[dict]) -> dict:
    """RFC 6902 `test` and `add`, as the API server applies them to an HTTPRoute."""
    body = json.loads(json.dumps(body))
    for operation in operations:
        *parents, last = operation["path"].strip("/").split("/")
        target = body
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if operation["op"] == "test":
            assert target[last] == operation["value"], f"test failed at {operation['path']}"
        else:
            target[last] = operation["value"]
    return body


def test_a_route_the_watch_never_brought_is_read_weighted_and_looked_at_again_until_the_step_completes(
    monkeypatch,
) -> None:
    """The Gateway API installed after the operator started: its HTTPRoutes may not be watched (kopf looks
    for a new API only on a CRD event). The route is read on the cache miss, weighted, and the rollout looks
    again by itself — at once after a weight was set, every 10 s while the route does not carry it — since
    no event of the route's will come; an unwatched route is never kept in the cache (it would go stale)."""
    import datetime as dt

    from mlops_operator.api.clock import utc_now

    world = World(monkeypatch)
    refs = [{"name": "iris-stable", "port": 80, "weight": 100}, {"name": "iris-canary", "port": 80, "weight": 0}]
    route = {
        "metadata": {"name": "iris-route", "namespace": NS, "uid": "r1"},
        "spec": {"rules": [{"backendRefs": refs}]},
    }
    reads = []

    def read_route(namespace: str, name: str) -> dict | None:
        reads.append(name)
        return world.server.get(("httproutes", name))

    def patch_route(namespace: str, name: str, operations: list[dict]) -> dict:
        world.writes.append(("patch httproutes", name))
        world.server[("httproutes", name)] = _json_patch(world.server[("httproutes", name)], operations)
        return world.server[("httproutes", name)]

    monkeypatch.setattr(controller.kube, "read_httproute", read_route)
    monkeypatch.setattr(controller.kube, "json_patch_httproute", patch_route)
    spec = {
        **SPEC,
        "analysis": {**SPEC["analysis"], "interval": "1h"},  # nothing else wakes the rollout soon
        "trafficRouting": {"mode": "GatewayAPI", "gatewayAPI": {"httpRoute": "iris-route"}},
    }
    world.add(run("iris-a", champion=True))
    world.reconcile(spec)
    assert world.status["routing"] == "HTTPRoute iris-route does not exist: traffic cannot be shifted"
    world.add(run("iris-a", champion=False))
    world.add(run("iris-b", champion=True, decided_at="2026-01-01T00:00:01.000Z"))
    world.reconcile(spec)  # the canary starts; its first measurement is due at once
    passed = MetricResult("errors", "Successful", 0.0, "errors 0 <= 0.05")
    world.measurement = ("Successful", passed.message, [passed])  # the next one in 1 h
    outcome = world.reconcile(spec)
    assert world.status["canary"]["stepIndex"] == 0 and world.status["lastAnalysis"], world.status
    assert "does not exist" in world.status["routing"], "the step is held while the route is missing"
    after = outcome.wake_at - utc_now()
    assert dt.timedelta(seconds=5) < after <= dt.timedelta(seconds=10), f"looks again in {after}, not in 10 s"
    world.server[("httproutes", "iris-route")] = route  # the route made: no event tells the operator
    outcome = world.reconcile(spec)  # looked at again: read, and 50 % set on it
    weights = [r["weight"] for r in world.server[("httproutes", "iris-route")]["spec"]["rules"][0]["backendRefs"]]
    assert weights == [50, 50] and ("patch httproutes", "iris-route") in world.writes
    assert world.status["canary"]["weight"] == 50 and world.status["canary"]["stepIndex"] == 0
    after = outcome.wake_at - utc_now()
    assert after <= dt.timedelta(seconds=1), f"the step completes only when looked at again: in {after}"
    assert world.cache.get("httproutes", NS, "iris-route") is None, "an unwatched route was kept in the cache"
    world.reconcile(spec)  # the route carries 50 %: the setWeight step is done
    assert world.status["canary"]["stepIndex"] == 1, world.status["canary"]
    assert reads.count("iris-route") == 5, reads
