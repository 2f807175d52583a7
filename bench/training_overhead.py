#!/usr/bin/env python3
"""Measures the operator's overhead around training on the local cluster (run by hand, not in CI).

    make cluster-up image && .venv/bin/python bench/training_overhead.py [--runs 5]

It installs the operator (`make deploy`), creates a namespace with an artifact store and the iris Dataset, then applies
TrainingRuns of a DummyClassifier (the fit itself takes ~1 ms) one at a time and reports, per run:
apply → Job created, apply → model recorded in status (everything but the fit is overhead), and the
fit time the trainer measured.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import KUBECONFIG, Kubectl, artifact_path, deployed_operator_namespace, wait_for, wait_phase  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    kubectl = Kubectl(KUBECONFIG)
    with deployed_operator_namespace(kubectl, "bench") as ns:
        kubectl.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
        wait_phase(kubectl, "dataset", "iris", ns, ("Ready",), timeout=120)
        rows = []
        for i in range(args.runs):
            name = f"dummy-{i}"
            manifest = {
                "apiVersion": "mlops.dev/v1alpha1",
                "kind": "TrainingRun",
                "metadata": {"name": name},
                "spec": {
                    "datasetRef": {"name": "iris"},
                    "model": {"name": "bench", "estimator": "sklearn.dummy.DummyClassifier"},
                },
            }
            start = time.monotonic()
            kubectl.apply(json.dumps(manifest), ns)
            wait_for(lambda n=name: kubectl.get("job", f"{n}-train", ns), timeout=30, what="the Job", interval=0.05)
            job_created = time.monotonic() - start
            wait_for(
                lambda n=name: ((kubectl.get("trainingrun", n, ns) or {}).get("status") or {}).get("model"),
                timeout=120,
                what="the model in status",
                interval=0.1,
            )
            recorded = time.monotonic() - start
            uri = kubectl.get("trainingrun", name, ns)["status"]["model"]["uri"]
            fit = json.loads((artifact_path(ns, uri) / "metadata.json").read_text())["fitSeconds"]
            rows.append((job_created, recorded, fit))
            print(f"run {i}: apply→Job {job_created:5.2f}s   apply→model recorded {recorded:5.2f}s   fit {fit:.3f}s")
        job, overhead = statistics.median(r[0] for r in rows), statistics.median(r[1] - r[2] for r in rows)
        print(
            f"median: apply→Job {job:.2f}s (budget < 2 s); overhead apart from the fit {overhead:.2f}s (budget < 15 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
