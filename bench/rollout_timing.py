#!/usr/bin/env python3
"""Measures the two rollout budgets on the local cluster (run by hand, not in CI).

    make cluster-up image && .venv/bin/python bench/rollout_timing.py [--rollouts 5] [--no-peer]

1. Step advance: a canary `pause: {duration: 3s}` ends at `status.canary.pauseStartedAt` + 3 s (the
   time the state machine itself uses); the figure is how long after that the status shows the next
   step (budget: within 1 s). The canary is judged on an always-passing query (`vector(0)`), measured
   once when its pod is ready: a step waits while the latest measurement is inconclusive, and the
   promotion needs a Successful one, so the figure is the step timing alone.
2. Rollback: an analysis whose query always fails (`vector(1)`, `result < 0`), `failureLimit: 2`,
   `interval: 5s`. From the status showing the limit reached (the failing measurement and the
   rollback are one status write): to 100 % of traffic on stable (no ready endpoint of the Service is
   a canary pod), and to the stable version back at full capacity (all its pods available, the
   canary at 0). Budget: within one analysis interval.

It installs the operator as `make deploy` does (in the cluster, judging on the cluster's Prometheus)
and works in a namespace of its own with an artifact store; the status is polled every 50 ms.

The peer (`--peer`, the default; `--no-peer` measures the ModelDeployment alone): Argo Rollouts, run in
the same run by the bench itself as a process on the host (bench/argo_rollouts.py; build it first with
`LOCALCLUSTER_COMPONENTS=argo-rollouts hack/localcluster/build.sh`), measured the same way, one after ours,
on Rollouts of the same model server pods (the pod template of the ModelDeployment's stable Deployment):
1. Step advance: the same steps, no analysis (an Argo Rollout needs none to be promoted); from a pause's
   end, `status.pauseConditions[].startTime` + 3 s (a whole second: the API's time format, and what
   Argo's controller itself counts from), to `status.currentStepIndex` moving on.
2. Rollback: the same failing Prometheus query, condition `result[0] < 0`, every 5 s, in an inline step
   analysis (`steps: [setWeight 50, analysis]`, 2 replicas): the step waits on it as ours waits on the
   `analysis: {}` step. Argo fails a metric once its failures exceed `failureLimit` (`failed >
   failureLimit`), ours rolls back once `failureLimit` measurements failed (`failures >= failureLimit`):
   the same 2 failed measurements are Argo's `failureLimit: 1`. From the poll first seeing the
   AnalysisRun Failed (or the Rollout aborted, whichever shows first): to no ready endpoint of the
   Rollout's Service being a canary pod, and to the stable ReplicaSet at full availability (2) with the
   canary's at 0. Argo's basic canary keeps its defaults (maxSurge and maxUnavailable 25 %: 1 and 0 of
   2 pods), so an aborted canary's pod goes once the stable ReplicaSet is back to 2 available pods.
Memory: the resident set (VmRSS) of each controller's process, sampled every 0.5 s through the whole run:
our operator's (the main process of its pod's container, found on this host by the container's ID in
/proc/*/cgroup) and Argo Rollouts' controller. The figures end in a side-by-side table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import pathlib
import statistics
import sys
import threading
import time
from collections.abc import Callable

import kubernetes

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import argo_rollouts  # noqa: E402  (bench/argo_rollouts.py, the peer)

from support import KUBECONFIG, Kubectl, deployed_operator_namespace, wait_for, wait_phase  # noqa: E402

PAUSE_SECONDS, INTERVAL_SECONDS, POLL = 3, 5, 0.05
FAILURE_LIMIT = 2  # failed measurements that roll the canary back
VERSIONS = ("base", "next")  # two model versions the deployments alternate between
PAUSES = "pauses"  # the ModelDeployment of the step advance measurement, whose pods the peer's Rollouts run
OPERATOR_NAMESPACE = os.environ.get("MLOPS_NAMESPACE", "mlops-system")  # as hack/deploy.sh installs it
OPERATOR_RELEASE = os.environ.get("MLOPS_RELEASE", "mlops-operator")


def _run(name: str, estimator: str) -> str:
    return json.dumps(
        {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": name},
            "spec": {
                "datasetRef": {"name": "iris"},
                "promotion": {"policy": "manual"},
                "model": {"name": "bench", "estimator": estimator},
            },
        }
    )


def _deployment(name: str, run: str, spec: dict) -> str:
    return json.dumps(
        {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {"model": {"trainingRun": run}, "replicas": 2, "postPromotion": {"enabled": False}, **spec},
        }
    )


@functools.cache
def _api() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(KUBECONFIG)))


def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Deployment:
    def __init__(self, kubectl: Kubectl, ns: str, name: str) -> None:
        self.kubectl, self.ns, self.name = kubectl, ns, name

    def status(self) -> dict:
        """Read with the API client, not a kubectl process per poll: the measurement must not load the machine."""
        found = _api().get_namespaced_custom_object("mlops.dev", "v1alpha1", self.ns, "modeldeployments", self.name)
        return found.get("status") or {}

    def serve(self, run: str) -> None:
        self.kubectl.run(
            "patch",
            "modeldeployment",
            self.name,
            "-n",
            self.ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"model": {"trainingRun": run}}}),
        )

    def settled_on(self, run: str) -> bool:
        status = self.status()
        return status.get("phase") in ("Healthy", "Degraded") and status["stable"]["version"] == run


def step_advances(kubectl: Kubectl, ns: str, rollouts: int) -> list[float]:
    """Seconds from each pause's end (pauseStartedAt + duration) to the status showing the next step."""
    steps = [
        {"setWeight": 30},
        {"pause": {"duration": f"{PAUSE_SECONDS}s"}},
        {"setWeight": 60},
        {"pause": {"duration": f"{PAUSE_SECONDS}s"}},
    ]
    passing = {"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}
    spec = {"strategy": {"canary": {"steps": steps}}, "analysis": {"interval": "1h", "metrics": [passing]}}
    md = Deployment(kubectl, ns, PAUSES)
    kubectl.apply(_deployment(md.name, VERSIONS[0], spec), ns)
    wait_for(lambda: md.settled_on(VERSIONS[0]), timeout=120, what="the first version serving")
    figures = []
    for i in range(rollouts):
        target = VERSIONS[(i + 1) % 2]
        md.serve(target)
        pause_end, index = None, None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, seen = md.status(), time.time()
            canary = status.get("canary")
            if pause_end is not None and (canary is None or canary["stepIndex"] != index):
                figures.append(seen - pause_end)
                print(
                    f"rollout {i}: step {index} → {canary['stepIndex'] if canary else 'promoted'} "
                    f"{figures[-1]:+.2f}s after its pause ended"
                )
                pause_end = None
                if canary is None:
                    break
            if pause_end is None and canary and canary.get("pauseStartedAt"):
                pause_end, index = _timestamp(canary["pauseStartedAt"]) + PAUSE_SECONDS, canary["stepIndex"]
            time.sleep(POLL)  # sampling period of the measurement
        wait_for(lambda t=target: md.settled_on(t), timeout=60, what=f"{target} promoted")
    return figures


def _no_traffic_to_canary(kubectl: Kubectl, ns: str, name: str) -> bool:
    """No ready endpoint of the Service is a canary pod: every new request goes to the stable version."""
    slices = kubectl.json("get", "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={name}")["items"]
    canary_ips = {
        pod["status"].get("podIP")
        for pod in kubectl.json("get", "pods", "-n", ns, "-l", f"mlops.dev/deployment={name},mlops.dev/variant=canary")[
            "items"
        ]
    }
    ready = {
        a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready") for a in e["addresses"]
    }
    return not (ready & canary_ips)


def _stable_at_full(kubectl: Kubectl, ns: str, name: str) -> bool:
    stable, canary = (kubectl.get("deployment", f"{name}-{v}", ns) or {} for v in ("stable", "canary"))
    replicas = stable.get("spec", {}).get("replicas", 0)
    available = stable.get("status", {}).get("availableReplicas", 0)
    return replicas == 2 and available == 2 and canary.get("status", {}).get("replicas", 0) == 0


def rollbacks(kubectl: Kubectl, ns: str, rollouts: int) -> list[tuple[float, float]]:
    """(limit reached → no traffic to the canary, limit reached → stable at full capacity) per rollback."""
    failing = {"name": "always-fails", "query": "vector(1)", "successCondition": "result < 0"}
    spec = {
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        "analysis": {"interval": f"{INTERVAL_SECONDS}s", "failureLimit": FAILURE_LIMIT, "metrics": [failing]},
    }
    figures = []
    for i in range(rollouts):
        md = Deployment(kubectl, ns, f"failing-{i}")
        kubectl.apply(_deployment(md.name, VERSIONS[0], spec), ns)
        wait_for(lambda m=md: m.settled_on(VERSIONS[0]), timeout=120, what="the stable version serving")
        md.serve(VERSIONS[1])
        wait_for(
            lambda m=md: (m.status().get("canary") or {}).get("readyReplicas"),
            timeout=120,
            what="the canary pods ready",
        )
        limit_seen = wait_for(
            lambda m=md: m.status().get("degraded") and time.time(),
            timeout=120,
            what="the failure limit reached",
            interval=POLL,
        )
        traffic = wait_for(
            lambda m=md: _no_traffic_to_canary(kubectl, ns, m.name) and time.time(),
            timeout=60,
            what="no traffic to the canary",
            interval=POLL,
        )
        full = wait_for(
            lambda m=md: _stable_at_full(kubectl, ns, m.name) and time.time(),
            timeout=60,
            what="the stable version at full capacity",
            interval=POLL,
        )
        status = md.status()
        figures.append((traffic - limit_seen, full - limit_seen))
        print(
            f"rollback {i}: {status['degraded']['message']!r}; after the status showed the limit reached: "
            f"100 % of traffic on stable {traffic - limit_seen:.2f}s later, "
            f"stable back at full capacity {full - limit_seen:.2f}s later"
        )
        kubectl.run("delete", "modeldeployment", md.name, "-n", ns, "--wait=false")
    return figures


def _proc(pid: int, name: str) -> str:
    return pathlib.Path(f"/proc/{pid}/{name}").read_text(errors="replace")


def _pids() -> list[int]:
    return [int(d.name) for d in pathlib.Path("/proc").iterdir() if d.name.isdigit()]


def operator_pid() -> int | None:
    """The host PID of our operator: the main process of its pod's `operator` container (the chart runs
    `mlops-operator run ...`), found by the container's ID in the processes' cgroups (the node runs on this
    host); failing that, the one `mlops-operator run` whose HOSTNAME is the pod's name."""
    core = kubernetes.client.CoreV1Api(_api().api_client)
    selector = f"app.kubernetes.io/instance={OPERATOR_RELEASE}"
    response = core.list_namespaced_pod(
        OPERATOR_NAMESPACE, label_selector=selector, _preload_content=False, _request_timeout=10
    )
    pods = [
        p
        for p in json.loads(response.data)["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    for pod in pods:
        statuses = [c for c in pod["status"].get("containerStatuses") or [] if c["name"] == "operator"]
        container = (statuses[0].get("containerID") or "").partition("://")[2] if statuses else ""
        inside = set()
        for pid in _pids():
            with contextlib.suppress(OSError):
                if container and container in _proc(pid, "cgroup"):
                    inside.add(pid)
        parents = {}
        for pid in inside:
            with contextlib.suppress(OSError):
                parents[pid] = int(_proc(pid, "stat").rsplit(")", 1)[1].split()[1])
        roots = [pid for pid, parent in parents.items() if parent not in inside]  # the container's first process
        if len(roots) == 1:
            return roots[0]
        for pid in _pids():
            with contextlib.suppress(OSError):
                argv = _proc(pid, "cmdline").split("\0")
                environ = _proc(pid, "environ").split("\0")
                if (
                    len(argv) > 2
                    and argv[1].endswith("/mlops-operator")
                    and argv[2] == "run"
                    and f"HOSTNAME={pod['metadata']['name']}" in environ
                ):
                    return pid
    return None


class RssSampler:
    """The resident set (VmRSS, MiB) of some processes, read from /proc every `period` seconds in a thread.
    Each is named and found by a function (its PID, or None); a process gone (a restarted pod) is found again."""

    def __init__(self, period: float = 0.5) -> None:
        self.period, self.samples = period, {}
        self.finders: dict[str, Callable[[], int | None]] = {}
        self.pids: dict[str, int | None] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def watch(self, name: str, find: Callable[[], int | None]) -> None:
        self.finders[name], self.samples[name], self.pids[name] = find, [], None

    def _rss(self, name: str) -> float | None:
        for attempt in range(2):
            if self.pids[name] is None or attempt:
                try:
                    self.pids[name] = self.finders[name]()
                except Exception as error:  # the API may be briefly away: look again next time
                    print(f"RSS of {name}: cannot find its process: {error}", file=sys.stderr)
                    self.pids[name] = None
                if self.pids[name] is None:
                    return None
            with contextlib.suppress(OSError):
                for line in _proc(self.pids[name], "status").splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        return None

    def _run(self) -> None:
        next_find = {}  # a process not found is looked for again at most every 5 s
        while not self.stop.is_set():
            for name in self.finders:
                if self.pids[name] is None and time.monotonic() < next_find.get(name, 0):
                    continue
                rss = self._rss(name)
                if rss is None:
                    next_find[name] = time.monotonic() + 5
                else:
                    self.samples[name].append(rss)
            self.stop.wait(self.period)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def summary(self, name: str) -> str:
        values = self.samples.get(name) or []
        if not values:
            return "not sampled (process not found)"
        return f"median {statistics.median(values):.0f} MiB, peak {max(values):.0f} MiB ({len(values)} samples)"


def _figures(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):.2f}s, max {max(values):.2f}s (n={len(values)})"


def _table(rows: list[tuple[str, str, str]]) -> str:
    header = ("", "ours (ModelDeployment)", argo_rollouts.NAME)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"measure {argo_rollouts.NAME} side by side (default: yes; build it with {argo_rollouts.BUILD})",
    )
    args = parser.parse_args()
    if args.peer:
        argo_rollouts.require_built()  # before anything is deployed
    kubectl = Kubectl(KUBECONFIG)
    with deployed_operator_namespace(kubectl, "bench") as ns, contextlib.ExitStack() as stack:
        kubectl.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
        kubectl.apply(_run(VERSIONS[0], "sklearn.dummy.DummyClassifier"), ns)
        kubectl.apply(_run(VERSIONS[1], "sklearn.linear_model.LogisticRegression"), ns)
        for run in VERSIONS:
            wait_phase(kubectl, "trainingrun", run, ns, ("Succeeded",), timeout=300)
        # The controller first: its process is forked before the sampler's thread runs.
        controller = stack.enter_context(argo_rollouts.Controller(kubectl, ns)) if args.peer else None
        rss = RssSampler()
        rss.watch("ours", operator_pid)
        if controller:
            rss.watch("peer", lambda: controller.pid)
        stack.enter_context(rss)
        advances = step_advances(kubectl, ns, args.rollouts)
        if controller:
            template = argo_rollouts.PodTemplate.of_stable_deployment(ns, PAUSES, VERSIONS)
            peer_advances = argo_rollouts.step_advances(
                kubectl, controller, template, VERSIONS, args.rollouts, pause_seconds=PAUSE_SECONDS, poll=POLL
            )
        backs = rollbacks(kubectl, ns, args.rollouts)
        if controller:
            peer_backs = argo_rollouts.rollbacks(
                kubectl,
                controller,
                template,
                VERSIONS,
                args.rollouts,
                interval_seconds=INTERVAL_SECONDS,
                failure_limit=FAILURE_LIMIT,
                poll=POLL,
            )
        stack.close()  # the sampler and the controller stop here, before the summary
        print(
            f"\nstep advance after the pause ended: median {statistics.median(advances):.2f}s, "
            f"max {max(advances):.2f}s over {len(advances)} pauses (budget: 1 s)"
        )
        for what, values in (
            ("100 % of traffic on stable", [a for a, _ in backs]),
            ("stable at full capacity", [b for _, b in backs]),
        ):
            print(
                f"rollback, limit reached → {what}: median {statistics.median(values):.2f}s, max {max(values):.2f}s "
                f"over {len(backs)} rollbacks (budget: one interval, {INTERVAL_SECONDS} s)"
            )
        print(f"operator RSS: {rss.summary('ours')}")
        if controller:
            print(f"\nside by side ({args.rollouts} rollouts each; rollback figures from the failure limit reached):")
            print(
                _table(
                    [
                        ("step advance after the pause ended", _figures(advances), _figures(peer_advances)),
                        (
                            "rollback → 100 % of traffic on stable",
                            _figures([a for a, _ in backs]),
                            _figures([a for a, _ in peer_backs]),
                        ),
                        (
                            "rollback → stable at full capacity",
                            _figures([b for _, b in backs]),
                            _figures([b for _, b in peer_backs]),
                        ),
                        ("controller RSS", rss.summary("ours"), rss.summary("peer")),
                    ]
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
