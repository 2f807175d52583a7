"""The model-server Deployment as the operator builds it: what keeps a slow start alive and a scaled-away
pod answering, and a fingerprint that changes exactly when the Deployment would."""

from __future__ import annotations

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec, VersionStatus
from mlops_operator.api.names import SERVER_TEMPLATE_ANNOTATION, UPGRADE_ROLL_ANNOTATION
from mlops_operator.config import OperatorConfig
from mlops_operator.resources.serving import (
    DESIRED_ANNOTATION,
    desired_server_deployment,
    held_replicas,
    is_current,
    operator_retemplate,
    plan_serving,
    running_version,
    selector_labels,
    server_refusal,
    upgrade_roll_finished,
    upgrade_rolling,
    upgrade_rolls,
    upgrade_stalled,
    with_fingerprint,
)

VERSION = {"version": "iris-a", "modelUri": "pvc://mlops-artifacts/models/ml/iris/iris-a", "sha256": "1" * 64}


def deployment(replicas: int = 2, version: dict = VERSION, server: dict | None = None, variant: str = "stable") -> dict:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}, **({"server": server} if server else {})})
    return desired_server_deployment(
        md="iris",
        uid="u",
        variant=variant,
        spec=spec,
        model="iris",
        version=version,
        replicas=replicas,
        config=OperatorConfig(),
    )


def test_a_slow_start_is_not_killed_by_liveness() -> None:
    [container] = deployment()["spec"]["template"]["spec"]["containers"]
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "minutes to start on a busy node"
    assert liveness["httpGet"] == startup["httpGet"]


@pytest.mark.parametrize(("server", "drain", "grace"), [(None, 10, None), ({"drainSeconds": 45}, 45, 65)])
def test_a_pod_scaled_away_answers_for_its_drain_then_has_20_s_for_requests_in_flight(server, drain, grace) -> None:
    """Kubernetes' default grace period (30 s, when the pod spec names none) covers the default drain."""
    pod = deployment(server=server)["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": drain}}
    assert pod.get("terminationGracePeriodSeconds") == grace


def test_no_drain_means_no_pre_stop_hook() -> None:
    pod = deployment(server={"drainSeconds": 0})["spec"]["template"]["spec"]
    assert "lifecycle" not in pod["containers"][0] and "terminationGracePeriodSeconds" not in pod


def test_the_fingerprint_follows_the_content() -> None:
    def fingerprint(body: dict) -> str:
        return with_fingerprint(body)["metadata"]["annotations"][DESIRED_ANNOTATION]

    assert fingerprint(deployment()) == fingerprint(deployment())
    assert fingerprint(deployment(replicas=3)) != fingerprint(deployment())
    assert fingerprint(deployment(version={**VERSION, "version": "iris-b"})) != fingerprint(deployment())


# Spread over nodes and leave a failed node after 30 s instead of Kubernetes' 300 (docs/serving.md).
SCHEDULING = {
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [
        {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
        for taint in ("unreachable", "not-ready")
    ],
    "topologySpreadConstraints": [
        {"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"},
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "minDomains": 3,
        },
    ],
}


@pytest.mark.parametrize("variant", ["stable", "canary"])
def test_scheduling_reaches_each_variants_pods_which_spread_among_their_own(variant: str) -> None:
    body = deployment(server=SCHEDULING, variant=variant)
    pod = body["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == SCHEDULING["tolerations"]
    own = selector_labels("iris", variant)
    assert own.items() <= body["spec"]["template"]["metadata"]["labels"].items(), "the constraint counts the pod itself"
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": own},
            "matchLabelKeys": ["pod-template-hash"],
        },
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "minDomains": 3,
            "labelSelector": {"matchLabels": own},
            "matchLabelKeys": ["pod-template-hash"],
        },
    ]


