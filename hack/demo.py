#!/usr/bin/env python3
"""The lifecycle demo (`make demo`): a model's whole life on the local cluster, told as it happens.

`make demo` first brings up the cluster, builds the image and installs the chart (`make deploy`);
this script then plays the story in the namespace `mlops-demo`, from the manifests in examples/:

  1. the Dataset `iris` is validated, versioned and profiled;
  2. two TrainingRuns train at once; the better one is promoted champion;
  3. a ModelDeployment serves the champion; traffic with ground-truth labels starts flowing;
  4. a better version (logistic regression) is trained, promoted and canaried 25 % → 50 % → 100 %,
     each step judged on Prometheus;
  5. the loop is closed: the servers capture production data, the world changes (larger flowers
     come in, which the model takes for another species), the drift creates a TrainingRun on iris plus
     the captured labelled rows, and the new version beats the champion on the same held-out rows and
     is canaried to 100 % — no person driving it;
  6. a version trained without gates is promoted offline, canaried, and rolled back automatically
     because its live accuracy is poor — the stable version serves throughout.

It ends with a summary and leaves everything running. Re-running it starts the story afresh: it
deletes the namespace and the artifacts of the previous run (both created by this script).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import (  # noqa: E402
    CLUSTER,
    KUBECONFIG,
    STATE,
    Kubectl,
    LabelledTraffic,
    add_s3_credentials,
    captured_records,
    champions,
    s3_env,
    wait_for,
)

EXAMPLES = REPO / "examples"
RETRAINED = "iris-retrain-1"  # the first run the ModelDeployment iris creates
LARGER = 1.3  # the changed world: versicolor grown 30 % larger, which the models trained on iris take for virginica
_started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


class Cluster(Kubectl):
    """support.Kubectl, with the reads and applies the story repeats in the demo's namespace."""

    def __init__(self, namespace: str) -> None:
        super().__init__()
        self.namespace = namespace

    def apply_example(self, path: str) -> None:
        self.apply((EXAMPLES / path).read_text(), self.namespace)

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return (self.get(kind, name, self.namespace) or {}).get("status") or {}


class Traffic(LabelledTraffic):
    """Inference requests through the Service, each followed by its true labels (about 20 a second).

    Three iris flowers per request, drawn at random with their species; once the world changes, three
    versicolor flowers 30 % larger (the size of virginica: the models trained on iris get them wrong).
    The labels go back with the answer's receipt (`parameters.receipt`): any pod of the ModelDeployment
    scores them under the version that predicted, and the servers' capture joins them to the rows by
    the receipt's id.
    """

    def __init__(self, service_ip: str) -> None:
        from sklearn.datasets import load_iris

        super().__init__(f"http://{service_ip}/v2/models/iris")
        iris = load_iris()
        self.iris, self.species = iris.data.tolist(), iris.target
        self.changed, self.rng = False, random.Random(7)

    def next_request(self) -> tuple[list[list[float]], Callable[..., list]]:
        if self.changed:
            picked = self.rng.sample(range(50, 100), 3)  # versicolor
            return [[round(v * LARGER, 2) for v in self.iris[i]] for i in picked], lambda *_: [1, 1, 1]
        picked = self.rng.sample(range(len(self.iris)), 3)
        labels = [int(self.species[i]) for i in picked]
        return [self.iris[i] for i in picked], lambda *_: labels


def artifacts() -> pathlib.Path:
    """The artifact store of the demo, in the S3 server's posix backend (s3://bucket/key is <root>/bucket/key)."""
    return STATE / "s3" / "data" / s3_env()["MLOPS_S3_BUCKET"] / "artifacts"


def fresh_namespace(cluster: Cluster) -> None:
    """The demo's namespace, new, with the credentials of the artifact store (the cluster's S3 server):
    what a previous demo left (the namespace, and its datasets and models in the bucket) goes first."""
    ns = cluster.namespace
    if cluster.run("get", "namespace", ns, "--ignore-not-found", "-o", "name").stdout:
        say(f"removing the previous demo's namespace {ns} and its artifacts")
        cluster.run("delete", "namespace", ns, "--wait=true", "--timeout=180s")
    for kind in ("datasets", "models", "captures"):
        shutil.rmtree(artifacts() / kind / ns, ignore_errors=True)
    cluster.run("create", "namespace", ns)
    cluster.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    add_s3_credentials(cluster, ns)


