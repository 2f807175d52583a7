"""The model server over real HTTP on loopback: V2 codec, errors as 400/404/413, batching, metrics, feedback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from mlops_operator.server.batching import MicroBatcher, RowsRefused
from mlops_operator.server.codec import CodecError, decode_request, split_binary_request
from mlops_operator.server.monitoring import AccuracyWindow, DriftWindow, score
from support import REPO, wait_for

ROW = [5.1, 3.5, 1.4, 0.2]


def _infer_body(rows: list[list[float]], **extra) -> dict:
    return {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP32", "data": rows}], **extra}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "must be a JSON object"),
        ({"inputs": []}, "non-empty 'inputs'"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a"] * 4}]}, "not supported"),
        ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROW}]}, "has 4 values but shape"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", 1, 2, 3]}]}, "only numbers"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "takes 4 features"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, float("nan")]}]}, "NaN"),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 1e300, 3]}]},
            r"beyond float32's ±3.403e\+38\): row 0, feature 2 is 1e\+300",
        ),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [-float("inf"), 2, 1, 3]}]}, "-inf"),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [10**400, 2, 1, 3]}]},
            "too large for a float",
        ),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[1, 2, 3], [4]]}]}, "equal length"),
        ({"inputs": [{"name": "x", "shape": [10**400, 4], "datatype": "FP64", "data": ROW}]}, "non-negative integers"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": ["FP64"], "data": ROW}]}, "not supported"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}], "id": "i" * 129}, "at most 128"),
        ({"inputs": [{"name": "x", "shape": [1, 2, 2], "datatype": "FP64", "data": ROW}]}, "1 or 2 dimensions"),
        ({"inputs": [{"shape": [1, 4], "datatype": "FP64", "data": ROW}]}, "no 'name'"),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                    {"name": "b", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]},
                ]
            },
            "disagree",
        ),
    ],
)
def test_codec_rejects_with_a_message(body, words: str) -> None:
    with pytest.raises(CodecError, match=words):
        decode_request(body, features=4)


def test_codec_accepts_one_column_per_feature_and_nested_data() -> None:
    columns = [{"name": f"f{i}", "shape": [2], "datatype": "INT64", "data": [i, i + 10]} for i in range(4)]
    matrix, request_id = decode_request({"id": "a", "inputs": columns}, features=4)
    assert request_id == "a" and matrix.tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]]
    matrix, _ = decode_request(_infer_body([ROW, ROW]), features=4)
    assert matrix.shape == (2, 4)


def test_binary_tensor_extension() -> None:
    header = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}
    ).encode()
    body = split_binary_request(header + struct.pack("<4f", *ROW), len(header))
    matrix, _ = decode_request(body, features=4)
    assert np.allclose(matrix, [ROW])
    with pytest.raises(CodecError, match="not there"):
        split_binary_request(header + b"\0" * 8, len(header))
    for bad_header, words in [
        (b"[1]", "JSON object"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000, "too deeply"),
        (b'{"inputs": [{"datatype": {}, "parameters": {"binary_data_size": 4}}]}', "binary"),
        (b'{"inputs": [{"parameters": {"binary_data_size": "4"}}]}', "byte count"),
    ]:
        with pytest.raises(CodecError, match=words):
            split_binary_request(bad_header + b"\0" * 16, len(bad_header))


def test_drift_window_needs_enough_rows_and_sees_a_shift() -> None:
    profile = {"features": {"x": {"kind": "numeric", "edges": [1.0, 2.0, 3.0], "shares": [0.25] * 4}}}
    window = DriftWindow(profile, ["x"], size=400, min_rows=50)
    window.add(np.array([[0.5], [1.5]]))
    assert window.psi_by_feature() == {}
    window.add(np.tile(np.array([[0.5], [1.5], [2.5], [3.5]]), (50, 1)))
    assert window.psi_by_feature()["x"] < 0.01
    window.add(np.full((400, 1), 3.5))
    assert window.psi_by_feature()["x"] > 1


def _batcher(predict, **options) -> MicroBatcher:
    return MicroBatcher(predict, max_batch_size=64, max_delay=0.05, **options)


async def _predict_all(batcher: MicroBatcher, requests: list[np.ndarray]) -> list:
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.predict(rows) for rows in requests), return_exceptions=True)
    finally:
        await batcher.stop()


def test_a_failed_batch_answers_everyone_but_the_culprit() -> None:
    calls: list[int] = []

    def predict(rows: np.ndarray) -> np.ndarray:  # a model that refuses the value 42, as trees refuse 1e300
        calls.append(len(rows))
        if np.any(rows == 42):
            raise ValueError("Input X contains a value the model refuses")
        return rows[:, 0].astype(np.int64)

    requests = [np.full((1, 2), i) for i in range(32)]
    requests[7] = np.full((1, 2), 42)
    outcomes = asyncio.run(_predict_all(_batcher(predict), requests))
    assert calls[0] == 32, "the requests were not batched"
    assert isinstance(outcomes[7], RowsRefused) and "refuses" in str(outcomes[7])
    assert [o.tolist() for i, o in enumerate(outcomes) if i != 7] == [[i] for i in range(32) if i != 7]
    assert len(calls) <= 2 + 2 * 5, f"bisecting 32 requests took {len(calls)} calls"


def test_a_lone_request_the_model_refuses_is_the_inputs_fault() -> None:
    def predict(rows: np.ndarray) -> np.ndarray:
        if np.any(rows == 42):
            raise ValueError("no")
        return rows[:, 0]

    outcomes = asyncio.run(_predict_all(_batcher(predict, reference=np.zeros((1, 2))), [np.full((1, 2), 42)]))
    assert isinstance(outcomes[0], RowsRefused)
    outcomes = asyncio.run(_predict_all(_batcher(predict), [np.full((1, 2), 42)]))  # no evidence the model works
    assert isinstance(outcomes[0], ValueError) and not isinstance(outcomes[0], RowsRefused)


def test_a_broken_model_is_a_server_fault_for_everyone_without_bisecting() -> None:
    calls: list[int] = []

    def predict(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        raise ValueError("the model is broken")

    requests = [np.full((1, 2), i) for i in range(16)]
    outcomes = asyncio.run(_predict_all(_batcher(predict, reference=np.zeros((1, 2))), requests))
    assert all(type(o) is ValueError for o in outcomes)
    assert calls == [16, 1]  # the batch, then the reference rows: no bisecting


def test_accuracy_window_keeps_a_bounded_window_per_version() -> None:
    window = AccuracyWindow(size=3, versions=2)
    window.record("a", score([1, 0], [1, 1], classify=True))
    window.record("b", score([1], [1], classify=True))
    assert window.accuracy("a") == 0.5 and window.accuracy("b") == 1.0
    window.record("a", score([2, 2], [2, 2], classify=True))  # the window of a: the last 3 scores
    assert window.accuracy("a") == 2 / 3
    window.record("c", score([0], [1], classify=True))  # a third version: the least recently scored (b) goes
    assert window.versions() == ["a", "c"] and window.accuracy("b") is None


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """`mlops-operator serve` as a process, on a model trained into a file:// store."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from mlops_operator.storage import ArtifactStore
    from support import run_training_of

    root = tmp_path_factory.mktemp("store")
    store = ArtifactStore.from_uri(f"file://{root}")
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    ds = run_check(spec, namespace="ns", name="iris", store=store, input_dir=root)
    result = run_training_of(
        {
            "namespace": "ns",
            "run": "iris-v1",
            "dataset": {"name": "iris", "version": ds["version"], "snapshotUri": ds["snapshotUri"], "target": "target"},
            "spec": {
                "datasetRef": {"name": "iris"},
                "model": {
                    "name": "iris",
                    "estimator": "sklearn.linear_model.LogisticRegression",
                    "params": {"max_iter": 500},
                },
            },
        },
        store,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = root / "receipt-key"
    key.write_bytes(os.urandom(32))
    process = subprocess.Popen(
        [
            str(REPO / ".venv/bin/mlops-operator"),
            "serve",
            "--model-uri",
            result.model_uri,
            "--sha256",
            result.sha256,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-batch-delay-ms",
            "20",
            f"--receipt-key-file={key}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return process.poll() is not None

    wait_for(ready, timeout=30, what="the server to be ready")
    assert process.poll() is None, process.stdout.read()
    yield url, result.model_uri
    process.terminate()
    process.wait(timeout=10)


def test_health_and_metadata(server: str) -> None:
    assert requests.get(f"{server}/v2/health/live").json() == {"live": True}
    meta = requests.get(f"{server}/v2/models/iris").json()
    assert meta["versions"] == ["iris-v1"] and meta["inputs"][0]["shape"] == [-1, 4]
    assert requests.get(f"{server}/v2/models/iris/ready").status_code == 200
    missing = requests.get(f"{server}/v2/models/other")
    assert missing.status_code == 404 and "serves 'iris'" in missing.json()["error"]


def test_infer_returns_classes(server: str) -> None:
    response = requests.post(f"{server}/v2/models/iris/infer", json=_infer_body([ROW, [6.7, 3.0, 5.2, 2.3]], id="q1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "q1" and body["model_version"] == "iris-v1"
    assert body["parameters"]["receipt"].count(".") == 1, "the receipt feedback presents"
    assert body["outputs"][0]["data"] == [0, 2] and body["outputs"][0]["datatype"] == "INT64"


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (json.dumps(_infer_body([[1, 2, 3]])).encode(), 400, "has 3 values but shape [1, 4]"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": ['
            + b"9" * 400
            + b", 1, 2, 3]}]}",
            400,
            "too large for a float",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": ['
            + b"9" * 5000
            + b", 1, 2, 3]}]}",
            400,
            "not valid JSON: Exceeds the limit",
        ),
        (json.dumps(_infer_body([[1e300, 1, 2, 3]])).encode(), 400, "beyond float32"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [' + b"1," * 5_000_000 + b"1]}]}",
            413,
            "larger than",
        ),
    ],
)
def test_client_mistakes_are_4xx_with_a_message(server: str, data: bytes, status: int, words: str) -> None:
    response = requests.post(f"{server}/v2/models/iris/infer", data=data)
    assert response.status_code == status
    assert words in response.json()["error"]


@pytest.mark.parametrize(
    ("header", "data", "words"),
    [
        ("abc", b"{}", "must be a number of bytes"),
        ("-1", b"{}", "must be a number of bytes"),
        ("9" * 400, b"{}", "must be a number of bytes"),
        ("99", b"{}", "does not fit a 2-byte body"),
        ("3", b"[[[", "not valid JSON"),
        ("3", b"[1]", "must be a JSON object"),
        ("100000", b"[" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_binary_requests_are_400(server: str, header: str, data: bytes, words: str) -> None:
    response = requests.post(
        f"{server}/v2/models/iris/infer", data=data, headers={"Inference-Header-Content-Length": header}
    )
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def test_one_clients_bad_rows_do_not_fail_the_others(server: str) -> None:
    """The issue's case: 1e300 and NaN from one client while others send valid rows, all batched together."""

    def one(i: int) -> tuple[int, int]:
        bad = i % 4 == 0
        body = _infer_body([[1e300 if i % 8 == 0 else float("nan"), 3.5, 1.4, 0.2]] if bad else [ROW])
        response = requests.post(f"{server}/v2/models/iris/infer", data=json.dumps(body), timeout=10)
        return bad, response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(96)))
    assert {code for bad, code in results if not bad} == {200}
    assert {code for bad, code in results if bad} == {400}


def test_concurrent_requests_share_predict_calls(server: str) -> None:
    def one(i: int) -> list:
        body = _infer_body([ROW], id=f"c{i}")
        return requests.post(f"{server}/v2/models/iris/infer", json=body, timeout=10).json()["outputs"][0]["data"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(one, range(64))) == [[0]] * 64
    metrics = requests.get(f"{server}/metrics").text
    count = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("mlops_batch_rows_count")))
    total = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("mlops_batch_rows_sum")))
    assert total / count > 1.5, f"{total} rows in {count} predict calls: requests were not batched"


def test_feedback_gives_accuracy_by_version(server: str) -> None:
    answer = requests.post(f"{server}/v2/models/iris/infer", json=_infer_body([ROW, ROW], id="fb1")).json()
    receipt = answer["parameters"]["receipt"]
    scored = requests.post(f"{server}/v2/models/iris/feedback", json={"receipt": receipt, "labels": [0, 1]})
    assert scored.json() == {"model_version": "iris-v1", "labelled": 2, "correct": 1}
    again = requests.post(f"{server}/v2/models/iris/feedback", json={"receipt": receipt, "labels": [0, 1]})
    assert again.status_code == 409
    bad = requests.post(f"{server}/v2/models/iris/feedback", json={"labels": [0]})
    assert bad.status_code == 400
    metrics = requests.get(f"{server}/metrics").text
    assert 'mlops_feedback_correct_total{model="iris",version="iris-v1"} 1.0' in metrics
    assert 'mlops_feedback_refused_total{model="iris",reason="replayed",version="iris-v1"} 1.0' in metrics
    assert 'mlops_requests_total{code="400",model="iris",version="iris-v1"}' in metrics
    assert 'mlops_request_duration_seconds_bucket{le="0.005",model="iris",version="iris-v1"}' in metrics
    assert 'mlops_model_environment_differs{model="iris",version="iris-v1"} 0.0' in metrics


@pytest.fixture(scope="module")
def server(served: tuple[str, str]) -> str:
    return served[0]


def test_live_quality_drift_and_the_estimate_are_scraped(server: str) -> None:
    """The confusion count, the predictions' drift and the label-free estimate, as Prometheus scrapes them."""
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] * 30  # setosa and virginica: no versicolor at all
    answer = requests.post(f"{server}/v2/models/iris/infer", json=_infer_body(rows, id="q1")).json()
    predicted = answer["outputs"][0]["data"]
    feedback = {"receipt": answer["parameters"]["receipt"], "labels": [0, 2] * 30}
    scored = requests.post(f"{server}/v2/models/iris/feedback", json=feedback).json()
    assert scored == {
        "model_version": "iris-v1",
        "labelled": 60,
        "correct": sum(p == t for p, t in zip(predicted, [0, 2] * 30, strict=True)),
    }
    metrics = requests.get(f"{server}/metrics").text
    assert (
        'mlops_feedback_confusion_total{correct="true",label="2",model="iris",prediction="2",version="iris-v1"}'
        in metrics
    )
    psi = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("mlops_prediction_psi")))
    assert psi > 0.5, "a third of the classes never predicted is a real shift of the predictions"
    estimated = {
        line.split("{")[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("mlops_estimated_")
    }
    assert estimated["mlops_estimated_rows_total"] >= 60
    assert 0.8 <= estimated["mlops_estimated_correct_total"] / estimated["mlops_estimated_rows_total"] <= 1.0


def test_server_refuses_a_model_with_the_wrong_sha256(served: tuple[str, str]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_operator.cli",
            "serve",
            "--model-uri",
            served[1],
            "--sha256",
            "0" * 64,
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "refusing to serve" in result.stderr and "sha256" in result.stderr


@pytest.mark.parametrize(("key", "words"), [(None, "cannot read the receipt key"), (b"short", "at least 16")])
def test_server_refuses_to_start_with_a_receipt_key_it_cannot_use(served, tmp_path, key, words) -> None:
    """Serving without receipts when a key was asked for would refuse every label: the pod stays unready."""
    path = tmp_path / "key"
    if key is not None:
        path.write_bytes(key)
    result = subprocess.run(
        [sys.executable, "-m", "mlops_operator.cli", "serve", "--model-uri", served[1], "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MLOPS_RECEIPT_KEY_FILE": str(path)},
    )
    assert result.returncode == 1
    assert "refusing to serve" in result.stderr and words in result.stderr


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json"])
def test_a_standard_v2_client_works_unchanged(server: str, binary: bool) -> None:
    """tritonclient's HTTP client, as users of Triton or KServe already have it."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("iris")
    rows = np.array([ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    result = client.infer("iris", [tensor], request_id="triton-1")
    assert result.as_numpy("predict").tolist() == [0, 2]
    assert result.get_response()["model_version"] == "iris-v1"


def test_feedback_in_the_old_forms_is_refused_and_bounded(server: str) -> None:
    """The echoed and id forms are refused, saying what to send instead; no new metric series, whatever version
    a client names; long or deep bodies answered 400."""
    url = f"{server}/v2/models/iris/feedback"
    for version in ("iris-v1", "iris-v2", "made-up-1", "x" * 10_000):
        refused = requests.post(url, json={"model_version": version, "predictions": [0], "labels": [0]})
        assert refused.status_code == 400, refused.text
        assert '{"receipt": "<parameters.receipt of the infer response>"' in refused.json()["error"]
        assert len(refused.text) < 600
    by_id = requests.post(url, json={"id": "fb1", "labels": [0]})
    assert by_id.status_code == 400 and "by request id is no longer accepted" in by_id.json()["error"]
    metrics = requests.get(f"{server}/metrics").text
    assert not [
        line
        for line in metrics.splitlines()
        if line.startswith("mlops_feedback") and "iris-v1" not in line and not line.startswith("#")
    ]
    assert 'mlops_feedback_refused_total{model="iris",reason="echoed_form",version="iris-v1"} 4.0' in metrics
    long_id = "i" * 129
    infer = requests.post(f"{server}/v2/models/iris/infer", json=_infer_body([ROW], id=long_id))
    assert infer.status_code == 400 and "at most 128" in infer.json()["error"]
    receipt = requests.post(f"{server}/v2/models/iris/infer", json=_infer_body([ROW])).json()["parameters"]["receipt"]
    malformed = [
        ({"receipt": receipt, "labels": [[[0]]]}, "numbers or strings"),
        ({"receipt": receipt, "labels": []}, "labels"),
        ({"receipt": "x" * 10_000, "labels": [0]}, "receipt"),
    ]
    for body, words in malformed:
        response = requests.post(url, json=body)
        assert response.status_code == 400 and words in response.json()["error"], response.text
        assert len(response.text) < 600
    deep = requests.post(url, data=b'{"labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]