def test_without_scheduling_the_pod_template_is_what_it_was() -> None:
    """An operator upgrade must not roll every server pod: a spec without the fields (or with them empty)
    renders the pod spec it rendered before they existed, to the byte, hence the same fingerprint."""
    pod = deployment()["spec"]["template"]["spec"]
    assert pod.keys() == {
        "automountServiceAccountToken",
        "enableServiceLinks",
        "securityContext",
        "containers",
        "volumes",
    }
    empty = {"nodeSelector": {}, "tolerations": [], "topologySpreadConstraints": []}
    assert with_fingerprint(deployment(server=empty)) == with_fingerprint(deployment())


@pytest.mark.parametrize("field", sorted(SCHEDULING))
def test_a_change_of_scheduling_is_applied(field: str) -> None:
    applied = with_fingerprint(deployment())
    assert is_current(with_fingerprint(deployment()), applied)
    assert not is_current(with_fingerprint(deployment(server={field: SCHEDULING[field]})), applied)


@pytest.mark.parametrize(
    ("wanted", "current", "ready", "applied", "situation"),
    [
        ((4, 0), (4, 0), (4, 0), (4, 0), "settled"),
        ((3, 1), (4, 0), (4, 0), (4, 1), "a canary step: stable keeps its pods until the canary's is ready"),
        ((3, 1), (4, 1), (4, 1), (3, 1), "the canary's pod is ready: stable shrinks"),
        ((0, 4), (2, 2), (2, 2), (2, 4), "to 100 %: stable stays until every canary pod is ready"),
        ((0, 4), (2, 4), (2, 4), (0, 4), "at 100 %"),
        ((4, 0), (0, 4), (0, 4), (4, 4), "promoted at 100 %: the canary serves until stable runs the new version"),
        ((4, 0), (4, 4), (2, 4), (4, 2), "half of stable ready with the new version: half the canary goes"),
        ((4, 0), (4, 2), (4, 2), (4, 0), "stable at full strength: the canary goes"),
        ((4, 0), (2, 2), (2, 2), (4, 2), "promoted at 50 %: the canary keeps what stable lacks"),
        ((2, 0), (1, 1), (1, 0), (2, 0), "a canary pod that never got ready carries nothing: it goes"),
        ((1, 1), (2, 0), (1, 0), (1, 1), "a stable pod that is not ready is not kept for capacity"),
        ((4, 0), (0, 4), (0, 4), (4, 4), "rolled back at 100 %: the version judged bad serves until stable can"),
        ((4, 0), (4, 4), (1, 4), (4, 3), "one stable pod ready: one pod of the version judged bad goes"),
        ((4, 0), (1, 3), (1, 3), (4, 3), "rolled back at 75 %: its pods go one for one as stable's are ready"),
        ((4, 0), (4, 0), (0, 0), (4, 0), "nothing left to drain"),
    ],
)
def test_capacity_never_drops_while_traffic_moves(wanted, current, ready, applied, situation) -> None:
    total = max(sum(wanted), 1)
    assert held_replicas(wanted=wanted, current=current, ready=ready, total=total) == applied, situation


def _watched(body: dict, *, ready: int) -> dict:
    """A server Deployment as the watch delivers it once its controller has seen it: `ready` pods ready."""
    replicas = body["spec"]["replicas"]
    status = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": ready, "readyReplicas": ready}
    return {**body, "metadata": {**body["metadata"], "generation": 1}, "status": status}


def _plan(*, canary: VersionStatus | None, wanted: tuple[int, int], deployments: dict):
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}, "replicas": sum(wanted)})
    stable = VersionStatus(version="iris-a", model_uri=VERSION["modelUri"], sha256=VERSION["sha256"])
    where = {"md": "iris", "uid": "u", "namespace": "ml", "model": "iris", "config": OperatorConfig()}
    return plan_serving(
        spec, **where, stable=stable, canary=canary, wanted=wanted, deployments=deployments, receipt_secret="k"
    )


