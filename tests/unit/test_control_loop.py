"""The event-driven control loop's pure parts: which objects an event wakes, when an unchanged child is
left alone, how the cache keeps the newest version, what a request is counted as, and the deadlines."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import BaseModel

from mlops_operator.adapters import kube
from mlops_operator.adapters.kube import request_kind
from mlops_operator.api.dataset import DatasetSpec, DatasetStatus
from mlops_operator.api.trainingrun import TrainingRunSpec
from mlops_operator.controllers.cache import ObjectCache
from mlops_operator.controllers.contract import Events, Outcome, apply_merge_patch
from mlops_operator.controllers.dataset import next_check_at
from mlops_operator.controllers.loop import MIN_WAKE_SECONDS, SAFETY_RESYNC_SECONDS, seconds_until
from mlops_operator.controllers.trainingrun import dataset_wait_ends
from mlops_operator.controllers.watches import objects_to_wake
from mlops_operator.resources.ownership import NameConflict
from mlops_operator.resources.serving import DESIRED_ANNOTATION, is_current, with_fingerprint

NS = "ml"


def obj(name: str, *, rv: str = "1", uid: str = "u", labels=None, spec=None, status=None, owners=None) -> dict:
    meta = {"name": name, "namespace": NS, "resourceVersion": rv, "uid": uid, "labels": labels or {}}
    if owners:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "spec": spec or {}, "status": status or {}}


def owner(kind: str, name: str) -> dict:
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": kind, "name": name, "uid": "x", "controller": True}


@pytest.fixture
def cache() -> ObjectCache:
    cache = ObjectCache()
    cache.observe("modeldeployments", obj("follows-iris", spec={"model": {"name": "iris"}}))
    cache.observe("modeldeployments", obj("pins-run-a", spec={"model": {"trainingRun": "run-a"}}))
    cache.observe("modeldeployments", obj("other-model", spec={"model": {"name": "wine"}}))
    cache.observe(
        "modeldeployments",
        obj("routed", spec={"model": {"name": "wine"}, "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}}}),
    )
    cache.observe("trainingruns", obj("waits-for-iris", spec={"datasetRef": {"name": "iris"}}))
    cache.observe(
        "trainingruns",
        obj(
            "pinned-already",
            spec={"datasetRef": {"name": "iris"}},
            status={"dataset": {"name": "iris"}, "phase": "Running"},
        ),
    )
    cache.observe("trainingruns", obj("finished", spec={"datasetRef": {"name": "x"}}, status={"phase": "Failed"}))
    cache.observe("datasets", obj("iris"))
    cache.observe("jobs", obj("run-a-train", owners=[owner("TrainingRun", "run-a")]))
    cache.observe("jobs", obj("iris-check-1", owners=[owner("Dataset", "iris")]))
    return cache


@pytest.mark.parametrize(
    ("plural", "body", "woken"),
    [
        ("jobs", obj("run-a-train", owners=[owner("TrainingRun", "run-a")]), [("trainingruns", NS, "run-a")]),
        ("deployments", obj("md-canary", owners=[owner("ModelDeployment", "md")]), [("modeldeployments", NS, "md")]),
        ("services", obj("md", owners=[{"apiVersion": "v1", "kind": "Pod", "name": "p"}]), []),
        ("pods", obj("p", labels={"batch.kubernetes.io/job-name": "run-a-train"}), [("trainingruns", NS, "run-a")]),
        ("pods", obj("p", labels={"batch.kubernetes.io/job-name": "iris-check-1"}), [("datasets", NS, "iris")]),
        ("pods", obj("p", labels={"batch.kubernetes.io/job-name": "unknown"}), []),
        (
            "trainingruns",
            obj("run-a", labels={"mlops.dev/model": "iris"}),
            [
                ("trainingruns", NS, "run-a"),
                ("modeldeployments", NS, "follows-iris"),
                ("modeldeployments", NS, "pins-run-a"),
            ],
        ),
        (
            "trainingruns",
            obj("run-b", spec={"model": {"name": "wine"}}),
            [
                ("trainingruns", NS, "run-b"),
                ("modeldeployments", NS, "other-model"),
                ("modeldeployments", NS, "routed"),
            ],
        ),
        ("datasets", obj("iris"), [("datasets", NS, "iris"), ("trainingruns", NS, "waits-for-iris")]),
        (
            "persistentvolumeclaims",
            obj("mlops-artifacts"),
            [("datasets", NS, "iris"), ("trainingruns", NS, "waits-for-iris"), ("trainingruns", NS, "pinned-already")],
        ),
        ("httproutes", obj("r"), [("modeldeployments", NS, "routed")]),
        ("httproutes", obj("someone-elses"), []),
    ],
)
def test_an_event_wakes_exactly_the_objects_it_concerns(cache, plural, body, woken) -> None:
    assert sorted(objects_to_wake(plural, body, cache)) == sorted(woken)


def test_a_finished_upgrade_roll_wakes_the_modeldeployments_waiting_for_a_slot_in_any_namespace() -> None:
    cache = ObjectCache()
    waiting = {"serverUpgrade": "waiting to roll the servers onto the operator's new pod template: ..."}
    cache.observe("modeldeployments", obj("waits", status=waiting))
    cache.observe("modeldeployments", {**obj("waits-too", status=waiting), "metadata": {"name": "waits-too"}})
    cache.observe("modeldeployments", obj("rolls", status={"serverUpgrade": "rolling the servers ..."}))
    cache.observe("modeldeployments", obj("settled"))
    rolled = obj("rolls-stable", spec={"replicas": 2}, owners=[owner("ModelDeployment", "rolls")])
    rolled["metadata"].update(generation=3, annotations={"mlops.dev/upgrade-roll": "t2"})
    done = {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    half = {**done, "replicas": 3, "updatedReplicas": 1}
    assert objects_to_wake("deployments", {**rolled, "status": half}, cache) == [("modeldeployments", NS, "rolls")]
    assert sorted(objects_to_wake("deployments", {**rolled, "status": done}, cache)) == [
        ("modeldeployments", "", "waits-too"),
        ("modeldeployments", NS, "rolls"),
        ("modeldeployments", NS, "waits"),
    ]


def test_the_cache_keeps_the_newest_version_whatever_the_order_of_arrival() -> None:
    cache = ObjectCache()
    cache.observe("trainingruns", obj("a", rv="105", status={"phase": "Running"}))  # our own write's response
    cache.observe("trainingruns", obj("a", rv="103", status={}))  # an older event still in the queue
    assert cache.get("trainingruns", NS, "a")["status"] == {"phase": "Running"}
    cache.observe("trainingruns", obj("a", rv="106", status={"phase": "Succeeded"}))
    assert cache.get("trainingruns", NS, "a")["status"] == {"phase": "Succeeded"}
    cache.observe("trainingruns", obj("a", rv="2", uid="recreated"))  # a new object of the same name
    assert cache.get("trainingruns", NS, "a")["metadata"]["uid"] == "recreated"
    cache.forget("trainingruns", obj("a", uid="old"))
    assert cache.get("trainingruns", NS, "a") is not None, "a deletion of another uid forgets nothing"
    cache.forget("trainingruns", obj("a", uid="recreated"))
    assert cache.get("trainingruns", NS, "a") is None


def test_the_cache_lists_by_namespace_and_labels() -> None:
    cache = ObjectCache()
    cache.observe("pods", obj("p1", labels={"job": "a", "x": "1"}))
    cache.observe("pods", obj("p2", labels={"job": "b"}))
    cache.observe(
        "pods",
        {**obj("p3", labels={"job": "a"}), "metadata": {"name": "p3", "namespace": "other", "labels": {"job": "a"}}},
    )
    assert [p["metadata"]["name"] for p in cache.list("pods", NS, labels={"job": "a"})] == ["p1"]


def deployment(replicas: int, **extra) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "md-stable", **extra}, "spec": {"replicas": replicas}}


def test_an_unchanged_child_is_not_applied_again_but_a_changed_or_scaled_one_is() -> None:
    desired = with_fingerprint(deployment(2))
    assert len(desired["metadata"]["annotations"][DESIRED_ANNOTATION]) == 16
    watched = {**desired, "status": {"readyReplicas": 2}}
    assert is_current(desired, watched)
    assert not is_current(desired, None), "deleted by someone: applied again"
    assert not is_current(with_fingerprint(deployment(3)), watched), "a new desired state"
    scaled = {**watched, "spec": {"replicas": 5}}
    assert not is_current(desired, scaled), "scaled by hand: set back"
    deleting = {**watched, "metadata": {**watched["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert not is_current(desired, deleting)


@pytest.mark.parametrize(
    ("method", "url", "counted"),
    [
        ("GET", "https://h/apis/mlops.dev/v1alpha1/namespaces/ml/trainingruns", ("list", "trainingruns")),
        ("GET", "https://h/apis/mlops.dev/v1alpha1/namespaces/ml/trainingruns/a", ("get", "trainingruns")),
        (
            "PATCH",
            "https://h/apis/mlops.dev/v1alpha1/namespaces/ml/trainingruns/a/status",
            ("patch", "trainingruns/status"),
        ),
        ("GET", "/apis/apps/v1/deployments?watch=true&labelSelector=x", ("watch", "deployments")),
        ("GET", "https://h/api/v1/namespaces/ml/pods?labelSelector=a%3Db", ("list", "pods")),
        ("POST", "https://h/api/v1/namespaces/ml/events", ("create", "events")),
        ("GET", "https://h/api/v1/namespaces", ("list", "namespaces")),
        ("GET", "https://h/api/v1/namespaces/ml", ("get", "namespaces")),
        ("DELETE", "https://h/apis/batch/v1/namespaces/ml/jobs/j", ("delete", "jobs")),
        ("GET", "/version", ("get", "/version")),
    ],
)
def test_api_requests_are_counted_by_verb_and_resource(method, url, counted) -> None:
    assert request_kind(method, url) == counted


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_dataset_is_woken_for_its_refresh_and_bundled_data_never() -> None:
    url = DatasetSpec.model_validate({"source": {"url": {"url": "https://example.org/d.csv"}}, "refreshInterval": "5m"})
    builtin = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    checked = DatasetStatus(checked_generation=1, last_checked_at="2026-01-01T00:00:00Z")
    assert next_check_at(url, checked, generation=1) == T0 + dt.timedelta(minutes=5)
    assert next_check_at(builtin, checked, generation=1) is None
    assert next_check_at(builtin, checked, generation=2) <= T0, "a new generation is checked at once"
    assert next_check_at(url, DatasetStatus(checked_generation=1), generation=1) is None, "its check is still running"


def test_a_run_waiting_for_its_dataset_is_woken_when_the_wait_ends() -> None:
    spec = TrainingRunSpec.model_validate(
        {
            "datasetRef": {"name": "d"},
            "datasetWaitSeconds": 90,
            "model": {"name": "m", "estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )
    body = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}
    assert dataset_wait_ends(spec, body) == T0 + dt.timedelta(seconds=90)


def test_the_loop_sleeps_until_the_deadline_never_busy_and_at_most_the_resync() -> None:
    assert seconds_until(T0 + dt.timedelta(seconds=3), now=T0, cap=SAFETY_RESYNC_SECONDS) == 3
    assert seconds_until(T0 - dt.timedelta(seconds=3), now=T0, cap=SAFETY_RESYNC_SECONDS) == MIN_WAKE_SECONDS
    assert seconds_until(None, now=T0, cap=SAFETY_RESYNC_SECONDS) == SAFETY_RESYNC_SECONDS
    assert seconds_until(T0 + dt.timedelta(days=1), now=T0, cap=SAFETY_RESYNC_SECONDS) == SAFETY_RESYNC_SECONDS


def test_a_measurement_runs_beside_the_reconcile_and_is_taken_once() -> None:
    import threading

    from mlops_operator.controllers.measurements import take_measurement

    key, release, calls = ("modeldeployments", NS, "m"), threading.Event(), []

    def slow(result: str):
        def measure():
            calls.append(result)
            release.wait(5)
            return result

        return measure

    assert take_measurement(key, version="v1", measure=slow("first")) is None, "started, not waited for"
    assert take_measurement(key, version="v1", measure=slow("again")) is None, "still running: not started twice"
    release.set()
    from mlops_operator.controllers.measurements import _in_flight

    _in_flight[key].future.result(timeout=5)
    assert take_measurement(key, version="v1", measure=slow("x")) == "first"
    assert take_measurement(key, version="v1", measure=slow("second")) is None, "taken once; the next one starts"
    assert take_measurement(key, version="v2", measure=slow("other")) is None, "another version: measured anew"
    _in_flight[key].future.result(timeout=5)
    assert take_measurement(key, version="v2", measure=slow("y")) == "other"
    assert calls == ["first", "second", "other"]


# ------------------------------------------------------------------- liveness: reconciles that are stuck


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_oldest_running_reconcile_and_its_age() -> None:
    from mlops_operator.controllers.liveness import RunningReconciles, stuck_reconcile

    clock = FakeClock()
    running = RunningReconciles(clock=clock)
    assert running.oldest() is None and stuck_reconcile(running) is None, "nothing runs: alive"
    md, tr = ("modeldeployments", NS, "iris"), ("trainingruns", NS, "run-a")
    with running.running(md):
        clock.now += 30
        with running.running(tr):
            clock.now += 90
            oldest = running.oldest()
            assert (oldest.key, oldest.seconds, len(running)) == (md, 120, 2)
            assert stuck_reconcile(running) is None, "exactly the bound: not stuck yet"
            clock.now += 1
            assert stuck_reconcile(running) == (
                f"the reconcile of modeldeployments {NS}/iris has run for 121s (more than 120s): reconciles are stuck"
            )
        assert running.oldest().key == md, "a finished reconcile is forgotten"
    with pytest.raises(RuntimeError), running.running(tr):
        raise RuntimeError("a reconcile that fails")
    assert running.oldest() is None and len(running) == 0, "a failed reconcile is forgotten too"
    with running.running(tr):
        assert running.oldest().seconds == 0, "the age counts from its own start"


def test_running_reconciles_are_recorded_from_many_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mlops_operator.controllers.liveness import RunningReconciles

    running = RunningReconciles()

    def reconcile(i: int) -> None:
        with running.running(("datasets", NS, f"d{i % 7}")):  # one object's reconciles may share a key
            assert running.oldest() is not None

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(reconcile, range(2000)))
    assert running.oldest() is None and len(running) == 0


def test_kopf_healthz_fails_with_500_while_a_reconcile_is_stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through kopf's own /healthz server (what the chart's livenessProbe requests): the probe answers
    200 with the running count, and 500 once the oldest reconcile runs beyond the bound."""
    import asyncio
    import socket

    import aiohttp
    import kopf
    from kopf._cogs.configs import configuration
    from kopf._core.engines import probing
    from kopf._core.intents.causes import Activity

    from mlops_operator.controllers import liveness

    liveness.register_liveness_probe()
    liveness.register_liveness_probe()  # with every reconcile loop: registered once all the same
    probes = kopf.get_default_registry()._activities.get_handlers(activity=Activity.PROBE)
    assert [h.id for h in probes].count("reconciles") == 1
    clock = FakeClock()
    monkeypatch.setattr(liveness, "RUNNING", liveness.RunningReconciles(clock=clock))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def healthz_answers() -> list[tuple[int, str]]:
        ready, answers = asyncio.Event(), []
        settings = configuration.OperatorSettings()
        reporter = asyncio.create_task(
            probing.health_reporter(
                f"http://127.0.0.1:{port}/healthz",
                memo=kopf.Memo(),
                indices={},
                registry=kopf.get_default_registry(),
                settings=settings,
                ready_flag=ready,
            )
        )
        await asyncio.wait_for(ready.wait(), 5)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def get() -> None:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    answers.append((response.status, await response.text()))

            with liveness.RUNNING.running(("modeldeployments", NS, "iris")):
                clock.now += 121
                await get()
                await get()  # a failed probe is not cached: kopf asks it again
            with liveness.RUNNING.running(("modeldeployments", NS, "iris")):
                clock.now += 5
                await get()  # kopf caches a passing probe for 10 s: the last request
        reporter.cancel()
        return answers

    (stuck, _), (still, _), (ok, ok_body) = asyncio.run(healthz_answers())
    assert stuck == still == 500, "stuck: /healthz fails, and the kubelet restarts the operator"
    assert ok == 200 and '"reconciles": {"running": 1, "oldestSeconds": 5.0}' in ok_body


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # a canary's pause start cleared once its step completes: sent as None, or the API server keeps it
        (
            {"canary": {"version": "v2", "pauseStartedAt": "t1", "stepIndex": 1}},
            {"canary": {"version": "v2", "stepIndex": 2}},
        ),
        (
            {"canary": {"version": "v2", "inputSchemaChanged": "why"}, "pauseReason": "InputSchemaChanged"},
            {"canary": {"version": "v2"}},
        ),
        ({"metrics": {"accuracy": 0.9, "f1": 0.8}}, {"metrics": {"accuracy": 0.9}}),
        ({"history": [{"a": 1}, {"b": 2}]}, {"history": [{"a": 1}]}),  # lists are replaced whole
        ({"canary": {"version": "v2"}}, {}),
        ({}, {"canary": {"version": "v2", "replicas": 0}}),
    ],
)
def test_a_status_patch_removes_what_is_gone_at_every_depth(old, new) -> None:
    from mlops_operator.controllers.contract import apply_merge_patch, status_patch

    patch = status_patch({**old, "kopf": {"progress": {}}}, new)
    assert "kopf" not in patch, "kopf's bookkeeping is never removed"
    assert apply_merge_patch(old, patch) == new
    assert status_patch(new, new) == {}, "no change: nothing to write"


