#!/usr/bin/env python3
"""Serving that scales with demand, measured on the local cluster (run by hand, not in CI).

    make metrics-addons deploy && .venv/bin/python bench/autoscaling.py [--target 60] [--max-replicas 4]

One bounded load ramp (loopback only; it stops by itself) through a ModelDeployment's Service: clients
sending one request after another on a new connection each (so kube-proxy spreads them over the pods),
1, 2, 4 and 8 of them for `--step` seconds each, then 8 for twice as long. The same ramp runs against:

1. `fixed`: spec.replicas = minReplicas (1), no autoscaling — the throughput to beat;
2. `auto`: spec.autoscaling {minReplicas 1, maxReplicas, requestsPerSecond: target} with the default
   behaviour (scale out at once) — time from load onset until the first added pod is ready (it
   serves: the Service sends it traffic once ready) and until all of them are, and the throughput;
3. `canary`: as `auto`, with a canary held at 25 % (a manual pause) during the ramp — the canary's
   share of the pods and of the answers (each answer names its model version) while the total moves.

The HorizontalPodAutoscaler reads the request rate from prometheus-adapter (docs/autoscaling/, a 1m
rate of a counter Prometheus scrapes every 2 s) and looks every 5 s (the local cluster's sync period).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import pathlib
import statistics
import sys
import threading
import time

import aiohttp
import kubernetes

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import KUBECONFIG, Kubectl, deployed_operator_namespace, two_iris_versions, wait_for  # noqa: E402

BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[5.9, 3.0, 5.1, 1.8]]}]})
CLIENTS = (1, 2, 4, 8, 8)  # one ramp step each; the last one holds


@functools.cache
def _api() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(KUBECONFIG)))


def md_status(ns: str, name: str) -> dict:
    found = _api().get_namespaced_custom_object("mlops.dev", "v1alpha1", ns, "modeldeployments", name)
    return found.get("status") or {}


def apply(kubectl: Kubectl, ns: str, name: str, run: str, **spec) -> None:
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"trainingRun": run},
            "replicas": 1,
            "postPromotion": {"enabled": False},
            "analysis": {
                "interval": "1h",
                "metrics": [{"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}],
            },
            **spec,
        },
    }
    kubectl.apply(json.dumps(body), ns)


class Ramp:
    """The load, and what it saw each second: answers by model version, failures."""

    def __init__(self, url: str, step: float) -> None:
        self.url, self.step = url, step
        self.answers: collections.Counter[tuple[int, str]] = collections.Counter()  # (second, version) → count
        self.failures = 0
        self.started = 0.0
        self.clients = 0

    async def _client(self, session: aiohttp.ClientSession, until: float) -> None:
        while time.monotonic() < until:
            try:
                async with session.post(self.url, data=BODY, headers={"Content-Type": "application/json"}) as r:
                    answer = await r.json()
                    if r.status != 200:
                        self.failures += 1
                        continue
                self.answers[(int(time.monotonic() - self.started), answer.get("model_version", "?"))] += 1
            except (TimeoutError, aiohttp.ClientError):
                self.failures += 1

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)  # a new connection per request
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.started = time.monotonic()
            tasks: list[asyncio.Task] = []
            end = self.started
            for i, clients in enumerate(CLIENTS):
                end += self.step * (2 if i == len(CLIENTS) - 1 else 1)
                while len(tasks) < clients:
                    tasks.append(asyncio.ensure_future(self._client(session, self.started + self.duration)))
                self.clients = clients
                await asyncio.sleep(max(0.0, end - time.monotonic()))
            await asyncio.gather(*tasks)

    @property
    def duration(self) -> float:
        return self.step * (len(CLIENTS) + 1)

    def run_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        thread.start()
        return thread

    def throughput(self, since: float = 0) -> float:
        """Answers per second from `since` seconds after onset to the end."""
        counted = sum(n for (second, _), n in self.answers.items() if second >= since)
        return counted / max(self.duration - since, 1)


def observe(kubectl: Kubectl, ns: str, name: str, ramp: Ramp, thread: threading.Thread) -> list[dict]:
    """Once a second until the ramp ends: ready pods of each version, as the operator's status says."""
    samples = []
    while thread.is_alive():
        s = md_status(ns, name)
        stable, canary = s.get("stable") or {}, s.get("canary") or {}
        ready = {"stable": stable.get("readyReplicas", 0), "canary": canary.get("readyReplicas", 0)}
        samples.append({"t": time.monotonic() - ramp.started, "clients": ramp.clients, **ready})
        time.sleep(1)  # sampling period of the measurement
    return samples


