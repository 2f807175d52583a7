#!/usr/bin/env python3
"""Measures the operator's overhead around training on the local cluster (run by hand, not in CI).

    make cluster-up image && .venv/bin/python bench/training_overhead.py [--runs 5]

It starts the operator, creates a namespace with an artifact store and the iris Dataset, then applies
TrainingRuns of a DummyClassifier (the fit itself takes ~1 ms) one at a time and reports, per run:
apply → Job created, apply → model recorded in status (everything but the fit is overhead), and the
fit time the trainer measured.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import KUBECONFIG, Kubectl, add_artifact_volume, artifact_path, wait_for, wait_phase  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    kubectl = Kubectl(KUBECONFIG)
    kubectl.run("apply", "--server-side", "-f", str(REPO / "crds"))
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", ns)
    add_artifact_volume(ns)
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "MLOPS_IMAGE_PULL_POLICY": "Never"}
    operator = subprocess.Popen([str(REPO / ".venv/bin/mlops-operator"), "run", "--liveness-port", "0"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        kubectl.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
        wait_phase(kubectl, "dataset", "iris", ns, ("Ready",), timeout=120)
        rows = []
        for i in range(args.runs):
            name = f"dummy-{i}"
            manifest = {
                "apiVersion": "mlops.dev/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name},
                "spec": {"datasetRef": {"name": "iris"},
                         "model": {"name": "bench", "estimator": "sklearn.dummy.DummyClassifier"}},
            }  # fmt: skip
            start = time.monotonic()
            kubectl.apply(json.dumps(manifest), ns)
            wait_for(lambda n=name: kubectl.get("job", f"{n}-train", ns), timeout=30, what="the Job", interval=0.05)
            job_created = time.monotonic() - start
            wait_for(
                lambda n=name: ((kubectl.get("trainingrun", n, ns) or {}).get("status") or {}).get("model"),
                timeout=120, what="the model in status", interval=0.1,
            )  # fmt: skip
            recorded = time.monotonic() - start
            uri = kubectl.get("trainingrun", name, ns)["status"]["model"]["uri"]
            fit = json.loads((artifact_path(ns, uri) / "metadata.json").read_text())["fitSeconds"]
            rows.append((job_created, recorded, fit))
            print(f"run {i}: apply→Job {job_created:5.2f}s   apply→model recorded {recorded:5.2f}s   fit {fit:.3f}s")
        job, overhead = statistics.median(r[0] for r in rows), statistics.median(r[1] - r[2] for r in rows)
        print(
            f"median: apply→Job {job:.2f}s (budget < 2 s); overhead apart from the fit {overhead:.2f}s (budget < 15 s)"
        )
    finally:
        operator.terminate()
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
