#!/usr/bin/env python3
"""Measures the operator at scale on the local cluster (run by hand, not in CI).

    make deploy    # the operator under test, installed by its chart
    .venv/bin/python bench/operator_scale.py --label current --json current.json
    .venv/bin/python bench/operator_scale.py --compare previous.json current.json

Unlike the other benches it does not install the operator: it measures whatever `make deploy` (or
another checkout's `hack/deploy.sh`) installed in namespace mlops-system, so the code of an earlier
commit can be measured from a git worktree and the two JSON files printed side by side.

The population (one namespace with its artifact claim; every status is written by the operator
itself, none by hand; the defaults are the issue's 1,000 / 200 / 50):

- Datasets: builtin iris, each validated by its own check Job. They are created first and waited for
  (50 Jobs on 2 cores take minutes), as are two really trained TrainingRuns on the first of them
  (DummyClassifier, then LogisticRegression, model `served`; the first becomes its champion).
- ModelDeployments serving real pods, `replicas: 1`, pinned to the first trained run, steps
  `setWeight 50 → pause (no duration)`: `--settled` of them stay Healthy on one pod; `--canarying`
  of them are then pinned to the second run and stay canarying at 50 % (a stable and a canary pod,
  paused until a manual promote). Model-server pods request no resources, so the scheduler does not
  bound them by CPU or memory (maxPods is 110, shared with the Datasets' finished check pods, kept
  an hour); the bound is the 2 cores. A server pod takes ≈ 150 MB; 50 of them (30 + 10) did not all
  become ready within 6 minutes next to the previous operator, which keeps the cores busy by itself;
  10 are ready within a minute. The defaults, 6 settled and 2 canarying, are those 10 server pods;
  the report says how many ran, their mean RSS and idle CPU.
- Then the bulk, created at once through the API (8 client threads): `--running` TrainingRuns whose
  training pod requests 100 CPUs (the Job exists, the pod is unschedulable: phase Running for an
  hour); `--waiting` TrainingRuns on a Dataset that does not exist with `datasetWaitSeconds: 86400`
  (Pending); the rest of the TrainingRuns on that missing Dataset with `datasetWaitSeconds: 0`
  (Failed, DatasetNotReady: a real terminal state, at once); the rest of the ModelDeployments follow
  models that have no champion (Pending, waiting for a model).

What is reported:

(a) Idle API requests. Once every object has reached its expected phase and `--settle` seconds have
    passed: `apiserver_request_total` from the API server's /metrics, summed over every verb but
    WATCH and WATCHLIST, sampled at the start and end of a `--window`-second window with the operator
    running, and again with the operator scaled to 0 replicas (the cluster's own components make
    requests too). (with − without) / window / objects is the figure. If the operator exports its own
    counter `mlops_operator_api_requests_total` (port 9100; a `verb` label, if any, lets WATCH be
    excluded), its rate over the first window is shown too.
(b) Latency with the population present: `kubectl apply` of a new TrainingRun (on the missing
    Dataset) or ModelDeployment (following a model without a champion), one at a time, `--samples`
    of each; the figure is from the object's ADDED event to the first event whose status has a
    `phase` or `observedGeneration` (both written only by the operator), seen on a watch the bench
    keeps open; `kubectl apply` start → status is kept too. p99 is interpolated between ranks (of 20
    samples it is close to the slowest). Each sample waits at most `--sample-timeout`, each kind at
    most `--latency-budget`.
(c) Time to status: from the start of the bulk creation until every object of the population has a
    status phase; also until every object has reached its expected phase.
(d) The operator's process on this host (found through the pod's cgroup): RSS from /proc/PID/status,
    CPU from /proc/PID/stat deltas, at idle (over the first window) and during the burst (from the
    start of the bulk until every object has a status; peak RSS and mean CPU). Container restarts
    (an OOMKilled operator) are reported; the chart limits the operator to 1 CPU and 512 MiB.

Every wait has a timeout; a measurement that times out is reported as such and the run goes on.
The namespace (and its volume) is deleted at the end, with the operator running so that it removes
its finalizers. Smaller populations for a quick try: --trainingruns, --modeldeployments,
--datasets, --settled, --canarying, --samples, --window.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import pathlib
import re
import shutil
import signal
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import kubernetes
import requests
from kubernetes.client.rest import ApiException

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import KUBECONFIG, STATE, Kubectl, add_artifact_volume  # noqa: E402

GROUP, VERSION = "mlops.dev", "v1alpha1"
OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT = "mlops-system", "mlops-operator"
OPERATOR_METRIC = "mlops_operator_api_requests_total"
EXCLUDED_VERBS = {"WATCH", "WATCHLIST"}
MISSING_DATASET = "absent"
GOALS = {"per_object": 0.01, "p50": 0.5, "p99": 2.0, "rss_mb": 250}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_started = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", flush=True)


# --- the cluster --------------------------------------------------------------------------------


class Cluster:
    def __init__(self) -> None:
        self.client = kubernetes.config.new_client_from_config(str(KUBECONFIG))
        self.client.configuration.connection_pool_maxsize = 16
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)

    def create(self, namespace: str, plural: str, body: dict[str, Any]) -> None:
        for attempt in range(5):  # a busy API server may time out; a retry after "exists" is fine
            try:
                self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
                return
            except ApiException as error:
                if error.status == 409:
                    return
                if error.status not in (429, 500, 503, 504) or attempt == 4:
                    raise
            time.sleep(1 + attempt)

    def list(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]

    def request_counts(self) -> dict[tuple[str, str], float]:
        """apiserver_request_total summed by (verb, group/resource/subresource), WATCH and WATCHLIST left out."""
        method, url, headers, _, _ = self.client.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        response = self.client.call_api(method, url, header_params=headers, _request_timeout=60)
        response.read()
        counts: dict[tuple[str, str], float] = {}
        for line in response.data.decode().splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels_text))
            if labels.get("verb", "").upper() in EXCLUDED_VERBS:
                continue
            what = "/".join(p for p in (labels.get("group"), labels.get("resource"), labels.get("subresource")) if p)
            key = (labels.get("verb", ""), what or "(non-resource)")
            counts[key] = counts.get(key, 0.0) + float(value)
        return counts


class Operator:
    """The chart-installed operator: its pod, its process on this host, its metrics port."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.refresh()

    def refresh(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            listed = self.cluster.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=self._selector())
            pods = [
                p
                for p in listed.items
                if p.status.phase == "Running"
                and not p.metadata.deletion_timestamp
                and all(s.ready for s in p.status.container_statuses or [])
            ]
            pids = pids_of_pod(pods[0].metadata.uid, b"mlops-operator", b"run") if len(pods) == 1 else []
            if pids:
                break
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"no single ready operator pod with its process on this host in {OPERATOR_NAMESPACE} "
                    f"after {timeout:.0f}s (pods: {[p.metadata.name for p in pods]}); install it with `make deploy`"
                )
            time.sleep(1)
        self.pod, self._cpu = pods[0], {}
        self.build = (self.pod.metadata.annotations or {}).get("mlops.dev/image-build", "?")
        self.image_id = (self.pod.status.container_statuses or [None])[0].image_id

    def _selector(self) -> str:
        deployment = self.cluster.apps.read_namespaced_deployment(OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE)
        return ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())

    @property
    def pids(self) -> list[int]:
        """Found afresh each time: a restarted container (same pod) is a new process."""
        return pids_of_pod(self.pod.metadata.uid, b"mlops-operator", b"run")

    def cpu_seconds(self) -> float:
        """CPU seconds of the operator's processes in this pod, a process that ended counting with its last value."""
        for pid in self.pids:
            self._cpu[pid] = max(self._cpu.get(pid, 0.0), process_cpu_seconds(pid))
        return sum(self._cpu.values())

    def rss_mb(self) -> float:
        return sum(process_rss_kb(pid) for pid in self.pids) / 1024

    def restarts(self) -> dict[str, Any]:
        """Container restarts of the operator pod and the last reason (e.g. OOMKilled)."""
        try:
            pod = self.cluster.core.read_namespaced_pod(self.pod.metadata.name, OPERATOR_NAMESPACE)
        except ApiException:
            return {"restarts": None}
        state = (pod.status.container_statuses or [None])[0]
        terminated = state.last_state.terminated if state and state.last_state else None
        return {
            "restarts": state.restart_count if state else None,
            "last_reason": terminated.reason if terminated else None,
        }

    def own_request_count(self) -> float | None:
        """The operator's own counter of API requests (WATCH excluded when labelled), or None without one."""
        try:
            text = requests.get(f"http://{self.pod.status.pod_ip}:9100/metrics", timeout=10).text
        except requests.RequestException:
            return None
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith(OPERATOR_METRIC + "{") or line.startswith(OPERATOR_METRIC + " "):
                found = True
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
                if labels.get("verb", "").upper() not in EXCLUDED_VERBS:
                    total += float(line.rsplit(" ", 1)[1])
        return total if found else None

    def scale(self, replicas: int, timeout: float = 300) -> None:
        self.cluster.apps.patch_namespaced_deployment_scale(
            OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE, {"spec": {"replicas": replicas}}
        )
        if replicas:
            self.refresh(timeout)
            return
        selector, deadline = self._selector(), time.monotonic() + timeout
        while self.cluster.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=selector).items:
            if time.monotonic() > deadline:
                raise SystemExit(f"the operator's pods did not go away within {timeout:.0f}s of scaling to 0")
            time.sleep(1)


