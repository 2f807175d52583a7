#!/usr/bin/env python3
"""Serving benchmark: our model server (capture on) against MLServer 1.7 and KServe 0.21, same models and load.

    sudo apt-get install -y wrk
    python3 -m venv .bench/mlserver
    .bench/mlserver/bin/pip install "mlserver==1.7.*" "mlserver-sklearn==1.7.*" "uvloop<0.22"
    (uvloop 0.22+ no longer creates a loop in get_event_loop(), which MLServer 1.7 relies on)
    python3 -m venv .bench/kserve
    .bench/kserve/bin/pip install "kserve==0.21.*" scikit-learn joblib
    (KServe has no scikit-learn runtime on PyPI: the peer is kserve_model.py beside this file, which also silences
    the warning FastAPI 0.131+ logs for every ORJSONResponse; kserve 0.21 needs starlette 1.x, so no older FastAPI)
    .venv/bin/python bench/serving/run.py [--duration 15] [--connections 16] [--peers mlserver,kserve]
    .venv/bin/python bench/serving/run.py --capture-cost    # ours without and with capture, no peer

Models: LogisticRegression and RandomForestClassifier(100 trees) trained on iris by our trainer (skops);
the peers get the same fitted objects as joblib files. Load: wrk, 1 thread, N connections, one row
per request, V2 JSON, on loopback. Printed side by side; results go in docs/benchmarks.md.
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
KSERVE = REPO / ".bench/kserve/bin/python"
KSERVE_MODEL = pathlib.Path(__file__).with_name("kserve_model.py")
PEERS = {"mlserver": "MLServer", "kserve": "KServe"}
SETUP = {
    "mlserver": 'python3 -m venv .bench/mlserver && .bench/mlserver/bin/pip install "mlserver==1.7.*" '
    '"mlserver-sklearn==1.7.*" "uvloop<0.22"',
    "kserve": 'python3 -m venv .bench/kserve && .bench/kserve/bin/pip install "kserve==0.21.*" scikit-learn joblib',
}
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
    ds = run_check(
        DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}}),
        namespace="bench",
        name="iris",
        store=store,
        input_dir=root,
    )
    dirs = {}
    for name, (estimator, params) in MODELS.items():
        dataset = {"name": "iris", "version": ds["version"], "snapshotUri": ds["snapshotUri"], "target": "target"}
        model = {"name": "iris", "estimator": estimator, "params": params}
        request = {
            "namespace": "bench",
            "run": name,
            "dataset": dataset,
            "spec": {"datasetRef": {"name": "iris"}, "model": model},
        }
        result = run_training(request, store)
        dirs[name] = store.path(result["modelUri"])
    return dirs


def joblib_model(model_dir: pathlib.Path, directory: pathlib.Path) -> pathlib.Path:
    import joblib
    import skops.io

    data = (model_dir / "model.skops").read_bytes()
    model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    directory.mkdir(parents=True)
    joblib.dump(model, directory / "model.joblib")
    return directory / "model.joblib"


def mlserver_repository(model_dir: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
    repo = root / "mlserver" / model_dir.name
    joblib_model(model_dir, repo / "iris")
    (repo / "iris" / "model-settings.json").write_text(
        json.dumps(
            {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}
        )
    )
    (repo / "settings.json").write_text(
        json.dumps({"http_port": 18200, "grpc_port": 18201, "metrics_port": 18202, "debug": False})
    )  # no access log line per request
    return repo


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
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"errors under load at {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return rps, p99_ms


def serve_ours(model_dir: pathlib.Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(REPO / ".venv/bin/mlops-operator"),
            "serve",
            "--model-uri",
            f"file://{model_dir}",
            "--host",
            "127.0.0.1",
            "--port",
            "18100",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(process: subprocess.Popen, ready_url: str, infer_url: str, args: argparse.Namespace) -> tuple[float, float]:
    try:
        wait_ready(ready_url, process)
        load(infer_url, duration=3, connections=args.connections)  # warm-up
        return load(infer_url, duration=args.duration, connections=args.connections)
    finally:
        stop(process)


def measure_ours(model_dir: pathlib.Path, args: argparse.Namespace, *extra: str) -> tuple[float, float]:
    return measure(
        serve_ours(model_dir, *extra),
        "http://127.0.0.1:18100/v2/health/ready",
        "http://127.0.0.1:18100/v2/models/iris/infer",
        args,
    )


def measure_peer(
    peer: str, model_dir: pathlib.Path, root: pathlib.Path, args: argparse.Namespace
) -> tuple[float, float]:
    env, port = None, {"mlserver": 18200, "kserve": 18300}[peer]
    if peer == "mlserver":
        cwd = mlserver_repository(model_dir, root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
        command = [str(MLSERVER), "start", str(cwd)]
    else:  # no latency log line per request (KServe's default is one); kserve_model.py turns off the others
        cwd = root / "kserve" / model_dir.name
        model = joblib_model(model_dir, cwd)
        command = [
            str(KSERVE),
            str(KSERVE_MODEL),
            "--model_path",
            str(model),
            "--model_name",
            "iris",
            "--http_port",
            "18300",
            "--enable_grpc",
            "false",
            "--enable_latency_logging",
            "false",
        ]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}/v2/models/iris"
    return measure(process, f"{base}/ready", f"{base}/infer", args)


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
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    args = parser.parse_args()
    if args.capture_cost:
        return capture_cost(args)
    peers = args.peers.split(",")
    if not set(peers) <= set(PEERS):
        raise SystemExit(f"--peers: a comma-separated list of {', '.join(PEERS)}, not {args.peers!r}")
    for peer in peers:
        if not (REPO / ".bench" / peer / "bin/python").exists():
            raise SystemExit(f"no {PEERS[peer]} venv: in {REPO}, run\n  {SETUP[peer]}\nor leave it out of --peers")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for name, model_dir in train(root).items():
            mine = measure_ours(model_dir, args, "--capture-uri", f"file://{root}/captures/{name}")
            theirs = {peer: measure_peer(peer, model_dir, root, args) for peer in peers}
            rows.append((name, mine, theirs))
            print(f"{name}: ours {mine}, " + ", ".join(f"{PEERS[p]} {t}" for p, t in theirs.items()), flush=True)
    print(
        f"\n{args.connections} connections, 1 row per request, {args.duration}s per run, ours capturing every request\n"
    )
    head = "".join(f" {PEERS[p] + ' req/s':>15} {PEERS[p] + ' p99':>13}" for p in peers)
    print(f"{'model':8} {'ours req/s':>11} {'ours p99':>9}{head}  speed-up over the faster peer")
    for name, (rps, p99), theirs in rows:
        cells = "".join(f" {peer_rps:15.0f} {peer_p99:11.1f}ms" for peer_rps, peer_p99 in theirs.values())
        fastest = max(theirs, key=lambda p: theirs[p][0])
        print(f"{name:8} {rps:11.0f} {p99:7.1f}ms{cells}  {rps / theirs[fastest][0]:.1f}x ({PEERS[fastest]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