def url_of(kubectl: Kubectl, ns: str, name: str) -> str:
    return f"http://{kubectl.get('service', name, ns)['spec']['clusterIP']}/v2/models/iris/infer"


def serving(ns: str, name: str, version: str, pods: int) -> bool:
    s = md_status(ns, name)
    return (s.get("stable") or {}).get("version") == version and (s.get("stable") or {}).get("readyReplicas") == pods


def run_phase(kubectl: Kubectl, ns: str, name: str, step: float) -> tuple[Ramp, list[dict]]:
    ramp = Ramp(url_of(kubectl, ns, name), step)
    thread = ramp.run_in_thread()
    samples = observe(kubectl, ns, name, ramp, thread)
    thread.join()
    return ramp, samples


def first(samples: list[dict], test) -> float | None:
    return next((s["t"] for s in samples if test(s)), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=60, help="requests per second per pod (the HPA's target)")
    parser.add_argument("--max-replicas", type=int, default=4)
    parser.add_argument("--step", type=float, default=15, help="seconds per ramp step")
    args = parser.parse_args()
    kubectl = Kubectl(KUBECONFIG)
    autoscaling = {"minReplicas": 1, "maxReplicas": args.max_replicas, "requestsPerSecond": args.target}
    with deployed_operator_namespace(kubectl, "bench-scale") as ns:
        a, b = two_iris_versions(kubectl, ns, "bench")
        apply(kubectl, ns, "fixed", a)
        apply(kubectl, ns, "auto", a, autoscaling=autoscaling)
        steps = [{"setWeight": 25}, {"pause": {}}]
        apply(kubectl, ns, "canary", a, autoscaling=autoscaling, strategy={"canary": {"steps": steps}})
        for name in ("fixed", "auto", "canary"):
            wait_for(lambda n=name: serving(ns, n, a, 1), timeout=180, what=f"{name} serving on one pod")
        results = {}
        for name in ("fixed", "auto"):
            ramp, samples = run_phase(kubectl, ns, name, args.step)
            results[name] = (ramp, samples)
            print(
                f"{name}: {sum(ramp.answers.values())} answers, {ramp.failures} failures, "
                f"{ramp.throughput():.0f}/s over the ramp, {ramp.throughput(args.step * 3):.0f}/s from 8 clients on; "
                f"pods {[s['stable'] for s in samples]}"
            )
        # the canary: b at 25 % of the pods, held at the manual pause, then the same ramp
        kubectl.run(
            "patch",
            "modeldeployment",
            "canary",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"model": {"trainingRun": b}}}),
        )
        wait_for(
            lambda: md_status(ns, "canary").get("pauseReason") == "PauseStep",
            timeout=180,
            what="the canary at its manual pause",
        )
        ramp, samples = run_phase(kubectl, ns, "canary", args.step)
        results["canary"] = (ramp, samples)

        fixed, auto = results["fixed"][0], results["auto"][0]
        samples = results["auto"][1]
        added = first(samples, lambda s: s["stable"] >= 2)
        full = first(samples, lambda s: s["stable"] >= args.max_replicas)
        print(f"\nautoscaling (target {args.target:g} requests/s per pod, 1 to {args.max_replicas} pods):")
        print(
            f"  load onset → first added pod ready: {added if added is None else f'{added:.0f} s'}; "
            f"→ {args.max_replicas} pods ready: {full if full is None else f'{full:.0f} s'}"
        )
        for label, since in (("whole ramp", 0), ("from 8 clients on", args.step * 3)):
            ratio = auto.throughput(since) / max(fixed.throughput(since), 1)
            print(
                f"  throughput, {label}: fixed 1 pod {fixed.throughput(since):.0f}/s, autoscaled "
                f"{auto.throughput(since):.0f}/s ({ratio:.2f}×)"
            )
        ramp, samples = results["canary"]
        pod_shares = [s["canary"] / (s["stable"] + s["canary"]) for s in samples if s["stable"] + s["canary"]]
        by_second = collections.defaultdict(collections.Counter)
        for (second, version), n in ramp.answers.items():
            by_second[second][version] += n
        answer_shares = [c[b] / sum(c.values()) for c in by_second.values() if sum(c.values()) >= 20]
        totals = sorted({s["stable"] + s["canary"] for s in samples})
        print(
            f"  canary at 25 % during the ramp: ready pods {totals} in all; canary share of the pods "
            f"min {min(pod_shares):.0%} median {statistics.median(pod_shares):.0%} max {max(pod_shares):.0%}; "
            f"of the answers (per second) min {min(answer_shares):.0%} median "
            f"{statistics.median(answer_shares):.0%} max {max(answer_shares):.0%}; "
            f"failures {ramp.failures}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