def canaried(cluster: Cluster, version: str) -> None:
    """Until `version` is stable at 100 %, saying each canary weight it reaches; a rollback ends the demo."""
    seen: list[int] = []

    def stable() -> bool:
        status = cluster.status("modeldeployment", "iris")
        canary = status.get("canary") or {}
        if canary.get("version") == version and canary.get("weight") is not None and canary["weight"] not in seen[-1:]:
            seen.append(canary["weight"])
            say(f"   canary {version} at {canary['weight']} %, step {canary['stepIndex']}")
        if version in (status.get("failedVersions") or []):
            raise AssertionError(f"{version} was rolled back: {(status.get('degraded') or {}).get('message')}")
        return status.get("stable", {}).get("version") == version and not status.get("canary")

    wait_for(stable, timeout=300, what=f"{version} promoted to 100 %")


def labelled_captures(ns: str) -> int:
    """Labels the servers captured so far."""
    return sum(record.get("kind") == "label" for record in captured_records(f"captures/{ns}/iris"))


def close_the_loop(cluster: Cluster, traffic: Traffic) -> None:
    """Chapter 6: capture on, the world changes, drift creates a TrainingRun on iris + the captured
    labelled rows, and the new version beats the champion and is canaried to 100 %."""
    cluster.apply_example("demo/modeldeployment-loop.yaml")
    wait_for(
        lambda: (
            (s := cluster.status("modeldeployment", "iris")).get("capture", "").startswith("capturing")
            and s["stable"].get("readyReplicas") == s["stable"].get("replicas")
            and s
        ),
        timeout=300,
        what="capture on",
    )
    say("   the servers now capture the rows they predict on; retraining waits for drift (PSI > 0.5 for 1m)")
    # The world changes once the guard of iris-logreg's promotion is over: within it, the wrong answers
    # the change brings would roll iris-logreg back (the guard judges live accuracy) before drift retrains.
    wait_for(lambda: guard_over(cluster), timeout=300, what="the post-promotion guard of iris-logreg to end")
    traffic.changed = True
    say(
        f"   the world changes: the flowers coming in are versicolor {LARGER - 1:.0%} larger than those in iris, "
        "which iris-logreg takes for virginica"
    )
    wait_for(
        lambda: labelled_captures(cluster.namespace) >= 300,
        timeout=300,
        interval=2,
        what="labelled production rows captured",
    )
    cluster.apply_example("demo/dataset-iris-live.yaml")
    live = wait_for(
        lambda: (s := cluster.status("dataset", "iris-live")).get("phase") == "Ready" and s,
        timeout=300,
        what="Dataset iris-live Ready",
    )
    base = cluster.status("dataset", "iris")["rows"]
    say(
        f"   ✓ Dataset iris-live: iris ({base} rows) + {live['rows'] - base} captured labelled rows, "
        f"version {live['version'][:19]}…"
    )
    run = wait_for(
        lambda: cluster.get("trainingrun", RETRAINED, cluster.namespace),
        timeout=300,
        what=f"drift to create {RETRAINED}",
    )
    evidence = json.loads(run["metadata"]["annotations"]["mlops.dev/retraining-trigger"])
    say(
        f"   ✓ {evidence['trigger']} {evidence['value']:.2f} above {evidence['bound']:g} for {evidence['window']}: "
        f"the operator created TrainingRun {RETRAINED}"
    )
    status = wait_for(
        lambda: (
            (s := cluster.status("trainingrun", RETRAINED)).get("phase") in ("Succeeded", "Failed")
            and (s.get("promotion") or {}).get("decision")
            and s
        ),
        timeout=300,
        what=f"{RETRAINED} to finish",
    )
    decision = status["promotion"]
    say(
        f"   {RETRAINED}: trained on {status['dataset']['name']} {status['dataset']['version'][:19]}…, "
        f"accuracy {accuracy(status)}, {decision['decision']}: {decision.get('message', '')}"
    )
    if decision["decision"] != "Promoted":
        raise AssertionError(f"{RETRAINED} was not promoted: {decision}")
    canaried(cluster, RETRAINED)
    say(f"   ✓ {RETRAINED} is stable at 100 %, retrained on what production saw")
    plugin = pathlib.Path(sys.executable).with_name("kubectl-mlops")
    shown = subprocess.run(
        [str(plugin), "status", "iris", "-n", cluster.namespace, f"--kubeconfig={KUBECONFIG}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    say("   $ kubectl mlops status iris")
    print("\n".join(f"     {line}" for line in (shown.stdout or shown.stderr).rstrip().splitlines()), flush=True)


def guard_over(cluster: Cluster) -> bool:
    """Whether the post-promotion guard's window of the stable version has passed."""
    md = cluster.get("modeldeployment", "iris", cluster.namespace)
    promoted, window = md["status"].get("promotedAt"), md["spec"].get("postPromotion", {}).get("window", "10m")
    if not promoted:
        return True
    seconds = int(window[:-1]) * {"s": 1, "m": 60, "h": 3600}[window[-1]]
    started = dt.datetime.fromisoformat(promoted.replace("Z", "+00:00"))
    return dt.datetime.now(dt.UTC) >= started + dt.timedelta(seconds=seconds + 1)


def check_operator(cluster: Cluster, operator_namespace: str) -> None:
    # kubectl rather than Kubectl.get's read in process: a cluster that is not up is told as this too
    out = cluster.run("get", "deployment", "mlops-operator", "-n", operator_namespace, "-o", "json", check=False).stdout
    if not out or not json.loads(out).get("status", {}).get("availableReplicas"):
        raise AssertionError(f"no available operator in {operator_namespace}: run `make deploy` first (make demo does)")


def accuracy(status: dict[str, Any]) -> str:
    value = (status.get("metrics") or {}).get("accuracy")
    return f"{value:.3f}" if isinstance(value, float) else "–"


def tell(ns: str, operator_namespace: str) -> None:
    """The story, in the namespace `ns`, by the operator in `operator_namespace`."""
    cluster = Cluster(ns)
    timings: list[tuple[str, float]] = []

    def phase(name: str, since: float) -> None:
        timings.append((name, time.monotonic() - since))

    check_operator(cluster, operator_namespace)
    fresh_namespace(cluster)

    t = time.monotonic()
    say("1. Dataset iris: validating the bundled iris data against its schema")
    cluster.apply_example("dataset-iris.yaml")
    dataset = wait_for(
        lambda: (s := cluster.status("dataset", "iris")).get("phase") == "Ready" and s,
        timeout=300,
        what="Dataset Ready",
    )
    say(f"   ✓ validated: version {dataset['version'][:19]}…, {dataset['rows']} rows, profile stored for drift")
    phase("dataset validated", t)

    t = time.monotonic()
    say("2. Two TrainingRuns at once: iris-baseline (most frequent class) and iris-stump (a depth-1 tree)")
    cluster.apply_example("demo/trainingruns-first.yaml")
    runs = {}
    for run in ("iris-baseline", "iris-stump"):
        runs[run] = wait_for(
            lambda r=run: (
                (s := cluster.status("trainingrun", r)).get("phase") in ("Succeeded", "Failed")
                and (s.get("promotion") or {}).get("decision")
                and s
            ),
            timeout=300,
            what=f"{run} to finish",
        )
        decision = runs[run]["promotion"]
        say(f"   {run}: accuracy {accuracy(runs[run])}, {decision['decision']}: {decision.get('message', '')}")
    champion = " ".join(wait_for(lambda: champions(cluster, ns), timeout=300, what="a champion"))
    if champion != "iris-stump":
        raise AssertionError(f"expected the better run, iris-stump, to be the champion; the champion is {champion}")
    say(f"   ✓ champion: {champion}, the better of the two")
    phase("two runs trained, better one promoted", t)

    t = time.monotonic()
    say("3. ModelDeployment iris: serving the champion behind one Service")
    cluster.apply_example("demo/modeldeployment.yaml")
    wait_for(
        lambda: cluster.status("modeldeployment", "iris").get("phase") == "Healthy", timeout=300, what="iris Healthy"
    )
    service_ip = cluster.get("service", "iris", ns)["spec"]["clusterIP"]
    traffic = Traffic(service_ip)
    with traffic:
        wait_for(lambda: traffic.answered.get(champion), timeout=60, what="answers through the Service")
        say(f"   ✓ {champion} serves 100 % at http://{service_ip}/v2/models/iris/infer; labelled traffic flows")
        phase("served", t)

        t = time.monotonic()
        say("4. A better version: iris-logreg (logistic regression) is trained and canaried")
        cluster.apply_example("trainingrun-iris-logreg.yaml")
        canaried(cluster, "iris-logreg")
        analysis = cluster.status("modeldeployment", "iris").get("lastAnalysis") or []
        shown = ", ".join(f"{a['metric']}={a['value']:.3g}" for a in analysis if a.get("value") is not None)
        say(f"   ✓ iris-logreg is stable at 100 % (last analysis: {shown or 'no values'})")
        phase("better version canaried to 100 %", t)

        t = time.monotonic()
        say("5. The loop closed: the servers capture production data, and drift retrains the model")
        close_the_loop(cluster, traffic)
        phase("drift → retrained on captured rows → 100 %", t)

        t = time.monotonic()
        say("6. A degraded version: iris-guess, trained without gates, is promoted offline and canaried")
        cluster.apply_example("demo/trainingrun-guess.yaml")
        wait_for(
            lambda: (cluster.status("modeldeployment", "iris").get("canary") or {}).get("version") == "iris-guess",
            timeout=300,
            what="the canary of iris-guess",
        )
        say("   canary iris-guess started; its live accuracy is measured from the labels posted back")
        status = wait_for(
            lambda: (s := cluster.status("modeldeployment", "iris")).get("degraded") and s,
            timeout=300,
            what="the automatic rollback of iris-guess",
        )
        say(f"   ✓ rolled back automatically: {status['degraded']['message']}")
        say(f"   ✓ stable is still {status['stable']['version']} at {status['stable'].get('weight', 100)} %")
        phase("degraded version rolled back", t)

    md = cluster.get("modeldeployment", "iris", ns)["status"]
    print("\nSummary")
    print("  versions (held-out accuracy, promotion decision, fate in ModelDeployment iris):")
    for run in ("iris-baseline", "iris-stump", "iris-logreg", RETRAINED, "iris-guess"):
        status = cluster.status("trainingrun", run)
        decision = (status.get("promotion") or {}).get("decision", "–")
        fate = (
            "serving 100 %"
            if md["stable"]["version"] == run
            else "rolled back"
            if run in (md.get("failedVersions") or [])
            else "served earlier"
            if any(h["version"] == run for h in md.get("history") or []) or run == champion
            else "never served"
        )
        print(f"    {run:14} {accuracy(status):6} {decision:11} {fate}")
    print("  rollout history:")
    for entry in md.get("history") or []:
        print(f"    {entry['at']}  {entry['version']:14} {entry['outcome']:10} {entry.get('reason', '')}")
    print(
        f"  serving: {md['stable']['version']} at 100 %; failed versions: {', '.join(md.get('failedVersions') or [])}"
    )
    counts = {**traffic.answered, **({"failed": traffic.failed} if traffic.failed else {})}
    print("  requests answered by version: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("  timings:")
    for name, seconds in timings:
        print(f"    {name:44} {seconds:6.1f}s")
    prometheus = subprocess.run([*CLUSTER, "prometheus-url"], capture_output=True, text=True).stdout.strip()
    print(f"""
The cluster is still up. Explore it:
  export KUBECONFIG={KUBECONFIG}
  export PATH={REPO / ".venv/bin"}:{pathlib.Path(cluster.binary).parent}:$PATH   # kubectl, helm, kubectl-mlops
  kubectl get dset,tr,md -n {ns}
  kubectl describe md iris -n {ns}
  kubectl mlops status iris -n {ns}
  kubectl mlops history iris -n {ns}
  Prometheus: {prometheus}  (the operator's and the model servers' metrics)
Stop it all with `make cluster-down`.""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", default="mlops-demo")
    parser.add_argument("--operator-namespace", default="mlops-system")
    args = parser.parse_args()
    try:
        tell(args.namespace, args.operator_namespace)
    except AssertionError as failure:  # a wait that timed out, a kubectl that failed, a story that went wrong
        print(failure, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
