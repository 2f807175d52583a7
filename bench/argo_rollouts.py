"""Argo Rollouts as the rollout peer of bench/rollout_timing.py: the same two measurements on an Argo Rollout.

The controller is Argo Rollouts' own (hack/localcluster/argo-rollouts, built by
`LOCALCLUSTER_COMPONENTS=argo-rollouts hack/localcluster/build.sh`), run by the bench as a process on the
host for the length of the run: out of cluster with the admin kubeconfig, namespaced to the bench's
namespace, without leader election. Its CRDs are applied server-side (they are too large for client-side
apply's annotation) and left in place afterwards, as `make argocd` leaves Argo CD's.

The Rollouts run the very model server pods the ModelDeployments run: the pod template of a ModelDeployment's
stable Deployment, as the operator created it (image, args, env, probes, lifecycle, security contexts,
volumes and the Prometheus scrape annotations), with labels of their own (so that the operator's Services
do not select them) and the model URI and digest of the version each one serves. Each Rollout of the
rollback measurement has a Service of its own in front of its pods, as a ModelDeployment has, and no
traffic router: Argo's basic canary, where the share of traffic is the share of ready pods, as ours with
the default routing.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import datetime as dt
import functools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import kubernetes

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import KUBECONFIG, STATE, Kubectl, bin_dir, wait_for  # noqa: E402

T = TypeVar("T")


def _version() -> str:
    for line in (REPO / "hack/localcluster/versions.sh").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ARGO_ROLLOUTS_VERSION":
            return value.split("#")[0].strip()
    raise SystemExit("ARGO_ROLLOUTS_VERSION is missing from hack/localcluster/versions.sh")


VERSION = _version()
NAME = f"Argo Rollouts {VERSION}"
BINARY = f"argo-rollouts-{VERSION}"
CRDS = f"argo-rollouts-{VERSION}-crds"  # beside the binary: Argo Rollouts' manifests/crds/
CRD_FILES = ("rollout", "analysis-template", "analysis-run", "cluster-analysis-template", "experiment")
CRD_NAMES = ("rollouts", "analysistemplates", "analysisruns", "clusteranalysistemplates", "experiments")
BUILD = "LOCALCLUSTER_COMPONENTS=argo-rollouts hack/localcluster/build.sh"
# On every address, as upstream's: clear of settings.py's ports and of Argo CD's (16379, 18081, 18082, 18084).
METRICS_PORT, HEALTHZ_PORT = 18090, 18091
LOG = STATE / "logs" / "bench-argo-rollouts.log"

GROUP, API_VERSION = "argoproj.io", "v1alpha1"
SERVER_CONTAINER = "server"  # the model server's container in the operator's Deployments
PEER_LABEL = "bench.mlops.dev/peer"  # names the Rollout; with app.kubernetes.io/name, its selector
HASH_LABEL = "rollouts-pod-template-hash"  # Argo's label of a ReplicaSet and its pods: which revision
REPLICAS = 2
FAILING_TEMPLATE = "peer-always-fails"
REQUEST_TIMEOUT = 10  # seconds, for every request of the API client


def missing_build() -> list[str]:
    binaries = bin_dir()
    return [n for n in (BINARY, *(f"{CRDS}/{f}-crd.yaml" for f in CRD_FILES)) if not (binaries / n).exists()]


def require_built() -> None:
    """SystemExit naming the build command when the controller or its CRDs are not built."""
    missing = missing_build()
    if missing:
        raise SystemExit(
            f"{NAME} is not built in {bin_dir()} (missing {', '.join(missing)}): run {BUILD} "
            f"(or pass --no-peer to measure the ModelDeployment alone)"
        )


@functools.cache
def _client() -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(str(KUBECONFIG))


def _custom() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(_client())


def _get(plural: str, ns: str, name: str) -> dict[str, Any]:
    api = _custom()
    return api.get_namespaced_custom_object(GROUP, API_VERSION, ns, plural, name, _request_timeout=REQUEST_TIMEOUT)


def _list(call: Callable[..., Any], ns: str, selector: str) -> list[dict[str, Any]]:
    """Items of a list call, as the API answers them (camelCase JSON, not the client's slower models)."""
    response = call(ns, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    return json.loads(response.data)["items"]


def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def prometheus_url() -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "hack/localcluster/cluster.py"), "prometheus-url"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"cluster.py prometheus-url failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:  # in the child, before exec: SIGTERM when the bench dies, however it dies
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Controller:
    """The Argo Rollouts controller as a process of the bench, namespaced to `ns` (a context manager)."""

    def __init__(self, kubectl: Kubectl, ns: str) -> None:
        self.kubectl, self.ns = kubectl, ns
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def apply_crds(self) -> None:
        crds = bin_dir() / CRDS
        files = [arg for f in CRD_FILES for arg in ("-f", str(crds / f"{f}-crd.yaml"))]
        self.kubectl.run("apply", "--server-side", "--force-conflicts", "--field-manager=mlops-bench", *files)
        self.kubectl.run(
            "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}.{GROUP}" for n in CRD_NAMES)
        )

    def __enter__(self) -> Controller:
        require_built()
        busy = [p for p in (METRICS_PORT, HEALTHZ_PORT) if _port_busy(p)]
        if busy:
            raise SystemExit(f"cannot start the {NAME} controller: port(s) {busy} already in use by another process")
        self.apply_crds()
        LOG.parent.mkdir(parents=True, exist_ok=True)
        # Its working directory: where it would download plugins (none are configured).
        self.workdir = tempfile.TemporaryDirectory(prefix="bench-argo-rollouts-")
        argv = [
            str(bin_dir() / BINARY),
            f"--kubeconfig={KUBECONFIG}",
            "--namespaced",
            f"--namespace={self.ns}",
            "--leader-elect=false",
            f"--metricsPort={METRICS_PORT}",
            f"--healthzPort={HEALTHZ_PORT}",
            "--logformat=text",
        ]
        with open(LOG, "ab") as out:
            out.write(f"\n=== {dt.datetime.now().isoformat(timespec='seconds')} {' '.join(argv)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir.name,
                # Its configuration (the ConfigMap argo-rollouts-config, none here: the defaults) and its
                # notification settings are read from the namespace it runs in, which POD_NAMESPACE names.
                env={**os.environ, "POD_NAMESPACE": self.ns},
                preexec_fn=_die_with_parent,
            )
        print(f"{NAME} controller started (pid {self.process.pid}, log {LOG})", flush=True)
        try:
            self.wait(self._healthy, timeout=60, what=f"the {NAME} controller's /healthz", interval=0.25)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HEALTHZ_PORT}/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def check(self) -> None:
        """Fail at once, with the end of its log, if the controller has exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = LOG.read_text(errors="replace").splitlines()[-25:]
            raise AssertionError(
                f"the {NAME} controller exited ({self.process.returncode}); last lines of {LOG}:\n" + "\n".join(tail)
            )

    def wait(self, condition: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
        """support.wait_for, failing early if the controller is gone."""

        def checked() -> T:
            self.check()
            return condition()

        return wait_for(checked, timeout=timeout, what=what, interval=interval)

    def __exit__(self, *_: object) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            print(f"{NAME} controller stopped (pid {process.pid})", flush=True)
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None


def peer_labels(name: str) -> dict[str, str]:
    """The labels of a Rollout's pods: none of the operator's (its Services select mlops.dev/deployment)."""
    return {"app.kubernetes.io/name": "argo-rollouts-peer", PEER_LABEL: name}


def _replace_arg(args: list[str], flag: str, value: str) -> list[str]:
    if flag not in args or args.index(flag) + 1 >= len(args):
        raise AssertionError(f"the model server's args have no {flag} VALUE: {args}")
    i = args.index(flag)
    return [*args[: i + 1], value, *args[i + 2 :]]


class PodTemplate:
    """The model server pods of a ModelDeployment (its stable Deployment's pod template), for Rollouts."""

    def __init__(self, template: dict[str, Any], models: dict[str, dict[str, str]]) -> None:
        """`template`: the pod template as the API returns it; `models`: run → status.model of its TrainingRun
        ({version, uri, sha256})."""
        containers = template["spec"]["containers"]
        names = [c["name"] for c in containers]
        if SERVER_CONTAINER not in names:
            raise AssertionError(f"no container {SERVER_CONTAINER!r} in the stable Deployment's pods: {names}")
        self.container = names.index(SERVER_CONTAINER)
        args = containers[self.container].get("args") or []
        served = args[args.index("--model-uri") + 1] if "--model-uri" in args[:-1] else None
        if served not in {m["uri"] for m in models.values()}:
            raise AssertionError(
                f"the stable Deployment serves {served!r}, none of {sorted(models)}: "
                f"not the model server's args as this bench knows them: {args}"
            )
        self.template, self.models = template, models

    @classmethod
    def of_stable_deployment(cls, ns: str, md: str, runs: Iterable[str]) -> PodTemplate:
        apps = kubernetes.client.AppsV1Api(_client())
        response = apps.read_namespaced_deployment(
            f"{md}-stable", ns, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
        models = {}
        for run in runs:
            model = (
                _custom()
                .get_namespaced_custom_object(
                    "mlops.dev", "v1alpha1", ns, "trainingruns", run, _request_timeout=REQUEST_TIMEOUT
                )
                .get("status")
                or {}
            ).get("model")
            if not model:
                raise AssertionError(f"TrainingRun {run} has no status.model")
            models[run] = model
        return cls(json.loads(response.data)["spec"]["template"], models)

    def args(self, run: str) -> list[str]:
        model = self.models[run]
        args = self.template["spec"]["containers"][self.container]["args"]
        return _replace_arg(_replace_arg(args, "--model-uri", model["uri"]), "--sha256", model["sha256"])

    def for_rollout(self, name: str, run: str) -> dict[str, Any]:
        """The pod template of Rollout `name` serving `run`: the same pods, only the labels are the peer's."""
        template = copy.deepcopy(self.template)
        annotations = (template.get("metadata") or {}).get("annotations")
        template["metadata"] = {"labels": peer_labels(name), **({"annotations": annotations} if annotations else {})}
        template["spec"]["containers"][self.container]["args"] = self.args(run)
        return template


def rollout_manifest(name: str, template: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    labels = peer_labels(name)
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": template,
            "strategy": {"canary": {"steps": steps}},
        },
    }


def service_manifest(name: str) -> dict[str, Any]:
    """In front of every pod of the Rollout, stable and canary, as the operator's Service is."""
    labels = peer_labels(name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def failing_analysis_template(prometheus: str, *, interval_seconds: int, failure_limit: int) -> dict[str, Any]:
    """The ModelDeployment's failing analysis in Argo's terms. Ours rolls back once `failureLimit` measurements
    failed (failures >= limit); Argo fails a metric once failures exceed its failureLimit (failed > limit):
    the same number of failed measurements is Argo's failureLimit one less. A step's analysis must end in
    Argo Rollouts (a metric without `count` is refused as running indefinitely): `count` allows one more
    measurement than the limit needs, so it is the failures that end it."""
    metric = {
        "name": "always-fails",
        "interval": f"{interval_seconds}s",
        "failureLimit": failure_limit - 1,
        "count": failure_limit + 1,
        "successCondition": "result[0] < 0",
        "provider": {"prometheus": {"address": prometheus, "query": "vector(1)"}},
    }
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": FAILING_TEMPLATE},
        "spec": {"metrics": [metric]},
    }


class Rollout:
    """One Argo Rollout of the bench, read with the API client (never a kubectl process per poll)."""

    def __init__(self, kubectl: Kubectl, controller: Controller, name: str, template: PodTemplate) -> None:
        self.kubectl, self.controller, self.name, self.template = kubectl, controller, name, template
        self.ns = controller.ns

    def get(self) -> dict[str, Any]:
        return _get("rollouts", self.ns, self.name)

    def create(self, run: str, steps: list[dict[str, Any]], *, service: bool = False) -> None:
        manifests = [rollout_manifest(self.name, self.template.for_rollout(self.name, run), steps)]
        if service:
            manifests.append(service_manifest(self.name))
        self.kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}), self.ns)

    def serve(self, run: str) -> int:
        """Roll out `run` (its model URI in the pod template); the new generation."""
        path = f"/spec/template/spec/containers/{self.template.container}/args"
        patch = [{"op": "replace", "path": path, "value": self.template.args(run)}]
        out = self.kubectl.run(
            "patch", "rollout", self.name, "-n", self.ns, "--type=json", "-p", json.dumps(patch), "-o", "json"
        )
        return json.loads(out.stdout)["metadata"]["generation"]

    def settled(self, generation: int | None = None) -> bool:
        """Healthy on the current pod template: its ReplicaSet is the stable one, all its pods available."""
        found = self.get()
        status = found.get("status") or {}
        wanted = str(generation or found["metadata"]["generation"])
        return (
            status.get("observedGeneration") == wanted
            and status.get("phase") == "Healthy"
            and bool(status.get("stableRS"))
            and status.get("stableRS") == status.get("currentPodHash")
            and status.get("availableReplicas") == REPLICAS
        )

    def wait_settled(self, generation: int | None = None, *, timeout: float, what: str) -> None:
        try:
            self.controller.wait(lambda: self.settled(generation), timeout=timeout, what=what)
        except AssertionError as error:
            status = json.dumps(self.get().get("status"))
            raise AssertionError(f"{error}\nRollout {self.name} status: {status}") from None

    def replicasets(self) -> dict[str, dict[str, Any]]:
        """The Rollout's ReplicaSets by pod template hash."""
        apps = kubernetes.client.AppsV1Api(_client())
        found = _list(apps.list_namespaced_replica_set, self.ns, f"{PEER_LABEL}={self.name}")
        return {rs["metadata"]["labels"].get(HASH_LABEL, ""): rs for rs in found}

    def ready_endpoints(self) -> set[str]:
        """Names of the pods that are ready endpoints of the Rollout's Service."""
        discovery = kubernetes.client.DiscoveryV1Api(_client())
        slices = _list(discovery.list_namespaced_endpoint_slice, self.ns, f"kubernetes.io/service-name={self.name}")
        return {
            (e.get("targetRef") or {}).get("name", "")
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
        }

    def pods(self, pod_hash: str) -> set[str]:
        core = kubernetes.client.CoreV1Api(_client())
        found = _list(core.list_namespaced_pod, self.ns, f"{PEER_LABEL}={self.name},{HASH_LABEL}={pod_hash}")
        return {p["metadata"]["name"] for p in found}

    def delete(self) -> None:
        self.kubectl.run(
            "delete",
            f"rollout/{self.name}",
            f"service/{self.name}",
            "-n",
            self.ns,
            "--wait=false",
            "--ignore-not-found",
        )