def pids_of_pod(uid: str, *words: bytes) -> list[int]:
    """PIDs on this host in the pod's cgroup whose command line has every one of `words`."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"pod{uid}" not in (entry / "cgroup").read_text():
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(any(w in a for a in argv) for w in words):
            found.append(int(entry.name))
    return found


def pids_named(binary: str) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if pathlib.Path((entry / "cmdline").read_bytes().split(b"\0")[0].decode()).name == binary:
                    found.append(int(entry.name))
    return found


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def process_rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def node_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return sum(values) - values[3] - values[4], sum(values)


# --- watching the population ----------------------------------------------------------------------


class Tracker:
    """A watch on one kind in the namespace: when each object was first seen, first had a status, its phase."""

    def __init__(self, cluster: Cluster, namespace: str, plural: str) -> None:
        self.cluster, self.namespace, self.plural = cluster, namespace, plural
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}
        self.status_at: dict[str, float] = {}
        self.phase: dict[str, str | None] = {}
        self.synced = threading.Event()
        threading.Thread(target=self._run, daemon=True, name=f"watch-{plural}").start()
        if not self.synced.wait(60):
            raise SystemExit(f"could not list {plural} in {namespace} within 60s")

    def _see(self, obj: dict[str, Any], now: float) -> None:
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        with self.lock:
            self.seen.setdefault(name, now)
            if (status.get("phase") or "observedGeneration" in status) and name not in self.status_at:
                self.status_at[name] = now
            self.phase[name] = status.get("phase")

    def _run(self) -> None:
        version = None
        while True:
            try:
                if version is None:
                    listed = self.cluster.custom.list_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, self.plural
                    )
                    now = time.monotonic()
                    for item in listed["items"]:
                        self._see(item, now)
                    version = listed["metadata"]["resourceVersion"]
                    self.synced.set()
                stream = kubernetes.watch.Watch().stream(
                    self.cluster.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    self.plural,
                    resource_version=version,
                    timeout_seconds=600,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None  # 410 Gone: list again
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._see(obj, time.monotonic())
            except ApiException as error:
                if error.status == 410:
                    version = None
                else:
                    time.sleep(1)
            except Exception:  # a connection dropped by a busy API server: watch again from where it was
                time.sleep(1)

    def phases(self) -> dict[str, str | None]:
        with self.lock:
            return dict(self.phase)

    def without_status(self, names: list[str]) -> list[str]:
        with self.lock:
            return [n for n in names if n not in self.status_at]


class Guard:
    """The cluster is shared: stop at once, saying why, if the namespace or the operator under test is replaced."""

    check = staticmethod(lambda: None)
    _last = 0.0

    @classmethod
    def watch(cls, cluster: Cluster, namespace: str, operator: Operator) -> None:
        def check() -> None:
            if time.monotonic() - cls._last < 5:
                return
            cls._last = time.monotonic()
            try:
                if cluster.core.read_namespace(namespace).metadata.deletion_timestamp:
                    raise SystemExit(f"namespace {namespace} is being deleted by someone else")
                pod = cluster.core.read_namespaced_pod(operator.pod.metadata.name, OPERATOR_NAMESPACE)
            except ApiException as error:
                if error.status == 404:
                    raise SystemExit(f"namespace {namespace} or the operator pod under test is gone") from None
                return
            build = (pod.metadata.annotations or {}).get("mlops.dev/image-build", "?")
            if pod.metadata.deletion_timestamp or build != operator.build:
                raise SystemExit(f"the operator under test ({operator.build}) was replaced or is stopping")

        cls.check = staticmethod(check)


def wait_until(condition, *, timeout: float, what: str, interval: float = 2.0, fail: bool = True):
    """Poll `condition` until truthy; on timeout raise (fail) or log and return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        Guard.check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            if fail:
                raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
            log(f"timed out after {timeout:.0f}s waiting for {what}; going on")
            return value
        time.sleep(interval)  # poll interval


