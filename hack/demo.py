#!/usr/bin/env python3
"""The lifecycle demo (`make demo`): a model's whole life on the local cluster, told as it happens.

`make demo` first brings up the cluster, builds the image and installs the chart (`make deploy`);
this script then plays the story in the namespace `mlops-demo`, from the manifests in examples/:

  1. the Dataset `iris` is validated, versioned and profiled;
  2. two TrainingRuns train at once; the better one is promoted champion;
  3. a ModelDeployment serves the champion; traffic with ground-truth labels starts flowing;
  4. a better version (logistic regression) is trained, promoted and canaried 25 % → 50 % → 100 %,
     each step judged on Prometheus;
  5. a version trained without gates is promoted offline, canaried, and rolled back automatically
     because its live accuracy is poor — the stable version serves throughout.

It ends with a summary and leaves everything running. Re-running it starts the story afresh: it
deletes the namespace and the artifact volume of the previous run (both created by this script).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
CLUSTER = [sys.executable, str(REPO / "hack/localcluster/cluster.py")]
STATE = pathlib.Path(os.environ.get("LOCALCLUSTER_DIR", REPO / ".localcluster")).resolve()
KUBECONFIG = STATE / "kubeconfig"
EXAMPLES = REPO / "examples"
ROWS, TRUTH = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]], [0, 1, 2]
_started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


class Cluster:
    def __init__(self, namespace: str) -> None:
        build = ["bash", str(REPO / "hack/localcluster/build.sh")]
        binaries = subprocess.run(build, env={**os.environ, "BIN_ONLY": "1"}, capture_output=True, text=True,
                                  check=True).stdout.strip()  # fmt: skip
        self.kubectl = [f"{binaries}/kubectl", f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
        self.namespace = namespace

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run([*self.kubectl, *args], input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def apply(self, path: pathlib.Path) -> None:
        self.run("apply", "-n", self.namespace, "-f", str(path))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.run("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(out) if out else {}

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return self.get(kind, name).get("status") or {}


def wait(condition: Callable[[], Any], *, what: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)  # poll interval
    raise SystemExit(f"gave up after {timeout:.0f}s waiting for {what}")


def labelled_traffic(service_ip: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Inference requests through the Service, each followed by the true labels (about 20 a second)."""
    body = json.dumps({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}).encode()
    headers = {"Content-Type": "application/json"}
    while not stop.is_set():
        try:
            request = urllib.request.Request(f"http://{service_ip}/v2/models/iris/infer", body, headers)
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.load(response)
            feedback = {"model_version": answer["model_version"], "labels": TRUTH,
                        "predictions": answer["outputs"][0]["data"]}  # fmt: skip
            request = urllib.request.Request(f"http://{service_ip}/v2/models/iris/feedback",
                                             json.dumps(feedback).encode(), headers)  # fmt: skip
            urllib.request.urlopen(request, timeout=5).close()
            counts[answer["model_version"]] = counts.get(answer["model_version"], 0) + 1
        except OSError:
            counts["failed"] = counts.get("failed", 0) + 1
        stop.wait(0.05)


def fresh_namespace(cluster: Cluster) -> None:
    """The demo's namespace, new, with the credentials of the artifact store (the cluster's S3 server):
    what a previous demo left (the namespace, and its datasets and models in the bucket) goes first."""
    ns = cluster.namespace
    if cluster.run("get", "namespace", ns, "--ignore-not-found", "-o", "name"):
        say(f"removing the previous demo's namespace {ns} and its artifacts")
        cluster.run("delete", "namespace", ns, "--wait=true", "--timeout=180s")
    s3 = dict(line.split("=", 1) for line in (STATE / "s3.env").read_text().splitlines() if "=" in line)
    for kind in ("datasets", "models"):  # the S3 server's posix backend: s3://bucket/key is <root>/bucket/key
        shutil.rmtree(STATE / "s3" / "data" / s3["MLOPS_S3_BUCKET"] / "artifacts" / kind / ns, ignore_errors=True)
    cluster.run("create", "namespace", ns)
    cluster.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    cluster.run("create", "secret", "generic", "mlops-s3", "-n", ns,
                f"--from-literal=AWS_ACCESS_KEY_ID={s3['AWS_ACCESS_KEY_ID']}",
                f"--from-literal=AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}")  # fmt: skip


