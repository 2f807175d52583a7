#!/usr/bin/env python3
"""Serving benchmark: our model server against MLServer 1.7, same models, same load, on loopback.

    sudo apt-get install -y wrk
    python3 -m venv .bench/mlserver
    .bench/mlserver/bin/pip install "mlserver==1.7.*" "mlserver-sklearn==1.7.*" "uvloop<0.22"
    (uvloop 0.22+ no longer creates a loop in get_event_loop(), which MLServer 1.7 relies on)
    .venv/bin/python bench/serving/run.py [--duration 15] [--connections 16]
    .venv/bin/python bench/serving/run.py --capture-cost    # ours without and with capture, no peer

Models: LogisticRegression and RandomForestClassifier(100 trees) trained on iris by our trainer (skops);
MLServer gets the same fitted objects as joblib files. Load: wrk, 1 thread, N connections, one row
per request, V2 JSON. Printed side by side; results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
MLSERVER = REPO / ".bench/mlserver/bin/mlserver"
LUA = pathlib.Path(__file__).with_name("infer.lua")
MODELS = {
    "logreg": ("sklearn.linear_model.LogisticRegression", {"max_iter": 500}),
    "forest": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100}),
}


def train(root: pathlib.Path) -> dict[str, pathlib.Path]:
    sys.path.insert(0, str(REPO / "operator"))
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from mlops_operator.storage import ArtifactStore
    from mlops_operator.trainer.train import run_training

    store = ArtifactStore.from_uri(f"file://{root}")
    ds = run_check(DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}}), namespace="bench",
                   name="iris", store=store, input_dir=root)  # fmt: skip
    dirs = {}
    for name, (estimator, params) in MODELS.items():
        dataset = {"name": "iris", "version": ds["version"], "snapshotUri": ds["snapshotUri"], "target": "target"}
        model = {"name": "iris", "estimator": estimator, "params": params}
        request = {"namespace": "bench", "run": name, "dataset": dataset,
                   "spec": {"datasetRef": {"name": "iris"}, "model": model}}  # fmt: skip
        result = run_training(request, store)
        dirs[name] = store.path(result["modelUri"])
    return dirs


def mlserver_repository(model_dir: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
    import joblib
    import skops.io

    data = (model_dir / "model.skops").read_bytes()
    model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    repo = root / "mlserver" / model_dir.name
    (repo / "iris").mkdir(parents=True)
    joblib.dump(model, repo / "iris" / "model.joblib")
    (repo / "iris" / "model-settings.json").write_text(
        json.dumps(
            {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}
        )
    )
    (repo / "settings.json").write_text(json.dumps({"http_port": 18200, "grpc_port": 18201, "metrics_port": 18202}))
    return repo  # fmt: skip


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} not ready")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(url: str, *, duration: int, connections: int) -> tuple[float, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise SystemExit(f"errors under load at {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return rps, p99_ms


def serve_ours(model_dir: pathlib.Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(REPO / ".venv/bin/mlops-operator"), "serve", "--model-uri", f"file://{model_dir}",
                             "--host", "127.0.0.1", "--port", "18100", *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def measure_ours(model_dir: pathlib.Path, args: argparse.Namespace, *extra: str) -> tuple[float, float]:
    ours = serve_ours(model_dir, *extra)
    try:
        wait_ready("http://127.0.0.1:18100/v2/health/ready", ours)
        load("http://127.0.0.1:18100/v2/models/iris/infer", duration=3, connections=args.connections)  # warm-up
        return load("http://127.0.0.1:18100/v2/models/iris/infer", duration=args.duration, connections=args.connections)
    finally:
        stop(ours)


def capture_cost(args: argparse.Namespace) -> int:
    """Ours without and with capture of every request (to a file:// store, batches every 5 s), same load."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        rows = []
        for name, model_dir in train(root).items():
            plain = measure_ours(model_dir, args)
            captured = measure_ours(model_dir, args, "--capture-uri", f"file://{root}/captures/{name}")
            batches = list((root / "captures" / name).glob("*/records.jsonl"))
            records = sum(len(b.read_text().splitlines()) for b in batches)
            rows.append((name, plain, captured, records))
            print(f"{name}: without capture {plain}, with {captured}; {records} records in {len(batches)} batches")
    print(f"\n{args.connections} connections, 1 row per request, {args.duration}s per run, every request captured\n")
    print(f"{'model':8} {'req/s':>8} {'p99':>8} {'captured req/s':>15} {'p99':>8} {'cost':>7}")
    for name, (rps, p99), (crps, cp99), _ in rows:
        print(f"{name:8} {rps:8.0f} {p99:6.1f}ms {crps:15.0f} {cp99:6.1f}ms {100 * (1 - crps / rps):6.1f}%")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--capture-cost", action="store_true", help="ours without and with capture; no peer")
    args = parser.parse_args()
    if args.capture_cost:
        return capture_cost(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for name, model_dir in train(root).items():
            mine = measure_ours(model_dir, args)
            repository = mlserver_repository(model_dir, root)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
            theirs = subprocess.Popen([str(MLSERVER), "start", str(repository)], cwd=repository, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)  # fmt: skip
            try:
                wait_ready("http://127.0.0.1:18200/v2/models/iris/ready", theirs)
                load("http://127.0.0.1:18200/v2/models/iris/infer", duration=3, connections=args.connections)
                peer = load("http://127.0.0.1:18200/v2/models/iris/infer", duration=args.duration,
                            connections=args.connections)  # fmt: skip
            finally:
                stop(theirs)
            rows.append((name, mine, peer))
            print(f"{name}: ours {mine}, MLServer {peer}", flush=True)
    print(f"\n{args.connections} connections, 1 row per request, {args.duration}s per run\n")
    print(f"{'model':8} {'ours req/s':>11} {'ours p99':>9} {'MLServer req/s':>15} {'MLServer p99':>13} {'speed-up':>9}")
    for name, (rps, p99), (peer_rps, peer_p99) in rows:
        print(f"{name:8} {rps:11.0f} {p99:7.1f}ms {peer_rps:15.0f} {peer_p99:11.1f}ms {rps / peer_rps:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