def all_in(tracker: Tracker, expected: dict[str, tuple[str, ...]]) -> list[str]:
    """Names whose phase is not (yet) one of the expected ones."""
    phases = tracker.phases()
    return [name for name, wanted in expected.items() if phases.get(name) not in wanted]


# --- the population -------------------------------------------------------------------------------


def _meta(name: str, role: str) -> dict[str, Any]:
    return {"name": name, "labels": {"bench.mlops.dev/role": role}}


def dataset(name: str) -> dict[str, Any]:
    columns = [
        {"name": c, "type": "float", "min": 0, "max": 20}
        for c in ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
    ]
    columns.append({"name": "target", "type": "integer", "min": 0, "max": 2})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Dataset",
        "metadata": _meta(name, "dataset"),
        "spec": {
            "source": {"builtin": {"name": "iris"}},
            "target": "target",
            "schema": {"minRows": 100, "columns": columns},
        },
    }


def training_run(
    name: str,
    role: str,
    *,
    dataset: str,
    estimator: str = "sklearn.dummy.DummyClassifier",
    model: str = "bulk",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingRun",
        "metadata": _meta(name, role),
        "spec": {"datasetRef": {"name": dataset}, "model": {"name": model, "estimator": estimator}, **spec},
    }


def model_deployment(name: str, role: str, model: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": _meta(name, role),
        "spec": {
            "model": model,
            "replicas": 1,
            "postPromotion": {"enabled": False},
            "analysis": {"interval": "1h"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        },
    }


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Names and manifests of every object, by stage, with the phases each is expected to reach."""
    trained = ["trained-a", "trained-b"]
    bulk_runs = args.trainingruns - len(trained)
    running, waiting = min(args.running, bulk_runs), min(args.waiting, max(bulk_runs - args.running, 0))
    finished = bulk_runs - running - waiting
    serving = args.settled + args.canarying
    if finished < 0 or args.modeldeployments < serving or args.datasets < 1:
        raise SystemExit(
            "the population does not add up: --trainingruns ≥ 2 + --running + --waiting, "
            "--modeldeployments ≥ --settled + --canarying, --datasets ≥ 1"
        )
    datasets = [dataset("iris")] + [dataset(f"ds-{i:03d}") for i in range(1, args.datasets)]
    runs = [
        training_run("trained-a", "trained", dataset="iris", model="served", promotion={"policy": "auto"}),
        training_run(
            "trained-b",
            "trained",
            dataset="iris",
            model="served",
            estimator="sklearn.linear_model.LogisticRegression",
            promotion={"policy": "auto"},
        ),
    ]
    settled = [
        model_deployment(f"md-settled-{i:03d}", "settled", {"trainingRun": "trained-a"}) for i in range(args.settled)
    ]
    canarying = [
        model_deployment(f"md-canary-{i:03d}", "canarying", {"trainingRun": "trained-a"}) for i in range(args.canarying)
    ]
    bulk_tr = (
        [
            training_run(f"tr-running-{i:04d}", "running", dataset="iris", resources={"requests": {"cpu": "100"}})
            for i in range(running)
        ]
        + [
            training_run(f"tr-waiting-{i:04d}", "waiting", dataset=MISSING_DATASET, datasetWaitSeconds=86400)
            for i in range(waiting)
        ]
        + [
            training_run(f"tr-finished-{i:04d}", "finished", dataset=MISSING_DATASET, datasetWaitSeconds=0)
            for i in range(finished)
        ]
    )
    bulk_md = [
        model_deployment(f"md-waiting-{i:03d}", "waiting", {"name": f"unpromoted-{i % 10}"})
        for i in range(args.modeldeployments - serving)
    ]
    expect = {"Running": ("Running",), "Pending": ("Pending",), "Failed": ("Failed",)}
    return {
        "datasets": datasets,
        "runs": runs,
        "settled": settled,
        "canarying": canarying,
        "bulk_tr": bulk_tr,
        "bulk_md": bulk_md,
        "expected_tr": {
            **{r["metadata"]["name"]: expect["Running"] for r in bulk_tr[:running]},
            **{r["metadata"]["name"]: expect["Pending"] for r in bulk_tr[running : running + waiting]},
            **{r["metadata"]["name"]: expect["Failed"] for r in bulk_tr[running + waiting :]},
        },
        "expected_md": {m["metadata"]["name"]: expect["Pending"] for m in bulk_md},
        "counts": {
            "trainingruns": {
                "trained": len(trained),
                "running": running,
                "waiting": waiting,
                "finished": finished,
                "total": args.trainingruns,
            },
            "modeldeployments": {
                "settled": args.settled,
                "canarying": args.canarying,
                "waiting": len(bulk_md),
                "total": args.modeldeployments,
            },
            "datasets": args.datasets,
            "objects": args.trainingruns + args.modeldeployments + args.datasets,
        },
    }


def create_all(cluster: Cluster, namespace: str, items: list[tuple[str, dict[str, Any]]], threads: int = 8) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(cluster.create, namespace, plural, body) for plural, body in items]:
            future.result()


class Sampler:
    """The operator's CPU and RSS every second, in the background, between start() and stop()."""

    def __init__(self, operator: Operator) -> None:
        self.operator, self.samples, self._stop = operator, [], threading.Event()

    def start(self) -> Sampler:
        threading.Thread(target=self._run, daemon=True, name="sampler").start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.operator.cpu_seconds(), self.operator.rss_mb(), node_cpu()))
            self._stop.wait(1)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        time.sleep(0.05)
        s = self.samples + [(time.monotonic(), self.operator.cpu_seconds(), self.operator.rss_mb(), node_cpu())]
        seconds = s[-1][0] - s[0][0]
        five = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(s, s[5:], strict=False) if b[0] > a[0]]
        return {
            "seconds": round(seconds, 1),
            "operator_cpu_cores_mean": round((s[-1][1] - s[0][1]) / max(seconds, 1e-9), 3),
            "operator_cpu_cores_peak_5s": round(max(five), 3) if five else None,
            "operator_rss_mb_peak": round(max(x[2] for x in s), 1),
            "node_cpu_busy": round((s[-1][3][0] - s[0][3][0]) / max(s[-1][3][1] - s[0][3][1], 1), 3),
        }


