"""Property-based tests of the server's client-facing routes (V2 infer, binary tensors, feedback with receipts).

Whatever a client sends, the answer is 200 or a 4xx with a message, never a 5xx; valid rows predict,
rows no model can take are refused alone. The server runs in-process over real HTTP on loopback, with a
decision tree (trees convert rows to float32, where 1e300 overflows) behind a wrapper that also refuses
one value the codec cannot know about (POISON), to exercise the isolation of a failed batch. Bounded:
a fixed number of examples per property, the whole file in well under 30 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra.numpy import arrays

from mlops_operator.server.app import LoadedModel, build_app
from mlops_operator.server.codec import FEATURE_LIMIT

set_hypothesis_home_dir(pathlib.Path(tempfile.gettempdir()) / "mlops-operator-hypothesis")  # not the checkout
POISON = 4242.4242  # the wrapped model raises ValueError on a row holding it
KEY = os.urandom(32)  # the server's receipt key
VERSION = "tree-v1"
FUZZ = settings(
    max_examples=120,
    deadline=None,  # HTTP on a busy machine: time is bounded by the example count, not per example
    database=None,  # no example database: each run draws afresh
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class PickyTree:
    """A fitted decision tree that also refuses rows holding POISON, as some model may refuse some rows."""

    def __init__(self) -> None:
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier

        x, y = load_iris(return_X_y=True)
        self._tree = DecisionTreeClassifier(random_state=0).fit(x, y)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if np.any(rows == POISON):
            raise ValueError(f"the model refuses {POISON}")
        return self._tree.predict(rows)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    loaded = LoadedModel(name="tree", version=VERSION, model=PickyTree(), features=["a", "b", "c", "d"], classify=True)
    app = build_app(loaded, profile=None, max_batch_delay=0.005, receipt_key=KEY)
    runner = web.AppRunner(app, access_log=None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner.addresses[0][1]

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    yield f"http://127.0.0.1:{port}/v2/models/tree"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _post(session: requests.Session, url: str, data: bytes, headers: dict | None = None) -> requests.Response:
    response = session.post(url, data=data, headers=headers, timeout=30)
    assert response.status_code < 500, (response.status_code, response.text[:500], data[:300])
    if response.status_code != 200:
        message = response.json()["error"]
        assert isinstance(message, str) and message, response.text[:500]
    return response


def _json(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN/Infinity too: Python's json accepts them


numbers = st.one_of(
    st.floats(),  # NaN, ±inf, 1e300, subnormals...
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(10**600), max_value=10**600),  # beyond float64 too (under json's 4,300 digits)
    st.integers(min_value=-100, max_value=100),
    st.just(POISON),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)
datatypes = st.sampled_from(["FP64", "FP32", "FP16", "INT64", "INT8", "UINT64", "BOOL", "BYTES", "fp64", ""])
shapes = st.one_of(
    st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=3),
    st.lists(st.sampled_from([-1, 10**400, 2**63, True, 1.5, "4"]) | st.integers(0, 6), min_size=0, max_size=3),
    json_values,
)
tensor_data = st.one_of(
    st.lists(numbers, max_size=24),
    st.lists(st.lists(numbers, min_size=4, max_size=4), max_size=6),
    st.lists(st.lists(numbers, max_size=5), max_size=4),  # ragged
    json_values,
)


@st.composite
def v2_tensors(draw) -> dict:
    tensor = {
        "name": draw(st.text(max_size=6)),
        "shape": draw(shapes),
        "datatype": draw(datatypes),
        "data": draw(tensor_data),
    }
    if draw(st.booleans()):
        tensor["parameters"] = draw(json_values)
    for key in draw(st.lists(st.sampled_from(list(tensor)), max_size=1)):
        del tensor[key]
    return tensor


@st.composite
def almost_valid_requests(draw) -> dict:
    """A request that fits the model (one [n, 4] input, or four [n] inputs), with at most one field junk."""
    n = draw(st.integers(min_value=1, max_value=4))
    if draw(st.booleans()):
        rows = draw(st.lists(st.lists(numbers, min_size=4, max_size=4), min_size=n, max_size=n))
        inputs = [{"name": "x", "shape": [n, 4], "datatype": draw(datatypes), "data": rows}]
    else:
        inputs = [
            {
                "name": f"f{i}",
                "shape": [n],
                "datatype": draw(datatypes),
                "data": draw(st.lists(numbers, min_size=n, max_size=n)),
            }
            for i in range(4)
        ]
    body = {"inputs": inputs}
    if draw(st.booleans()):
        body["id"] = draw(st.text(max_size=130))
    target = draw(st.sampled_from([None, "shape", "datatype", "data", "name"]))
    if target is not None:
        draw(st.sampled_from(inputs))[target] = draw(json_values)
    return body


v2_requests = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(v2_tensors(), min_size=0, max_size=5), json_values)},
    optional={"id": st.one_of(st.text(max_size=200), json_values), "parameters": json_values, "outputs": json_values},
)


@FUZZ
@given(body=st.one_of(v2_requests, almost_valid_requests(), json_values))
def test_infer_answers_any_json_without_5xx(session, url, body) -> None:
    _post(session, f"{url}/infer", _json(body))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_infer_and_feedback_answer_any_bytes_without_5xx(session, url, raw) -> None:
    _post(session, f"{url}/infer", raw)
    _post(session, f"{url}/feedback", raw)


def _valid(value) -> bool:
    try:
        return abs(float(value)) <= FEATURE_LIMIT  # NaN compares False
    except OverflowError:
        return False


@FUZZ
@given(rows=st.lists(st.lists(numbers, min_size=4, max_size=4), min_size=1, max_size=5), nested=st.booleans())
def test_rows_predict_exactly_when_every_value_is_usable(session, url, rows, nested) -> None:
    data = rows if nested else [x for row in rows for x in row]
    body = {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": data}]}
    response = _post(session, f"{url}/infer", _json(body))
    usable = all(_valid(x) for row in rows for x in row)
    if not usable:
        assert response.status_code == 400, response.text
    elif any(float(x) == POISON for row in rows for x in row):
        assert response.status_code == 422 and "refuses" in response.json()["error"], response.text
    else:
        assert response.status_code == 200, response.text
        assert len(response.json()["outputs"][0]["data"]) == len(rows)


binary_dtypes = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "UINT8": "<u1", "FP16": "<f2", "BOOL": "?"}


@st.composite
def binary_requests(draw) -> tuple[str, bytes]:
    """A JSON header and raw tensor bytes as tritonclient sends them, then possibly broken."""
    datatype = draw(st.sampled_from(sorted(binary_dtypes)))
    rows = draw(st.integers(min_value=0, max_value=4))
    payload = draw(st.binary(min_size=0, max_size=64)) if draw(st.booleans()) else None
    if payload is None:
        payload = draw(arrays(binary_dtypes[datatype], rows * 4)).tobytes()
    size = draw(st.one_of(st.just(len(payload)), st.integers(-5, 80), st.sampled_from(["16", None, 1.5, 10**30])))
    tensor = {"name": "x", "shape": [rows, 4], "datatype": datatype, "parameters": {"binary_data_size": size}}
    header = _json({"inputs": [draw(st.one_of(st.just(tensor), json_values))]})
    printable = st.characters(min_codepoint=33, max_codepoint=126)  # what an HTTP header value can carry
    length = draw(st.one_of(st.just(str(len(header))), st.text(printable, max_size=6), st.integers(-3, 400).map(str)))
    return length, header + payload


@FUZZ
@given(request=binary_requests())
def test_binary_tensor_requests_without_5xx(session, url, request) -> None:
    length, data = request
    _post(session, f"{url}/infer", data, {"Inference-Header-Content-Length": length})


labels = st.lists(st.one_of(st.integers(0, 2), st.text(max_size=4), json_values), max_size=6)
tokens = st.one_of(st.text(max_size=200), st.text(alphabet="abcXYZ019-_.", max_size=80), json_values)
feedback_bodies = st.one_of(
    st.fixed_dictionaries(
        {"labels": labels},
        optional={
            "receipt": tokens,
            "id": st.one_of(st.text(max_size=200), json_values),
            "model_version": st.one_of(st.just(VERSION), st.text(max_size=20), json_values),
            "predictions": labels,
        },
    ),
    json_values,
)


@FUZZ
@given(body=feedback_bodies)
def test_feedback_answers_any_json_without_5xx(session, url, body) -> None:
    """Nothing a client makes up is scored: only a receipt the server issued is."""
    response = _post(session, f"{url}/feedback", _json(body))
    assert response.status_code in (400, 403), response.text


def _receipt(session: requests.Session, url: str) -> str:
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]] * 2}]}
    return _post(session, f"{url}/infer", _json(body)).json()["parameters"]["receipt"]


@FUZZ
@given(cut=st.integers(min_value=0, max_value=400), insert=st.text(max_size=3), drop=st.integers(0, 3))
def test_an_altered_receipt_is_never_scored(session, url, cut, insert, drop) -> None:
    """A real receipt with characters replaced, inserted or removed anywhere: refused, never scored, never 5xx."""
    token = _receipt(session, url)
    position = cut % (len(token) + 1)
    altered = token[:position] + insert + token[position + drop :]
    response = _post(session, f"{url}/feedback", _json({"receipt": altered, "labels": [0, 0]}))
    if altered != token:
        assert response.status_code in (400, 403), (altered, response.text)


def test_a_receipt_scores_once(session, url) -> None:
    token = _receipt(session, url)
    assert _post(session, f"{url}/feedback", _json({"receipt": token, "labels": [0, 0]})).json()["correct"] == 2
    assert _post(session, f"{url}/feedback", _json({"receipt": token, "labels": [0, 0]})).status_code == 409


@pytest.mark.parametrize(
    ("route", "data", "words"),
    [
        ("infer", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("infer", b'{"inputs": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001, "nested too deeply"),
        ("feedback", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            "infer",
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, '
            + b"7" * 5000
            + b"]}]}",
            "Exceeds the limit",
        ),
        ("feedback", b'{"receipt": "a", "labels": [' + b"7" * 5000 + b"]}", "Exceeds the limit"),
    ],
)
def test_the_issues_malformed_requests_are_400(session, url, route, data, words) -> None:
    response = _post(session, f"{url}/{route}", data)
    assert response.status_code == 400 and words in response.json()["error"]


@pytest.mark.parametrize("bad_value", [1e300, float("nan"), float("inf"), POISON])
def test_one_clients_bad_rows_fail_alone(url, bad_value) -> None:
    """The issue's case on a tree: concurrent valid requests, batched with one client's bad rows, all succeed."""
    good = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[6.7, 3.0, 5.2, 2.3]]}]}
    bad = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[bad_value, 3.0, 5.2, 2.3]]}]}

    def one(i: int) -> tuple[bool, int]:
        is_bad = i % 5 == 0
        response = requests.post(f"{url}/infer", data=_json(bad if is_bad else good), timeout=30)
        if response.status_code == 200:
            assert response.json()["outputs"][0]["data"] == [2]
        return is_bad, response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(80)))
    assert {code for is_bad, code in results if not is_bad} == {200}
    expected = 422 if bad_value == POISON else 400
    assert {code for is_bad, code in results if is_bad} == {expected}
    metrics = requests.get(url.replace("/v2/models/tree", "/metrics"), timeout=10).text
    server_errors = [line for line in metrics.splitlines() if line.startswith('mlops_requests_total{code="5')]
    assert all(line.endswith(" 0.0") for line in server_errors), server_errors