def step_advances(
    kubectl: Kubectl,
    controller: Controller,
    template: PodTemplate,
    versions: tuple[str, str],
    rollouts: int,
    *,
    pause_seconds: int,
    poll: float,
) -> list[float]:
    """Seconds from each pause's end (status.pauseConditions[].startTime + duration, the time Argo's own
    controller requeues the Rollout for) to status.currentStepIndex moving on."""
    steps = [
        {"setWeight": 30},
        {"pause": {"duration": f"{pause_seconds}s"}},
        {"setWeight": 60},
        {"pause": {"duration": f"{pause_seconds}s"}},
    ]
    rollout = Rollout(kubectl, controller, "peer-pauses", template)
    rollout.create(versions[0], steps)
    rollout.wait_settled(timeout=180, what=f"the first version serving on the {NAME} Rollout")
    figures = []
    for i in range(rollouts):
        target = versions[(i + 1) % 2]
        generation = str(rollout.serve(target))
        pause_end, index, done = None, None, False
        deadline = time.monotonic() + 120
        while not done and time.monotonic() < deadline:
            controller.check()
            status, seen = rollout.get().get("status") or {}, time.time()
            step = status.get("currentStepIndex")
            if status.get("observedGeneration") != generation:  # the status is still that of the last rollout
                time.sleep(poll)
                continue
            if pause_end is not None and step != index:
                figures.append(seen - pause_end)
                done = step is None or step >= len(steps)
                print(
                    f"peer rollout {i}: step {index} → {'promoted' if done else step} "
                    f"{figures[-1]:+.2f}s after its pause ended"
                )
                pause_end = None
            pauses = [c for c in status.get("pauseConditions") or [] if c.get("reason") == "CanaryPauseStep"]
            if pause_end is None and not done and pauses and step is not None and "pause" in steps[step]:
                pause_end, index = _timestamp(pauses[0]["startTime"]) + pause_seconds, step
            time.sleep(poll)  # sampling period of the measurement
        if not done:
            raise AssertionError(
                f"timed out after 120s waiting for the {NAME} Rollout to walk its steps to {target}; "
                f"status: {json.dumps(rollout.get().get('status'))}"
            )
        rollout.wait_settled(int(generation), timeout=60, what=f"{target} promoted on the {NAME} Rollout")
    rollout.delete()  # its pods would only weigh on the measurements that follow
    return figures