# --- the measurements ---------------------------------------------------------------------------


def window(cluster: Cluster, operator: Operator | None, seconds: float) -> dict[str, Any]:
    """API requests (by verb and resource), CPU and RSS over a quiet window of `seconds`."""
    apiservers = pids_named("kube-apiserver")
    own0 = operator.own_request_count() if operator else None
    counts0, cpu0 = cluster.request_counts(), operator.cpu_seconds() if operator else 0.0
    api0, node0, t0 = sum(process_cpu_seconds(p) for p in apiservers), node_cpu(), time.monotonic()
    time.sleep(seconds)
    counts1, elapsed = cluster.request_counts(), time.monotonic() - t0
    cpu1, api1, node1 = (
        operator.cpu_seconds() if operator else 0.0,
        sum(process_cpu_seconds(p) for p in apiservers),
        node_cpu(),
    )
    own1 = operator.own_request_count() if operator else None
    delta = {k: v - counts0.get(k, 0.0) for k, v in counts1.items() if v - counts0.get(k, 0.0) > 0}
    return {
        "seconds": round(elapsed, 1),
        "requests_per_s": sum(delta.values()) / elapsed,
        "by_request": {f"{verb} {what}": n / elapsed for (verb, what), n in delta.items()},
        "operator_metric_per_s": (own1 - own0) / elapsed if own0 is not None and own1 is not None else None,
        "operator_cpu_cores": (cpu1 - cpu0) / elapsed if operator else None,
        "operator_rss_mb": operator.rss_mb() if operator else None,
        "apiserver_cpu_cores": (api1 - api0) / elapsed,
        "node_cpu_busy": (node1[0] - node0[0]) / max(node1[1] - node0[1], 1),
    }


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latencies(
    kubectl: Kubectl, tracker: Tracker, namespace: str, manifest, samples: int, timeout: float, budget: float
) -> dict[str, Any]:
    """`kubectl apply` one object at a time; seconds from its ADDED event to its first status, per sample.

    Sampling stops early (and says so) once `budget` seconds have gone by.
    """
    created, applied, missing, began = [], [], 0, time.monotonic()
    for i in range(samples):
        if time.monotonic() - began > budget:
            log(f"{tracker.plural}: stopped after {i} samples, over the budget of {budget:.0f}s")
            break
        body = manifest(i)
        name = body["metadata"]["name"]
        start = time.monotonic()
        kubectl.apply(json.dumps(body), namespace)
        deadline = start + timeout
        while time.monotonic() < deadline:
            with tracker.lock:
                seen, status = tracker.seen.get(name), tracker.status_at.get(name)
            if seen is not None and status is not None:
                created.append(status - seen)
                applied.append(status - start)
                break
            Guard.check()
            time.sleep(0.02)  # sampling period of the measurement
        else:
            missing += 1
            log(f"{tracker.plural} {name}: no status within {timeout:.0f}s")
    figures = {
        "samples": len(created) + missing,
        "timeouts": missing,
        "timeout_s": timeout,
        "created_to_status": created,
        "apply_to_status": applied,
    }
    if created:
        figures.update(
            p50=quantile(created, 0.5),
            p99=quantile(created, 0.99),
            max=max(created),
            apply_p50=quantile(applied, 0.5),
            apply_p99=quantile(applied, 0.99),
        )
    return figures