def test_the_serving_plan_for_a_canary_step_holds_stable_until_the_canary_is_ready() -> None:
    b = VersionStatus(version="iris-b", model_uri="pvc://mlops-artifacts/models/ml/iris/iris-b", sha256="2" * 64)
    settled = {"stable": _watched(deployment(replicas=4), ready=4), "canary": None}
    plan = _plan(canary=b, wanted=(2, 2), deployments=settled)
    assert (plan.stable.replicas, plan.canary.replicas, plan.canary_share) == (4, 2, 33)
    assert running_version(plan.canary.body) == "iris-b" and running_version(plan.stable.body) == "iris-a"
    assert [s["metadata"]["name"] for s in plan.services] == ["iris-stable", "iris-canary", "iris"]


def test_the_serving_plan_after_a_rollback_only_scales_the_canary_down() -> None:
    """No canary in status, but the canary Deployment still runs the version rolled back: it is scaled
    (never re-templated, which would restart its pods) as stable's pods come ready, then applied at 0."""
    rolled_back = deployment(replicas=4, version={**VERSION, "version": "iris-b"}, variant="canary")
    stable = deployment(replicas=4)
    plan = _plan(
        canary=None,
        wanted=(4, 0),
        deployments={"stable": _watched(stable, ready=1), "canary": _watched(rolled_back, ready=4)},
    )
    assert (plan.stable.replicas, plan.canary.replicas, plan.canary.body, plan.canary_share) == (4, 3, None, 0)
    whole = _plan(
        canary=None,
        wanted=(4, 0),
        deployments={"stable": _watched(stable, ready=4), "canary": _watched(rolled_back, ready=4)},
    )
    assert whole.canary.replicas == 0 and running_version(whole.canary.body) == "iris-a"


def test_capture_goes_to_the_namespaces_object_store_with_its_bounds() -> None:
    import dataclasses

    from mlops_operator.resources.serving import capture_plan

    spec = ModelDeploymentSpec.model_validate(
        {"model": {"name": "iris"}, "capture": {"sampleRate": 0.25, "retention": {"maxAge": "24h", "maxMegabytes": 64}}}
    )
    s3 = dataclasses.replace(OperatorConfig(), artifact_store="s3://mlops/artifacts")
    args, words = capture_plan(spec, md="iris", namespace="ml", config=s3)
    assert args == [
        "--capture-uri",
        "s3://mlops/artifacts/captures/ml/iris",
        "--capture-sample-rate",
        "0.25",
        "--capture-max-age-seconds",
        "86400",
        "--capture-max-bytes",
        str(64 << 20),
    ]
    assert words == "capturing 25% of the requests and the labels posted back to s3://mlops/artifacts/captures/ml/iris"
    body = desired_server_deployment(
        md="iris",
        uid="u",
        variant="stable",
        spec=spec,
        model="iris",
        version=VERSION,
        replicas=2,
        config=s3,
        capture_args=args,
    )
    assert body["spec"]["template"]["spec"]["containers"][0]["args"][-8:] == args
    args, words = capture_plan(spec, md="iris", namespace="ml", config=OperatorConfig())  # a claim: read-only
    assert args == [] and words.startswith("not captured: capture needs an object store (s3://)")
    off = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}, "capture": {"enabled": False}})
    assert capture_plan(off, md="iris", namespace="ml", config=s3) == ([], None)


def _plan_with(deployments: dict, *, config: OperatorConfig, may_upgrade: bool, server: dict | None = None):
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}, "replicas": 2, "server": server or {}})
    stable = VersionStatus(version="iris-a", model_uri=VERSION["modelUri"], sha256=VERSION["sha256"])
    where = {"md": "iris", "uid": "u", "namespace": "ml", "model": "iris", "config": config}
    return plan_serving(
        spec,
        **where,
        stable=stable,
        canary=None,
        wanted=(2, 0),
        deployments=deployments,
        receipt_secret=None,
        may_upgrade=may_upgrade,
    )


