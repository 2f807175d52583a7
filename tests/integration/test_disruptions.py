"""What the operator and the store survive, each staged alone on the cluster (serial: it kills or
redeploys the shared operator, stops the store every namespace uses, or times the operator's answers):
the operator killed mid-pause resumes the same step; a crash between a promotion's decision and its
champion label ends with the run promoted and the champion handed over; a server restarted while the
store is down stays unready while the others serve; a Prometheus that never answers, or answers 64 MiB,
stalls and kills nothing; an upgrade that changes the servers' pod template rolls a bounded number of
ModelDeployments at a time; the operator redeployed with `prometheus.allowRawQueries=false` refuses raw
PromQL."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from support import CLUSTER, HOSTILE_PROMETHEUS_PORTS, Kubectl, service_predictions, two_iris_versions, wait_for
from support import champions as _champions
from support import model_deployment_manifest as _md
from support import training_run_manifest as _run

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.serial]

LOGREG = "sklearn.linear_model.LogisticRegression"
# Evidence that does not depend on traffic: one measurement when the canary's pod is ready, Successful.
PASSING = {
    "analysis": {
        "interval": "1h",
        "metrics": [{"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}],
    }
}


@pytest.fixture(scope="module")
def runs(cluster: Kubectl, ns: str) -> tuple[str, str]:
    return two_iris_versions(cluster, ns, "iris")


def _status(cluster: Kubectl, ns: str, name: str) -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_restarted_operator_resumes_the_same_step(cluster: Kubectl, ns: str, runs, operator) -> None:
    a, b = runs
    pause = dt.timedelta(seconds=20)
    spec = {"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "20s"}}]}}, **PASSING}
    cluster.apply(_md("steady", run=a, **spec), ns)
    wait_for(lambda: _status(cluster, ns, "steady").get("phase") == "Healthy", timeout=120, what="steady serving")
    cluster.run(
        "patch",
        "modeldeployment",
        "steady",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"model": {"trainingRun": b}}}),
    )
    paused = wait_for(
        lambda: ((c := _status(cluster, ns, "steady").get("canary")) or {}).get("pauseStartedAt") and c,
        timeout=120,
        what="the canary in its pause step",
    )
    assert paused["stepIndex"] == 1, paused
    killed = operator.kill()
    restarted = operator.wait_ready(not_named=killed)
    running = [s["state"]["running"] for s in restarted["status"]["containerStatuses"] if "running" in s["state"]]
    assert running, restarted["status"]
    started = _moment(running[0]["startedAt"])  # the new operator cannot have reconciled before this
    status = wait_for(
        lambda: ((s := _status(cluster, ns, "steady")).get("stable") or {}).get("version") == b and s,
        timeout=90,
        what="the promotion after the pause",
    )
    # The pause is timed from its start as stored before the restart, however long the restart took: it
    # ends at pauseStartedAt + 20 s, or at once if that passed while no operator ran (the new operator
    # measures at once if the old one had no result yet). An operator that began the step (or the
    # rollout) again would promote no sooner than 20 s after it started.
    promoted, pause_ends = _moment(status["promotedAt"]), _moment(paused["pauseStartedAt"]) + pause
    assert promoted >= pause_ends, f"promoted at {promoted}, before the pause ended at {pause_ends}"
    assert promoted < started + pause, (
        f"promoted at {promoted}: the pause began again after the restart (operator started at {started}, "
        f"the pause had started at {paused['pauseStartedAt']})"
    )
    latest = status["history"][0]
    assert (latest["version"], latest["outcome"]) == (b, "Promoted"), status["history"]


def test_a_crash_between_the_decision_and_the_label_leaves_the_champion_promoted(
    cluster: Kubectl, ns: str, operator
) -> None:
    """The operator dies right after writing a promotion decision, before the champion label (fault
    injection MLOPS_TEST_CRASH_AFTER_DECISION): restarted, it finishes the hand-over — the run is the
    champion, not Superseded, and the model is never left without one."""
    model = "crash"
    cluster.apply(_run("before-crash", LOGREG, model=model), ns)
    wait_for(lambda: _champions(cluster, ns, model) == ["before-crash"], timeout=240, what="a first champion")
    env = json.dumps([{"name": "MLOPS_TEST_CRASH_AFTER_DECISION", "value": f"{ns}/crashing"}])
    operator.deploy("--set-json", f"extraEnv={env}")
    try:
        operator.wait_ready()
        restarts = operator.restarts()
        cluster.apply(_run("crashing", LOGREG, model=model, params={"C": 0.5}), ns)
        wait_for(lambda: operator.restarts() > restarts, timeout=240, what="the operator to crash after the decision")
        run = wait_for(
            lambda: (
                (r := cluster.get("trainingrun", "crashing", ns))
                and r["metadata"].get("labels", {}).get("mlops.dev/promoted") == "true"
                and r
            ),
            timeout=120,
            what="the restarted operator to finish the hand-over",
        )
        assert run["status"]["promotion"]["decision"] == "Promoted", run["status"]["promotion"]
        assert _champions(cluster, ns, model) == ["crashing"]
        before = cluster.get("trainingrun", "before-crash", ns)
        wait_for(
            lambda: cluster.get("trainingrun", "before-crash", ns)["status"]["promotion"]["decision"] == "Superseded",
            timeout=60,
            what="the previous champion superseded",
        )
        assert before is not None
    finally:
        operator.deploy()
        operator.wait_ready()
        operator.tolerate_restarts()


def test_a_server_restarted_while_the_store_is_down_stays_unready_and_the_others_serve(cluster, ns, runs) -> None:
    cluster.apply(_md("iris", run=runs[0]), ns)
    wait_for(
        lambda: (_status(cluster, ns, "iris").get("stable") or {}).get("readyReplicas") == 2,
        timeout=180,
        what="two ready server pods",
    )
    pods = cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=iris")["items"]
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    stop = subprocess.run([*CLUSTER, "stop", "s3"], capture_output=True, text=True)
    assert stop.returncode == 0, stop.stderr
    try:
        victim = pods[0]["metadata"]["name"]
        cluster.run("delete", "pod", victim, "-n", ns, "--wait=false")

        def replacement() -> dict | None:
            live = cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=iris")["items"]
            new = [p for p in live if p["metadata"]["name"] not in {x["metadata"]["name"] for x in pods}]
            running = new and ((new[0]["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("running")
            return new[0] if running else None

        new = wait_for(replacement, timeout=60, what="the replacement server pod started")["metadata"]["name"]
        log = wait_for(
            lambda: "cannot fetch" in (out := cluster.run("logs", new, "-n", ns, check=False).stdout) and out,
            timeout=60,
            what="the replacement to say it cannot fetch its model",
        )
        assert "unreachable" in log and "retrying" in log, log[-1500:]
        ready = cluster.get("pod", new, ns)["status"].get("conditions") or []
        assert not any(c["type"] == "Ready" and c["status"] == "True" for c in ready), "ready without a model"
        answered = [service_predictions(cluster, ns, "iris") for _ in range(20)]
        assert all(a is not None for a in answered), "the pod still serving failed requests"
    finally:
        start = subprocess.run([*CLUSTER, "start", "s3"], capture_output=True, text=True)
        assert start.returncode == 0, start.stderr

    def both_ready() -> bool:
        live = cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=iris")["items"]
        return len(live) == 2 and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
            for p in live
        )

    wait_for(both_ready, timeout=90, what="the replacement serving once the store is back")


class HostilePrometheus:
    """A Prometheus the operator can reach on the node's address that accepts connections and then never
    answers ("silent"), or answers with a body far larger than any query result ("huge", 64 MiB)."""

    def __init__(self, host: str, mode: str) -> None:
        self.mode, self.connections, self._held = mode, 0, []
        self._server = socket.create_server((host, HOSTILE_PROMETHEUS_PORTS[mode]))
        self.url = f"http://{host}:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            if self.mode == "silent":
                self._held.append(connection)  # read nothing, answer nothing, keep it open
            else:
                threading.Thread(target=self._flood, args=(connection,), daemon=True).start()

    def _flood(self, connection: socket.socket) -> None:
        size = 64 << 20
        try:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
            )
            chunk = b" " * (1 << 20)
            for _ in range(size // len(chunk)):
                connection.sendall(chunk)
        except OSError:
            pass  # the operator hung up once it had read enough: the point
        finally:
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)  # it sees the flag within its accept timeout
        for connection in self._held:
            connection.close()
        self._server.close()


def test_a_hostile_prometheus_stalls_nothing_and_kills_nothing(
    cluster: Kubectl, ns: str, runs, prometheus: str, operator
) -> None:
    """Three canaries measured against a Prometheus that never answers and one against a Prometheus that
    answers 64 MiB: a new Dataset still gets its status at once, an abort acts within a second, the huge
    answer is refused as inconclusive, a deletion completes, and the operator is neither stuck nor
    OOM-killed."""
    a, b = runs
    host = urllib.parse.urlparse(prometheus).hostname
    silent, huge = HostilePrometheus(host, "silent"), HostilePrometheus(host, "huge")
    hostile = {"silent-1": silent, "silent-2": silent, "silent-3": silent, "flooded": huge}
    spec = {"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}, "analysis": {"interval": "2s"}}
    restarts = operator.restarts()
    try:
        for name, server in hostile.items():
            cluster.apply(_md(name, run=a, replicas=1, prometheusUrl=server.url, **spec), ns)
        for name in hostile:
            wait_for(
                lambda n=name: _status(cluster, ns, n).get("phase") == "Healthy", timeout=120, what=f"{name} serving"
            )
            cluster.run(
                "patch",
                "modeldeployment",
                name,
                "-n",
                ns,
                "--type=merge",
                "-p",
                json.dumps({"spec": {"model": {"trainingRun": b}}}),
            )
        wait_for(
            lambda: silent.connections >= 3 and huge.connections >= 1,
            timeout=120,
            what="the canaries measured against the hostile Prometheus servers",
        )

        started = time.monotonic()
        cluster.apply(
            json.dumps(
                {
                    "apiVersion": "mlops.dev/v1alpha1",
                    "kind": "Dataset",
                    "metadata": {"name": "aside"},
                    "spec": {"source": {"builtin": {"name": "iris"}}, "target": "target"},
                }
            ),
            ns,
        )
        wait_for(
            lambda: ((cluster.get("dataset", "aside", ns) or {}).get("status") or {}).get("observedGeneration"),
            timeout=30,
            what="the new Dataset's first status while the measurements hang",
        )
        assert time.monotonic() - started < 5, f"the Dataset waited {time.monotonic() - started:.1f}s for a status"

        sent = dt.datetime.now(dt.UTC)
        cluster.run(
            "annotate", "--overwrite", "modeldeployment", "silent-1", "-n", ns, f"mlops.dev/abort={sent.timestamp()}"
        )
        aborted = wait_for(
            lambda: (s := _status(cluster, ns, "silent-1")).get("degraded") and s,
            timeout=30,
            what="the abort of silent-1 acted on",
        )
        [entry] = [h for h in aborted["history"] if h["outcome"] == "Aborted"]
        assert (_moment(entry["at"]) - sent).total_seconds() < 1, f"the abort took effect at {entry['at']}, sent {sent}"

        def refused() -> str:
            results = _status(cluster, ns, "flooded").get("lastAnalysis") or []
            return next((r["message"] for r in results if "exceeds" in r["message"]), "")

        message = wait_for(refused, timeout=60, what="the 64 MiB answer refused")
        assert _status(cluster, ns, "flooded")["canary"]["successes"] == 0, "a refused answer counted as evidence"
        assert "1048576 bytes" in message, message
        assert operator.restarts() == restarts, f"the operator restarted:\n{operator.logs()[-3000:]}"
        assert operator.ready_pod() is not None, "the operator is not ready"
        # Deleting one whose measurement hangs completes (its finalizer does not wait for Prometheus).
        cluster.run("delete", "modeldeployment", "silent-2", "-n", ns, "--timeout=30s")
        assert cluster.get("modeldeployment", "silent-2", ns) is None, "silent-2 is still there"
    finally:
        silent.close()
        huge.close()
        for name in hostile:
            cluster.run("delete", "modeldeployment", name, "-n", ns, "--wait=false", check=False)


def test_an_upgrade_that_changes_the_servers_template_rolls_a_bounded_number_at_a_time(
    cluster: Kubectl, ns: str, runs, operator
) -> None:
    """The operator upgraded with a new server pod template (podResources.server here, as a new image would)
    and serverUpgrades.maxConcurrent=1: the servers of one ModelDeployment at a time roll onto it, each
    without a pod less than wanted, the others waiting and saying so; the operator is then installed back."""
    a, _ = runs
    names = ("upgrade-1", "upgrade-2", "upgrade-3")
    for name in names:
        cluster.apply(_md(name, run=a, replicas=1), ns)

    def servers() -> dict[str, dict]:
        """The stable server Deployments of `names`, from one list (one consistent moment)."""
        listed = cluster.json("get", "deployments", "-n", ns, "-l", "mlops.dev/variant=stable")["items"]
        return {d["metadata"]["name"].removesuffix("-stable"): d for d in listed if d["metadata"]["name"][:-7] in names}

    def cpu(deployment: dict) -> str:
        [server] = deployment["spec"]["template"]["spec"]["containers"]
        return server["resources"]["requests"]["cpu"]

    def complete(deployment: dict) -> bool:
        s, wanted = deployment.get("status") or {}, deployment["spec"]["replicas"]
        return (s.get("observedGeneration") or 0) >= deployment["metadata"]["generation"] and (
            s.get("updatedReplicas") == s.get("replicas") == s.get("availableReplicas") == wanted
        )

    wait_for(
        lambda: len(d := servers()) == 3 and all(complete(x) and cpu(x) == "25m" for x in d.values()),
        timeout=240,
        what="three ModelDeployments serving on the chart's default server template",
    )
    started = time.monotonic()
    operator.deploy("--set", "serverUpgrades.maxConcurrent=1", "--set", "podResources.server.requests.cpu=30m")
    try:
        most_rolling, waited, unavailable, overlaps = 0, set(), [], []

        def all_rolled() -> bool:
            nonlocal most_rolling
            found = servers()
            rolling = [n for n, d in found.items() if cpu(d) == "30m" and not complete(d)]
            most_rolling = max(most_rolling, len(rolling))
            if len(rolling) > 1:  # what a failure will name: each rolling Deployment's status and annotations
                overlaps.append(
                    {
                        n: (
                            found[n].get("status"),
                            found[n]["metadata"].get("annotations"),
                            found[n]["metadata"]["generation"],
                        )
                        for n in rolling
                    }
                )
            unavailable.extend(n for n, d in found.items() if (d.get("status") or {}).get("availableReplicas", 0) < 1)
            for name in names:
                if (_status(cluster, ns, name).get("serverUpgrade") or "").startswith("waiting"):
                    waited.add(name)
            return all(cpu(d) == "30m" and complete(d) for d in found.values())

        wait_for(all_rolled, timeout=420, interval=0.5, what="every server rolled onto the new template")
        took = time.monotonic() - started
        assert most_rolling == 1, (
            f"{most_rolling} ModelDeployments rolled at once (serverUpgrades.maxConcurrent=1); first overlap seen: "
            f"{overlaps[:1]}\nthe operator's log:\n{operator.logs()[-4000:]}"
        )
        assert waited, "no ModelDeployment said it was waiting for its turn"
        assert not unavailable, f"a ModelDeployment had no available server during the roll: {unavailable}"
        wait_for(
            lambda: not any(_status(cluster, ns, n).get("serverUpgrade") for n in names),
            timeout=60,
            what="status.serverUpgrade cleared once every roll is done",
        )
        print(f"three ModelDeployments rolled one at a time in {took:.0f} s")
    finally:
        operator.deploy()
        operator.wait_ready()


def test_raw_queries_refused_when_the_chart_says_so(cluster, operator, namespace) -> None:
    """prometheus.allowRawQueries=false: a ModelDeployment judging on a raw PromQL query (which could
    read another namespace's series) is Ready=False InvalidSpec with a Warning Event; one judging on the
    templates is not refused. The operator is then installed back with the defaults."""
    raw = {"name": "anything", "query": 'sum(up{namespace="kube-system"})', "successCondition": "result >= 0"}
    templated = {"name": "errors", "template": "errorRate", "threshold": 0.05}

    def md(name: str, metric: dict) -> str:
        return json.dumps(
            {
                "apiVersion": "mlops.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": name},
                "spec": {"model": {"trainingRun": "none-yet"}, "analysis": {"metrics": [metric]}},
            }
        )

    def ready(name: str) -> dict:
        obj = cluster.get("modeldeployment", name, namespace) or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), {})

    operator.deploy("--set", "prometheus.allowRawQueries=false")
    try:
        operator.wait_ready()
        cluster.apply(md("raw", raw), namespace)
        cluster.apply(md("templated", templated), namespace)
        refused = wait_for(
            lambda: (r := ready("raw")).get("reason") == "InvalidSpec" and r,
            timeout=60,
            what="the raw query refused as InvalidSpec",
        )
        assert "allowRawQueries=false" in refused["message"] and "anything" in refused["message"], refused
        other = wait_for(
            lambda: (r := ready("templated")).get("reason") and r,
            timeout=60,
            what="the templated ModelDeployment's Ready condition",
        )
        assert other["reason"] != "InvalidSpec", f"a template was refused: {other}"
        events = cluster.json(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=raw,reason=InvalidSpec"
        )["items"]
        assert events and events[0]["type"] == "Warning", events
    finally:
        operator.deploy()
        operator.wait_ready()