def server_pods(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """How many model-server pods run in the namespace, and their mean RSS on this host."""
    pods = [
        p
        for p in cluster.core.list_namespaced_pod(namespace, label_selector="mlops.dev/deployment").items
        if p.status.phase == "Running"
    ]
    pids = [pid for p in pods for pid in pids_of_pod(p.metadata.uid, b"serve")]
    rss = [sum(process_rss_kb(pid) for pid in pids_of_pod(p.metadata.uid, b"serve")) / 1024 for p in pods]
    rss = [r for r in rss if r > 0]
    before = {pid: process_cpu_seconds(pid) for pid in pids}
    time.sleep(10)
    after = {pid: process_cpu_seconds(pid) for pid in pids}  # a process gone reads 0 and is left out
    cpu = sum(after[p] - before[p] for p in pids if after[p] >= before[p] > 0) / 10 / max(len(pods), 1)
    allocatable = cluster.core.list_node().items[0].status.allocatable
    return {
        "running": len(pods),
        "mean_rss_mb": round(statistics.mean(rss), 1) if rss else None,
        "mean_cpu_cores_idle": round(cpu, 4),
        "node_max_pods": int(allocatable.get("pods", 0)),
        "node_memory": allocatable.get("memory"),
        "node_cpu": allocatable.get("cpu"),
    }


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Fills `result` as it goes: a run that stops early still reports what it measured."""
    cluster, kubectl = Cluster(), Kubectl(KUBECONFIG)
    operator = Operator(cluster)
    log(f"operator pod {operator.pod.metadata.name}, image build {operator.build}, pids {operator.pids}")
    population = plan(args)
    counts = population["counts"]
    result.update(
        population=counts,
        operator={
            "image_build": operator.build,
            "image_id": operator.image_id,
            "restarts_at_start": operator.restarts()["restarts"],
        },
    )
    namespace = f"opscale-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", namespace)
    add_artifact_volume(namespace)
    log(f"namespace {namespace}; population {json.dumps(counts)}")
    Guard.watch(cluster, namespace, operator)
    scaled_down = False
    try:
        trackers = {p: Tracker(cluster, namespace, p) for p in ("datasets", "trainingruns", "modeldeployments")}
        ds, tr, md = trackers["datasets"], trackers["trainingruns"], trackers["modeldeployments"]

        # 1. What takes real pods: the Datasets (one check Job each), two trained runs, the serving deployments.
        stage = time.monotonic()
        create_all(cluster, namespace, [("datasets", d) for d in population["datasets"]])
        names = [d["metadata"]["name"] for d in population["datasets"]]
        wait_until(lambda: not all_in(ds, {"iris": ("Ready",)}), timeout=args.timeout, what="Dataset iris Ready")
        create_all(cluster, namespace, [("trainingruns", population["runs"][0])])
        wait_until(
            lambda: not all_in(tr, {"trained-a": ("Succeeded",)}),
            timeout=args.timeout,
            what="TrainingRun trained-a Succeeded",
        )
        create_all(cluster, namespace, [("trainingruns", population["runs"][1])])
        wait_until(
            lambda: not all_in(ds, dict.fromkeys(names, ("Ready",))),
            timeout=args.timeout,
            what=f"{len(names)} Datasets Ready",
        )
        wait_until(
            lambda: not all_in(tr, {"trained-b": ("Succeeded",)}),
            timeout=args.timeout,
            what="TrainingRun trained-b Succeeded",
        )
        result["datasets_ready_s"] = round(time.monotonic() - stage, 1)
        log(f"{len(names)} Datasets Ready and 2 runs trained after {result['datasets_ready_s']}s")
        serving = population["settled"] + population["canarying"]
        create_all(cluster, namespace, [("modeldeployments", m) for m in serving])
        serving_names = {m["metadata"]["name"]: ("Healthy",) for m in serving}
        wait_until(
            lambda: not all_in(md, serving_names),
            timeout=args.timeout,
            what=f"{len(serving)} serving ModelDeployments Healthy",
        )
        pin = {"spec": {"model": {"trainingRun": "trained-b"}}}
        for m in population["canarying"]:
            cluster.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "modeldeployments", m["metadata"]["name"], pin
            )

        def canaries_up() -> bool:
            items = {m["metadata"]["name"]: m for m in cluster.list(namespace, "modeldeployments")}
            return all(
                ((items[m["metadata"]["name"]].get("status") or {}).get("canary") or {}).get("readyReplicas")
                for m in population["canarying"]
            )

        wait_until(
            canaries_up, timeout=args.timeout, what=f"{len(population['canarying'])} canaries serving", interval=3
        )
        result["serving_ready_s"] = round(time.monotonic() - stage, 1)
        result["server_pods"] = server_pods(cluster, namespace)
        log(f"serving: {json.dumps(result['server_pods'])}")

        # 2. The bulk, at once; (c) and the burst half of (d).
        sampler = Sampler(operator).start()
        bulk = [("trainingruns", r) for r in population["bulk_tr"]] + [
            ("modeldeployments", m) for m in population["bulk_md"]
        ]
        bulk.sort(key=lambda item: item[1]["metadata"]["name"][-3:])  # kinds interleaved
        start = time.monotonic()
        create_all(cluster, namespace, bulk)
        result["bulk_created_s"] = round(time.monotonic() - start, 1)
        log(f"{len(bulk)} objects created in {result['bulk_created_s']}s")
        everyone = {
            "datasets": [d["metadata"]["name"] for d in population["datasets"]],
            "trainingruns": [r["metadata"]["name"] for r in population["runs"] + population["bulk_tr"]],
            "modeldeployments": [m["metadata"]["name"] for m in serving + population["bulk_md"]],
        }

        def without_status() -> list[str]:
            return [n for p, t in trackers.items() for n in t.without_status(everyone[p])]

        def report_missing() -> bool:
            missing = without_status()
            if not missing:
                return True
            if int(time.monotonic() - start) % 30 < 2:
                log(f"{len(missing)} objects without a status yet")
            return False

        complete = wait_until(report_missing, timeout=args.timeout, what="every object with a status", fail=False)
        status_s = (
            max(max(t.status_at.get(n, 0) for n in everyone[p]) for p, t in trackers.items() if everyone[p]) - start
        )
        result["population_status"] = {
            "seconds": round(status_s, 1) if complete else None,
            "complete": bool(complete),
            "without_status": len(without_status()),
            "objects": sum(len(v) for v in everyone.values()),
        }
        result["burst"] = sampler.stop()
        log(f"(c) {json.dumps(result['population_status'])}; burst {json.dumps(result['burst'])}")

        def not_settled() -> bool:
            left = all_in(tr, population["expected_tr"]) + all_in(md, population["expected_md"])
            return not left

        settled = wait_until(
            not_settled, timeout=args.timeout, what="every bulk object in its expected phase", fail=False
        )
        result["population_status"]["expected_phases_s"] = round(time.monotonic() - start, 1) if settled else None
        result["population_status"]["not_in_expected_phase"] = len(
            all_in(tr, population["expected_tr"]) + all_in(md, population["expected_md"])
        )
        log(f"every object in its expected phase after {result['population_status']['expected_phases_s']}s")

        # 3. Idle: (a) with the operator, and the idle half of (d).
        time.sleep(args.settle)
        log(f"idle window of {args.window:.0f}s with the operator running")
        result["idle_with"] = window(cluster, operator, args.window)

        # 4. (b) with the population present.
        result["latency"] = {}
        for plural, manifest in (
            (
                "trainingruns",
                lambda i: training_run(f"probe-tr-{i:03d}", "probe", dataset=MISSING_DATASET, datasetWaitSeconds=0),
            ),
            (
                "modeldeployments",
                lambda i: model_deployment(f"probe-md-{i:03d}", "probe", {"name": "unpromoted-probe"}),
            ),
        ):
            log(f"(b) {args.samples} × kubectl apply of a {plural[:-1]}")
            result["latency"][plural] = latencies(
                kubectl, trackers[plural], namespace, manifest, args.samples, args.sample_timeout, args.latency_budget
            )

        # 5. (a) without the operator: what the cluster itself asks of the API server.
        result["operator"].update(operator.restarts())  # before the pod is replaced by scaling
        log(f"idle window of {args.window:.0f}s with the operator scaled to 0")
        scaled_down = True
        operator.scale(0)
        time.sleep(10)
        result["idle_without"] = window(cluster, None, args.window)
        operator.scale(1)
        scaled_down = False
        with_, without = result["idle_with"], result["idle_without"]
        caused = with_["requests_per_s"] - without["requests_per_s"]
        result["idle"] = {
            "operator_requests_per_s": caused,
            "per_object": caused / counts["objects"],
            "operator_metric_per_s": with_["operator_metric_per_s"],
            "top": sorted(
                ((k, v - without["by_request"].get(k, 0.0)) for k, v in with_["by_request"].items()),
                key=lambda kv: -kv[1],
            )[:8],
            "operator_cpu_cores": with_["operator_cpu_cores"],
            "operator_rss_mb": with_["operator_rss_mb"],
            "apiserver_cpu_cores": {"with": with_["apiserver_cpu_cores"], "without": without["apiserver_cpu_cores"]},
            "node_cpu_busy": {"with": with_["node_cpu_busy"], "without": without["node_cpu_busy"]},
        }
        if operator.build != result["operator"]["image_build"]:
            result["warning"] = f"the operator's image changed during the run ({operator.build})"
    finally:
        if scaled_down:
            with contextlib.suppress(Exception):
                operator.scale(1)
        if args.keep:
            log(f"namespace {namespace} kept (--keep)")
        else:
            cleanup(cluster, kubectl, namespace, args.cleanup_timeout)


def cleanup(cluster: Cluster, kubectl: Kubectl, namespace: str, timeout: float) -> None:
    Guard.check = staticmethod(lambda: None)
    log(f"deleting namespace {namespace} (the operator removes its finalizers)")
    start = time.monotonic()
    kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)

    def gone() -> bool:
        try:
            cluster.core.read_namespace(namespace)
        except ApiException as error:
            return error.status == 404
        return False

    if wait_until(gone, timeout=timeout, what=f"namespace {namespace} deleted", fail=False, interval=3):
        kubectl.run("delete", "pv", f"local-{namespace}-mlops-artifacts", "--wait=false", check=False)
        shutil.rmtree(STATE / "volumes" / namespace, ignore_errors=True)
        log(f"namespace {namespace} deleted in {time.monotonic() - start:.0f}s")


# --- the report -----------------------------------------------------------------------------------


def _f(value: Any, fmt: str = "{:.3g}", unit: str = "") -> str:
    return "—" if value is None else fmt.format(value) + unit


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    idle, pop, lat = r.get("idle") or {}, r.get("population_status") or {}, r.get("latency") or {}
    counts, pods = r["population"], r.get("server_pods") or {}

    def lat_row(plural: str, key: str) -> str:
        found = lat.get(plural) or {}
        text = _f(found.get(key), "{:.2f}", " s")
        return text + (f" ({found['timeouts']} > {found['timeout_s']:.0f} s)" if found.get("timeouts") else "")

    status_s, op = pop.get("seconds"), r.get("operator") or {}
    restarts = "—"
    if op.get("restarts") is not None and op.get("restarts_at_start") is not None:
        restarts = f"{op['restarts'] - op['restarts_at_start']} ({op.get('last_reason') or '—'})"
    return [
        (
            "objects (TR / MD / DS)",
            f"{counts['trainingruns']['total']} / {counts['modeldeployments']['total']} / {counts['datasets']}",
        ),
        (
            "TR trained / running / waiting / finished",
            "{trained} / {running} / {waiting} / {finished}".format(**counts["trainingruns"]),
        ),
        (
            "MD settled / canarying / waiting",
            "{settled} / {canarying} / {waiting}".format(**counts["modeldeployments"]),
        ),
        (
            "server pods running (mean RSS)",
            f"{pods.get('running', '—')} ({_f(pods.get('mean_rss_mb'), '{:.0f}', ' MB')})",
        ),
        ("(a) idle requests/s caused by the operator", _f(idle.get("operator_requests_per_s"), "{:.1f}")),
        ("(a) … per object (goal ≤ 0.01)", _f(idle.get("per_object"), "{:.4f}")),
        ("(a) operator's own counter, requests/s", _f(idle.get("operator_metric_per_s"), "{:.1f}")),
        (
            "(a) API server requests/s with / without operator",
            f"{_f((r.get('idle_with') or {}).get('requests_per_s'), '{:.1f}')} / "
            f"{_f((r.get('idle_without') or {}).get('requests_per_s'), '{:.1f}')}",
        ),
        (
            "(a) API server CPU, cores, with / without",
            f"{_f((idle.get('apiserver_cpu_cores') or {}).get('with'), '{:.2f}')} / "
            f"{_f((idle.get('apiserver_cpu_cores') or {}).get('without'), '{:.2f}')}",
        ),
        (
            "(a) machine CPU busy, with / without (2 cores)",
            f"{_f((idle.get('node_cpu_busy') or {}).get('with'), '{:.0%}')} / "
            f"{_f((idle.get('node_cpu_busy') or {}).get('without'), '{:.0%}')}",
        ),
        ("(b) TrainingRun apply → status p50 (goal < 0.5 s)", lat_row("trainingruns", "p50")),
        ("(b) TrainingRun p99 (goal < 2 s)", lat_row("trainingruns", "p99")),
        ("(b) ModelDeployment p50 (goal < 0.5 s)", lat_row("modeldeployments", "p50")),
        ("(b) ModelDeployment p99 (goal < 2 s)", lat_row("modeldeployments", "p99")),
        (
            "(c) bulk created → every object has a status",
            _f(status_s, "{:.1f}", " s")
            if pop.get("complete") or status_s is not None
            else f"incomplete: {pop.get('without_status')} without",
        ),
        ("(c) … every object in its expected phase", _f(pop.get("expected_phases_s"), "{:.1f}", " s")),
        ("(d) operator RSS at idle (goal < 250 MB)", _f(idle.get("operator_rss_mb"), "{:.0f}", " MB")),
        ("(d) operator CPU at idle, cores", _f(idle.get("operator_cpu_cores"), "{:.3f}")),
        (
            "(d) operator RSS peak during the burst",
            _f((r.get("burst") or {}).get("operator_rss_mb_peak"), "{:.0f}", " MB"),
        ),
        (
            "(d) operator CPU during the burst, mean / peak 5 s",
            f"{_f((r.get('burst') or {}).get('operator_cpu_cores_mean'), '{:.2f}')} / "
            f"{_f((r.get('burst') or {}).get('operator_cpu_cores_peak_5s'), '{:.2f}')}",
        ),
        (
            "Datasets Ready + 2 runs trained / serving up",
            f"{_f(r.get('datasets_ready_s'), '{:.0f}', ' s')} / {_f(r.get('serving_ready_s'), '{:.0f}', ' s')}",
        ),
        ("operator container restarts during the run (last reason)", restarts),
        ("whole run", _f(r.get("total_s"), "{:.0f}", " s")),
    ]


def print_table(results: list[dict[str, Any]]) -> None:
    table = [rows(r) for r in results]
    width = max(len(name) for name, _ in table[0])
    cols = [max(len(r["label"]), *(len(v) for _, v in t)) for r, t in zip(results, table, strict=True)]
    print(f"\n{'':{width}}  " + "  ".join(f"{r['label']:>{c}}" for r, c in zip(results, cols, strict=True)))
    for i, (name, _) in enumerate(table[0]):
        print(f"{name:{width}}  " + "  ".join(f"{t[i][1]:>{c}}" for t, c in zip(table, cols, strict=True)))
    for r in results:
        top = (r.get("idle") or {}).get("top") or []
        if top:
            print(
                f"\n{r['label']}: idle requests/s caused by the operator, by verb and resource: "
                + ", ".join(f"{k} {v:.1f}" for k, v in top if v >= 0.05)
            )
        for key in ("warning", "error"):
            if r.get(key):
                print(f"{r['label']}: {key.upper()} {r[key]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="current", help="name of this run in the report")
    parser.add_argument("--json", metavar="OUT", help="write the figures to this file")
    parser.add_argument("--compare", nargs="+", metavar="JSON", help="print earlier runs side by side and exit")
    parser.add_argument("--trainingruns", type=int, default=1000)
    parser.add_argument("--modeldeployments", type=int, default=200)
    parser.add_argument("--datasets", type=int, default=50)
    parser.add_argument("--running", type=int, default=10, help="TrainingRuns with a Job that cannot start")
    parser.add_argument("--waiting", type=int, default=40, help="TrainingRuns waiting for a Dataset")
    parser.add_argument("--settled", type=int, default=6, help="ModelDeployments serving one pod")
    parser.add_argument("--canarying", type=int, default=2, help="ModelDeployments canarying (two pods)")
    parser.add_argument("--samples", type=int, default=20, help="applies per kind for (b)")
    parser.add_argument("--sample-timeout", type=float, default=120, help="bound of one sample of (b)")
    parser.add_argument("--latency-budget", type=float, default=900, help="bound of the samples of one kind")
    parser.add_argument("--window", type=float, default=60, help="seconds of each idle window")
    parser.add_argument("--settle", type=float, default=30, help="seconds to wait before the idle window")
    parser.add_argument("--timeout", type=float, default=1200, help="bound of each wait for the population")
    parser.add_argument("--cleanup-timeout", type=float, default=900)
    parser.add_argument("--keep", action="store_true", help="leave the namespace in place")
    args = parser.parse_args()
    if args.compare:
        print_table([json.loads(pathlib.Path(p).read_text()) for p in args.compare])
        return 0

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    result: dict[str, Any] = {"label": args.label, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    try:
        run(args, result)
    except (Exception, SystemExit) as error:
        result["error"] = str(error) or type(error).__name__
        log(f"stopped early: {result['error']}")
    result["total_s"] = round(time.monotonic() - _started, 1)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if "population" in result:
        print_table([result])
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