def _failure_seen(rollout: Rollout) -> tuple[str, float] | None:
    """(what showed it, when) once the Rollout shows the abort or its step's AnalysisRun the phase Failed."""
    status = rollout.get().get("status") or {}
    if status.get("abort"):
        return "the Rollout aborted", time.time()
    run = ((status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}).get("name")
    if not run:
        return None
    phase = (_get("analysisruns", rollout.ns, run).get("status") or {}).get("phase")
    if phase == "Failed":
        return "the AnalysisRun failed", time.time()
    if phase in ("Error", "Inconclusive", "Successful"):
        raise AssertionError(
            f"AnalysisRun {run} ended {phase}, not Failed (is Prometheus reachable from the "
            f"host?): {json.dumps(_get('analysisruns', rollout.ns, run).get('status'))}"
        )
    return None


def rollbacks(
    kubectl: Kubectl,
    controller: Controller,
    template: PodTemplate,
    versions: tuple[str, str],
    rollouts: int,
    *,
    interval_seconds: int,
    failure_limit: int,
    poll: float,
) -> list[tuple[float, float]]:
    """(failure seen → no traffic to the canary, failure seen → stable at full capacity) per rollback.

    The analysis is the ModelDeployment's `analysis: {}` step's counterpart: an inline step analysis (the
    step waits on its AnalysisRun; a background analysis would not hold the steps), started once the 50 %
    step's canary pod is available, measured at once and then every interval, as ours measures the canary
    from its first ready pod on. Without a count it runs until it fails."""
    ns = controller.ns
    analysis = failing_analysis_template(
        prometheus_url(), interval_seconds=interval_seconds, failure_limit=failure_limit
    )
    kubectl.apply(json.dumps(analysis), ns)
    steps = [{"setWeight": 50}, {"analysis": {"templates": [{"templateName": FAILING_TEMPLATE}]}}]
    figures = []
    for i in range(rollouts):
        rollout = Rollout(kubectl, controller, f"peer-failing-{i}", template)
        rollout.create(versions[0], steps, service=True)
        rollout.wait_settled(timeout=180, what=f"the stable version serving on the {NAME} Rollout")
        stable = rollout.get()["status"]["stableRS"]
        generation = str(rollout.serve(versions[1]))

        def canary(r: Rollout = rollout, g: str = generation, s: str = stable) -> str | None:
            status = r.get().get("status") or {}
            current = status.get("currentPodHash")
            if status.get("observedGeneration") != g or not current or current == s:
                return None
            return current if ((r.replicasets().get(current) or {}).get("status") or {}).get("readyReplicas") else None

        canary_hash = controller.wait(canary, timeout=120, what=f"the canary pods ready on the {NAME} Rollout")
        controller.wait(
            lambda r=rollout, h=canary_hash: r.ready_endpoints() & r.pods(h),
            timeout=60,
            what=f"a canary pod behind the Service of the {NAME} Rollout",
        )
        shown, limit_seen = controller.wait(
            lambda r=rollout: _failure_seen(r),
            timeout=120,
            interval=poll,
            what=f"the analysis of the {NAME} Rollout failed",
        )

        def no_traffic(r: Rollout = rollout, h: str = canary_hash) -> float | bool:
            return not (r.ready_endpoints() & r.pods(h)) and time.time()

        def at_full(r: Rollout = rollout, h: str = canary_hash, s: str = stable) -> float | bool:
            sets = r.replicasets()
            stable_rs, canary_rs = sets.get(s) or {}, sets.get(h) or {}
            ok = (
                stable_rs.get("spec", {}).get("replicas") == REPLICAS
                and stable_rs.get("status", {}).get("availableReplicas", 0) == REPLICAS
                and canary_rs.get("status", {}).get("replicas", 0) == 0
            )
            return ok and time.time()

        traffic = controller.wait(
            no_traffic, timeout=60, interval=poll, what=f"no traffic to the canary of the {NAME} Rollout"
        )
        full = controller.wait(
            at_full, timeout=60, interval=poll, what=f"the stable version at full capacity on the {NAME} Rollout"
        )
        figures.append((traffic - limit_seen, full - limit_seen))
        message = (rollout.get().get("status") or {}).get("message", "")
        print(
            f"peer rollback {i}: {message!r}; after {shown}: 100 % of traffic on stable "
            f"{traffic - limit_seen:.2f}s later, "
            f"stable back at full capacity {full - limit_seen:.2f}s later"
        )
        rollout.delete()
    return figures