class _Spec(BaseModel):
    size: int = 1


class _EventWorld:
    """One object in the cache, its status patches answered as the API server would, every write and
    every Event posted recorded in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, spec: dict, patch_fails: bool = False) -> None:
        import kopf

        from mlops_operator.controllers import loop

        self.loop, self.writes, self.patch_fails = loop, [], patch_fails
        self.body = {
            "metadata": {"name": "d", "namespace": NS, "uid": "u", "generation": 1, "resourceVersion": "1"},
            "spec": spec,
            "status": {},
        }
        cache = ObjectCache()
        cache.observe("datasets", self.body)
        monkeypatch.setattr(loop, "CACHE", cache)
        monkeypatch.setattr(loop.kube, "patch_status", self._patch_status)
        monkeypatch.setattr(kopf, "info", lambda body, *, reason, message: self.writes.append(("Normal", reason)))
        monkeypatch.setattr(kopf, "warn", lambda body, *, reason, message: self.writes.append(("Warning", reason)))

    def _patch_status(self, plural: str, namespace: str, name: str, patch: dict) -> dict:
        if self.patch_fails:
            raise kube.ApiException(status=409, reason="Conflict")
        self.writes.append(("status", ",".join(sorted(patch))))
        version = str(int(self.body["metadata"]["resourceVersion"]) + 1)
        self.body = {
            **self.body,
            "metadata": {**self.body["metadata"], "resourceVersion": version},
            "status": apply_merge_patch(self.body["status"], patch),
        }
        return self.body

    def reconcile_once(self, reconcile) -> None:
        self.loop.reconcile_once("datasets", _Spec, reconcile, NS, "d", None)


def _made(spec, observed, logger) -> Outcome:
    events = Events()
    if not observed.status.get("made"):
        events.info(reason="Made", message="made once")
    return Outcome(status={"made": True}, events=events)


def test_events_are_posted_once_the_status_that_records_them_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    world = _EventWorld(monkeypatch, spec={"size": 2})
    world.reconcile_once(_made)
    world.reconcile_once(_made)  # the status says it is made: no news, no Event
    assert world.writes == [("status", "made"), ("Normal", "Made")]


def test_a_reconcile_whose_status_is_not_written_posts_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    world = _EventWorld(monkeypatch, spec={"size": 2}, patch_fails=True)
    with pytest.raises(kube.ApiException):
        world.reconcile_once(_made)
    assert world.writes == [], "an Event about a change that was not recorded"
    world.patch_fails = False  # the retry sees the same change: its Event is posted then, once
    world.reconcile_once(_made)
    world.reconcile_once(_made)
    assert world.writes == [("status", "made"), ("Normal", "Made")]


def test_an_invalid_spec_is_reported_in_status_and_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    world = _EventWorld(monkeypatch, spec={"size": "many"})
    world.reconcile_once(_made)
    world.reconcile_once(_made)
    assert world.writes == [("status", "conditions,observedGeneration,phase"), ("Warning", "InvalidSpec")]
    ready = world.body["status"]["conditions"][0]
    assert (ready["reason"], ready["message"].split(":")[0]) == ("InvalidSpec", "spec.size")


def _conflicted(spec, observed, logger) -> Outcome:
    held = {"metadata": {"name": "d-check-1", "ownerReferences": [{"kind": "Job", "name": "x", "uid": "u"}]}}
    raise NameConflict("jobs", held)


def test_a_name_conflict_is_reported_in_status_and_one_warning_and_looked_at_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = _EventWorld(monkeypatch, spec={"size": 2})
    first = world.loop.reconcile_once("datasets", _Spec, _conflicted, NS, "d", None)
    world.reconcile_once(_conflicted)
    assert world.writes == [("status", "conditions"), ("Warning", "NameConflict")]
    ready = world.body["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert ready["message"].startswith("Job d-check-1 already exists and it was not created by the operator")
    assert first is not None, "the object holding the name is not watched: the loop must look again by itself"


def test_a_job_whose_name_is_taken_by_another_is_neither_adopted_nor_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_operator.controllers import children

    owner = {"kind": "TrainingRun", "name": "r", "uid": "the-run", "controller": True}
    theirs = {"metadata": {"name": "r-train", "uid": "j", "ownerReferences": [{**owner, "uid": "an-older-run"}]}}
    ours = {"metadata": {"name": "r-train", "uid": "j", "ownerReferences": [owner]}}
    for held, conflict in ((theirs, True), (ours, False)):
        monkeypatch.setattr(children.kube, "create_child", lambda plural, ns, body, held=held: (held, False))
        if conflict:
            with pytest.raises(NameConflict, match="Job r-train already exists and it belongs to TrainingRun r"):
                children.create_job(NS, {"metadata": {"name": "r-train"}}, uid="the-run")
        else:  # created before by this run (a retry after the watch lagged): found, not created twice
            assert children.create_job(NS, {"metadata": {"name": "r-train"}}, uid="the-run") is held


def test_a_finished_job_is_given_a_ttl_once_its_result_is_recorded_and_only_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_operator.controllers import children

    cache = ObjectCache()
    monkeypatch.setattr(children, "CACHE", cache)
    patched: list[tuple[str, int]] = []

    def expire(namespace: str, name: str, *, uid: str, seconds: int) -> dict:
        patched.append((name, seconds))
        job = cache.get("jobs", namespace, name)
        return {
            **job,
            "metadata": {**job["metadata"], "resourceVersion": "9"},
            "spec": {"ttlSecondsAfterFinished": seconds},
        }

    monkeypatch.setattr(children.kube, "expire_job", expire)
    finished = {"conditions": [{"type": "Complete", "status": "True"}]}

    def job(name: str, owner_uid: str, status: dict) -> None:
        owner = {"kind": "TrainingRun", "name": "r", "uid": owner_uid, "controller": True}
        meta = {"name": name, "namespace": NS, "uid": f"job-{name}", "resourceVersion": "1", "ownerReferences": [owner]}
        cache.observe("jobs", {"metadata": meta, "spec": {}, "status": status})

    job("done", "the-run", finished)
    job("running", "the-run", {})
    job("theirs", "another", finished)
    for name in ("done", "running", "theirs", "gone", "done"):
        children.expire_recorded_job(NS, name, uid="the-run", seconds=600)
    assert patched == [("done", 600)], "expired: only our finished Job, and once"


def test_a_foreign_object_read_on_a_cache_miss_is_never_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """The conflict ends when the user removes the object: it was not put into the cache, whose watch (our
    labels) would never deliver its deletion."""
    from mlops_operator.controllers import reads

    cache = ObjectCache()
    monkeypatch.setattr(reads, "CACHE", cache)
    users: dict | None = {"metadata": {"name": "r-train", "namespace": NS, "uid": "j", "resourceVersion": "1"}}
    monkeypatch.setattr(reads.kube, "read_job", lambda namespace, name: users)
    with pytest.raises(NameConflict):
        reads.read_child("jobs", NS, "r-train", uid="the-run")
    assert cache.get("jobs", NS, "r-train") is None
    users = None  # the user deleted it
    assert reads.read_child("jobs", NS, "r-train", uid="the-run") is None


def test_a_created_childs_fields_go_to_the_apply_manager_even_when_a_controller_wrote_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The creation's managedFields entry becomes an Apply entry (a field a later apply leaves out is then
    removed); when a controller added its own entry first (the index moved, the test op fails), it is
    found again in a fresh read."""
    ours = {"manager": "mlops-operator", "operation": "Update", "fieldsV1": {}}
    theirs = {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"}
    created = {"metadata": {"name": "d", "namespace": NS, "managedFields": [ours]}}
    fresh = {"metadata": {"name": "d", "namespace": NS, "managedFields": [theirs, ours]}}
    patches: list[list[dict]] = []

    def patch(name: str, namespace: str, operations: list[dict], **_: object) -> dict:
        patches.append(operations)
        if operations[0]["path"] != "/metadata/managedFields/1/manager":
            raise kube.ApiException(status=422, reason="test failed")
        return {"metadata": {**fresh["metadata"], "managedFields": [theirs, {**ours, "operation": "Apply"}]}}

    monkeypatch.setattr(kube, "plain", lambda obj: obj)  # the fakes answer plain dicts already
    handed = kube._hand_to_apply(lambda name, namespace: fresh, patch, created)
    assert [e["operation"] for e in handed["metadata"]["managedFields"]] == ["Update", "Apply"]
    assert [ops[-1] for ops in patches] == [
        {"op": "replace", "path": f"/metadata/managedFields/{i}/operation", "value": "Apply"} for i in (0, 1)
    ]
