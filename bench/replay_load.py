"""What the golden replay adds to loading a model version (modelformat/replay.py), run by hand:

    .venv/bin/python bench/replay_load.py [--runs 7]

Each model is trained by the trainer into a file:// store, as a training Job stores it (golden set of up
to 200 held-out rows included), then loaded as a server loads it (`server.runtime.load`: checksums, skops,
replay) `--runs` times with the replay and without (`reproducibility: off`); the median and the difference
are printed, beside the goals (< 100 ms for the demo's models, < 1 s for a 100-tree forest).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from mlops_operator.api.dataset import DatasetSpec  # noqa: E402
from mlops_operator.data.check import run_check  # noqa: E402
from mlops_operator.server.runtime import load  # noqa: E402
from mlops_operator.storage import ArtifactStore  # noqa: E402
from support import run_training_of  # noqa: E402

MODELS = [  # (what, dataset, estimator, params, goal in seconds)
    ("demo: iris LogisticRegression", "iris", "sklearn.linear_model.LogisticRegression", {"max_iter": 300}, 0.1),
    ("demo: iris DecisionTree", "iris", "sklearn.tree.DecisionTreeClassifier", {}, 0.1),
    ("wine RandomForest, 100 trees", "wine", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100}, 1.0),
    ("digits RandomForest, 100 trees", "digits", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100}, 1.0),
]


def stored(store: ArtifactStore, dataset: str, estimator: str, params: dict) -> tuple[str, str]:
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": dataset}}})
    check = run_check(spec, namespace="bench", name=dataset, store=store, input_dir=pathlib.Path("/nonexistent"))
    pin = {"name": dataset, "version": check["version"], "snapshotUri": check["snapshotUri"], "target": "target"}
    model = {"name": dataset, "estimator": estimator, "params": params}
    request = {
        "namespace": "bench",
        "run": f"{dataset}-{estimator.rsplit('.', 1)[1].lower()}",
        "dataset": pin,
        "spec": {"datasetRef": {"name": dataset}, "model": model},
    }
    result = run_training_of(request, store)
    return result.model_uri, result.sha256


def median_load(uri: str, sha256: str, *, policy: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        load(uri, expected_sha256=sha256, reproducibility=policy)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{'model':34} {'load, no replay':>16} {'load, replay':>13} {'replay adds':>12} {'goal':>8}")
    with tempfile.TemporaryDirectory() as root:
        store = ArtifactStore.from_uri(f"file://{root}")
        for what, dataset, estimator, params, goal in MODELS:
            uri, sha256 = stored(store, dataset, estimator, params)
            load(uri, expected_sha256=sha256)  # warm: imports, page cache
            off = median_load(uri, sha256, policy="off", runs=args.runs)
            on = median_load(uri, sha256, policy="replay", runs=args.runs)
            met = "met" if on - off < goal else "NOT met"
            figures = f"{off * 1000:13.1f} ms {on * 1000:10.1f} ms {(on - off) * 1000:9.1f} ms"
            print(f"{what:34} {figures}  < {goal * 1000:.0f} ms {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