def check_operator(cluster: Cluster, operator_namespace: str) -> None:
    out = cluster.run("get", "deployment", "mlops-operator", "-n", operator_namespace, "-o", "json", check=False)
    if not out or not json.loads(out).get("status", {}).get("availableReplicas"):
        raise SystemExit(f"no available operator in {operator_namespace}: run `make deploy` first (make demo does)")


def promoted_champion(cluster: Cluster) -> str | None:
    selector = "mlops.dev/model=iris,mlops.dev/promoted=true"
    out = cluster.run("get", "trainingruns", "-n", cluster.namespace, "-l", selector,
                      "-o", "jsonpath={.items[*].metadata.name}")  # fmt: skip
    return out.strip() or None


def accuracy(status: dict[str, Any]) -> str:
    value = (status.get("metrics") or {}).get("accuracy")
    return f"{value:.3f}" if isinstance(value, float) else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", default="mlops-demo")
    parser.add_argument("--operator-namespace", default="mlops-system")
    args = parser.parse_args()
    cluster = Cluster(args.namespace)
    ns = args.namespace
    timings: list[tuple[str, float]] = []

    def phase(name: str, since: float) -> None:
        timings.append((name, time.monotonic() - since))

    check_operator(cluster, args.operator_namespace)
    fresh_namespace(cluster)

    t = time.monotonic()
    say("1. Dataset iris: validating the bundled iris data against its schema")
    cluster.apply(EXAMPLES / "dataset-iris.yaml")
    dataset = wait(lambda: (s := cluster.status("dataset", "iris")).get("phase") == "Ready" and s, what="Dataset Ready")
    say(f"   ✓ validated: version {dataset['version'][:19]}…, {dataset['rows']} rows, profile stored for drift")
    phase("dataset validated", t)

    t = time.monotonic()
    say("2. Two TrainingRuns at once: iris-baseline (most frequent class) and iris-stump (a depth-1 tree)")
    cluster.apply(EXAMPLES / "demo/trainingruns-first.yaml")
    runs = {}
    for run in ("iris-baseline", "iris-stump"):
        runs[run] = wait(lambda r=run: (s := cluster.status("trainingrun", r)).get("phase") in ("Succeeded", "Failed")
                         and (s.get("promotion") or {}).get("decision") and s, what=f"{run} to finish")  # fmt: skip
        decision = runs[run]["promotion"]
        say(f"   {run}: accuracy {accuracy(runs[run])}, {decision['decision']}: {decision.get('message', '')}")
    champion = wait(lambda: promoted_champion(cluster), what="a champion")
    if champion != "iris-stump":
        raise SystemExit(f"expected the better run, iris-stump, to be the champion; the champion is {champion}")
    say(f"   ✓ champion: {champion}, the better of the two")
    phase("two runs trained, better one promoted", t)

    t = time.monotonic()
    say("3. ModelDeployment iris: serving the champion behind one Service")
    cluster.apply(EXAMPLES / "demo/modeldeployment.yaml")
    wait(lambda: cluster.status("modeldeployment", "iris").get("phase") == "Healthy", what="iris Healthy")
    service_ip = cluster.get("service", "iris")["spec"]["clusterIP"]
    counts: dict[str, int] = {}
    stop = threading.Event()
    threading.Thread(target=labelled_traffic, args=(service_ip, stop, counts), daemon=True).start()
    wait(lambda: counts.get(champion), what="answers through the Service", timeout=60)
    say(f"   ✓ {champion} serves 100 % at http://{service_ip}/v2/models/iris/infer; labelled traffic flows")
    phase("served", t)

    try:
        t = time.monotonic()
        say("4. A better version: iris-logreg (logistic regression) is trained and canaried")
        cluster.apply(EXAMPLES / "trainingrun-iris-logreg.yaml")
        seen_weights: list[int] = []

        def logreg_stable() -> bool:
            status = cluster.status("modeldeployment", "iris")
            weight = (status.get("canary") or {}).get("weight")
            if weight is not None and (not seen_weights or seen_weights[-1] != weight):
                seen_weights.append(weight)
                say(f"   canary iris-logreg at {weight} %, step {status['canary']['stepIndex']}")
            if status.get("degraded"):
                raise SystemExit(f"iris-logreg was rolled back: {status['degraded']['message']}")
            return status.get("stable", {}).get("version") == "iris-logreg" and not status.get("canary")

        wait(logreg_stable, what="iris-logreg promoted to 100 %")
        analysis = cluster.status("modeldeployment", "iris").get("lastAnalysis") or []
        shown = ", ".join(f"{a['metric']}={a['value']:.3g}" for a in analysis if a.get("value") is not None)
        say(f"   ✓ iris-logreg is stable at 100 % (last analysis: {shown or 'no values'})")
        phase("better version canaried to 100 %", t)

        t = time.monotonic()
        say("5. A degraded version: iris-guess, trained without gates, is promoted offline and canaried")
        cluster.apply(EXAMPLES / "demo/trainingrun-guess.yaml")
        wait(lambda: (cluster.status("modeldeployment", "iris").get("canary") or {}).get("version") == "iris-guess",
             what="the canary of iris-guess")  # fmt: skip
        say("   canary iris-guess started; its live accuracy is measured from the labels posted back")
        status = wait(lambda: (s := cluster.status("modeldeployment", "iris")).get("degraded") and s,
                      what="the automatic rollback of iris-guess")  # fmt: skip
        say(f"   ✓ rolled back automatically: {status['degraded']['message']}")
        say(f"   ✓ stable is still {status['stable']['version']} at {status['stable'].get('weight', 100)} %")
        phase("degraded version rolled back", t)
    finally:
        stop.set()

    md = cluster.get("modeldeployment", "iris")["status"]
    print("\nSummary")
    print("  versions (held-out accuracy, promotion decision, fate in ModelDeployment iris):")
    for run in ("iris-baseline", "iris-stump", "iris-logreg", "iris-guess"):
        status = cluster.status("trainingrun", run)
        decision = (status.get("promotion") or {}).get("decision", "–")
        fate = ("serving 100 %" if md["stable"]["version"] == run
                else "rolled back" if run in (md.get("failedVersions") or [])
                else "served earlier" if any(h["version"] == run for h in md.get("history") or []) or run == champion
                else "never served")  # fmt: skip
        print(f"    {run:14} {accuracy(status):6} {decision:11} {fate}")
    print("  rollout history:")
    for entry in md.get("history") or []:
        print(f"    {entry['at']}  {entry['version']:12} {entry['outcome']:10} {entry.get('reason', '')}")
    print(
        f"  serving: {md['stable']['version']} at 100 %; failed versions: {', '.join(md.get('failedVersions') or [])}"
    )
    print("  requests answered by version: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("  timings:")
    for name, seconds in timings:
        print(f"    {name:38} {seconds:6.1f}s")
    prometheus = subprocess.run([*CLUSTER, "prometheus-url"], capture_output=True, text=True).stdout.strip()
    print(f"""
The cluster is still up. Explore it:
  export KUBECONFIG={KUBECONFIG}
  export PATH={REPO / ".venv/bin"}:{pathlib.Path(cluster.kubectl[0]).parent}:$PATH   # kubectl, helm, kubectl-mlops
  kubectl get dset,tr,md -n {ns}
  kubectl describe md iris -n {ns}
  kubectl mlops status iris -n {ns}
  kubectl mlops history iris -n {ns}
  Prometheus: {prometheus}  (the operator's and the model servers' metrics)
Stop it all with `make cluster-down`.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