def _rolled(body: dict, *, updated: int) -> dict:
    """`body` as watched with `updated` of its pods on its template, all of them available."""
    replicas = body["spec"]["replicas"]
    status = {
        "observedGeneration": 2,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    return {**body, "metadata": {**body["metadata"], "namespace": "ml", "generation": 2}, "status": status}


def test_a_pod_template_only_the_operator_changed_waits_for_a_slot_and_holds_it_until_rolled() -> None:
    """An upgrade (here a new image) changes the servers' template while the version and the spec stay:
    without a slot the Deployment is only scaled; with one it rolls, marked, and keeps the slot until every
    pod runs the new template."""
    first = _plan_with({"stable": None, "canary": None}, config=OperatorConfig(), may_upgrade=False)
    running = _rolled(first.stable.body, updated=2)
    deployments = {"stable": running, "canary": None}
    upgraded = OperatorConfig(image="mlops-operator:next")
    waiting = _plan_with(deployments, config=upgraded, may_upgrade=False)
    assert (waiting.stable.body, waiting.stable.replicas, waiting.upgrade) == (None, 2, "waiting")
    rolling = _plan_with(deployments, config=upgraded, may_upgrade=True)
    assert rolling.upgrade == "rolling" and operator_retemplate(rolling.stable.body, running)
    marked = rolling.stable.body["metadata"]["annotations"]
    assert marked[UPGRADE_ROLL_ANNOTATION] == marked[SERVER_TEMPLATE_ANNOTATION]
    assert rolling.stable.body["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}

    mid_roll = _rolled(rolling.stable.body, updated=1)
    uids = {("ml", "iris"): "u"}
    assert upgrade_rolling(mid_roll) and upgrade_rolls([mid_roll, running], uids) == {("ml", "iris")}
    # Labels and annotations anyone can write hold no slot: another owner, or a name no child has.
    forged = {**mid_roll, "metadata": {**mid_roll["metadata"], "ownerReferences": []}}
    renamed = {**mid_roll, "metadata": {**mid_roll["metadata"], "name": "iris-extra"}}
    assert upgrade_rolls([forged, renamed], uids) == set() and upgrade_rolls([mid_roll], {}) == set()
    held = _plan_with({"stable": mid_roll, "canary": None}, config=upgraded, may_upgrade=False)
    assert held.upgrade == "rolling" and UPGRADE_ROLL_ANNOTATION in held.stable.body["metadata"]["annotations"]

    done = _rolled(rolling.stable.body, updated=2)
    assert not upgrade_rolling(done) and upgrade_rolls([done], uids) == set()
    settled = _plan_with({"stable": done, "canary": None}, config=upgraded, may_upgrade=False)
    assert settled.upgrade is None and UPGRADE_ROLL_ANNOTATION not in settled.stable.body["metadata"]["annotations"]
    assert settled.stable.body["spec"]["template"] == rolling.stable.body["spec"]["template"]


def test_a_roll_whose_new_pods_never_become_ready_stalls_and_frees_its_slot() -> None:
    """The new template's pods refuse the model (not reproducible on the new image): the Deployment
    controller gives up at the progress deadline; the old pods serve on, and other rolls may start."""
    first = _plan_with({"stable": None, "canary": None}, config=OperatorConfig(), may_upgrade=False)
    running = _rolled(first.stable.body, updated=2)
    upgraded = OperatorConfig(image="mlops-operator:next")
    rolling = _plan_with({"stable": running, "canary": None}, config=upgraded, may_upgrade=True)
    mid_roll = _rolled(rolling.stable.body, updated=1)
    uids = {("ml", "iris"): "u"}
    assert not upgrade_stalled(mid_roll) and not upgrade_roll_finished(mid_roll)
    gave_up = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    stalled = {**mid_roll, "status": {**mid_roll["status"], "conditions": [gave_up]}}
    assert upgrade_stalled(stalled) and upgrade_roll_finished(stalled), "its slot is free: waiting rolls wake"
    assert upgrade_rolls([stalled], uids) == set()
    held = _plan_with({"stable": stalled, "canary": None}, config=upgraded, may_upgrade=False)
    assert held.upgrade == "rolling" and held.stable.body["spec"]["template"] == rolling.stable.body["spec"]["template"]
    assert not upgrade_stalled({**running, "status": {**running["status"], "conditions": [gave_up]}}), "no roll"


def test_a_change_the_user_asked_for_rolls_at_once_and_an_older_operators_servers_wait() -> None:
    first = _plan_with({"stable": None, "canary": None}, config=OperatorConfig(), may_upgrade=False)
    running = _rolled(first.stable.body, updated=2)
    # spec.server changed: the template changes because the user asked, even during an upgrade.
    asked = _plan_with(
        {"stable": running, "canary": None}, config=OperatorConfig(), may_upgrade=False, server={"maxBatchSize": 8}
    )
    assert asked.upgrade is None and asked.stable.body["spec"]["template"] != running["spec"]["template"]
    assert not operator_retemplate(asked.stable.body, running)
    # A new version is a rollout of its own, never an upgrade roll.
    other = deployment(version={**VERSION, "version": "iris-b"})
    assert not operator_retemplate(other, running) and not operator_retemplate(running, None)
    # Made by an operator that recorded neither fingerprint: its template may differ, so it waits for a slot.
    older = {**running, "metadata": {k: v for k, v in running["metadata"].items() if k != "annotations"}}
    assert (
        _plan_with({"stable": older, "canary": None}, config=OperatorConfig(), may_upgrade=False).upgrade == "waiting"
    )
    # Unchanged: nothing to roll.
    same = _plan_with({"stable": running, "canary": None}, config=OperatorConfig(), may_upgrade=False)
    assert same.upgrade is None and same.stable.body is not None


def server_pod(*, owner: str = "iris-canary-7d9f", version: str = "iris-a", message: str, last: bool = True) -> dict:
    terminated = {"terminated": {"exitCode": 1, "message": message}}
    return {
        "metadata": {
            "labels": {"mlops.dev/version": version},
            "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "controller": True}],
        },
        "status": {
            "containerStatuses": [
                {
                    "name": "server",
                    **({"lastState": terminated, "state": {"waiting": {}}} if last else {"state": terminated}),
                }
            ]
        },
    }


def test_a_refusal_counts_only_from_a_server_pod_the_canarys_replica_sets_made() -> None:
    said = "refusing to serve s3://b/x: ModelNotReproducible: ModelNotReproducible: row 0 differs"
    assert server_refusal([server_pod(message=said)], deployment="iris-canary", version="iris-a") == said
    assert server_refusal([server_pod(message=said, last=False)], deployment="iris-canary", version="iris-a") == said
    made_by_hand = server_pod(message=said)
    made_by_hand["metadata"]["ownerReferences"] = []
    others = [
        made_by_hand,
        server_pod(message=said, owner="iris-stable-7d9f"),
        server_pod(message=said, version="iris-b"),
        server_pod(message="OOMKilled"),
    ]
    assert server_refusal(others, deployment="iris-canary", version="iris-a") is None


def test_training_image_servers_run_the_image_their_version_was_trained_in() -> None:
    trained = {**VERSION, "image": "mlops-operator:dev-sklearn1.3"}

    def image(server: dict | None, version: dict) -> str:
        [container] = deployment(version=version, server=server)["spec"]["template"]["spec"]["containers"]
        return container["image"]

    assert image(None, trained) == OperatorConfig().image, "by default the operator's image, replay-guarded"
    assert image({"image": "Training"}, trained) == "mlops-operator:dev-sklearn1.3"
    assert image({"image": "Training"}, VERSION) == OperatorConfig().image, "no image recorded: the operator's"


def test_a_server_field_added_later_changes_no_servers_inputs_while_at_its_default() -> None:
    """An upgrade that adds spec.server.image must not make every server look changed by its user (those
    roll at once): at its default it is left out of the inputs digest, set it counts."""
    from mlops_operator.api.modeldeployment import ServerSpec
    from mlops_operator.resources.serving import server_inputs

    assert "image" not in server_inputs(ServerSpec()) and "reproducibility" in server_inputs(ServerSpec())
    assert server_inputs(ServerSpec(image="Training"))["image"] == "Training"
    default, training = deployment(), deployment(server={"image": "Training"})
    assert default["metadata"]["annotations"] != training["metadata"]["annotations"]
