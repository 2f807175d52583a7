"""Feedback needs a receipt the servers issued: a valid one is scored by any pod of the ModelDeployment
under the version that made the prediction; a forged, altered, replayed, expired or foreign one, the old
feedback forms and a server without a key are refused with a 4xx, counted by reason, and score nothing.

Three servers run in-process over real HTTP on loopback, as tests/unit/test_server_fuzz.py runs its own:
two versions of the iris model sharing one key (a stable pod and a canary pod) and one without a key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import requests
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from mlops_operator.server import receipts
from mlops_operator.server.app import LoadedModel, build_app
from mlops_operator.server.receipts import Receipt, Refusal, SeenReceipts, issue_receipt, open_receipt

KEY = os.urandom(32)
MAX_AGE = 3600.0
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]
TRUTH = [0, 1, 2]
QUALITY = (
    "mlops_feedback_labels_total",
    "mlops_feedback_correct_total",
    "mlops_feedback_confusion_total",
    "mlops_accuracy",
)


def _model(c: float) -> LoadedModel:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(C=c, max_iter=500).fit(x, y)
    return LoadedModel(
        name="iris",
        version=f"iris-c{c:g}",
        model=model,
        features=["a", "b", "c", "d"],
        classify=True,
        classes=[0, 1, 2],
    )


@contextlib.contextmanager
def serving(apps: dict[str, web.Application]) -> Iterator[dict[str, str]]:
    """The apps on loopback ports, in an event loop of their own: their /v2/models/iris URLs by name."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners = {name: web.AppRunner(app, access_log=None) for name, app in apps.items()}

    async def start(runner: web.AppRunner) -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner.addresses[0][1]

    ports = {name: asyncio.run_coroutine_threadsafe(start(r), loop).result(timeout=30) for name, r in runners.items()}
    yield {name: f"http://127.0.0.1:{port}/v2/models/iris" for name, port in ports.items()}
    for runner in runners.values():
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """`stable` and `canary` (two versions, one key: two pods of a ModelDeployment) and `keyless` (no key)."""
    with serving(
        {
            "stable": build_app(_model(1.0), profile=None, receipt_key=KEY, feedback_max_age=MAX_AGE),
            "canary": build_app(_model(0.05), profile=None, receipt_key=KEY, feedback_max_age=MAX_AGE),
            "keyless": build_app(_model(1.0), profile=None),
        }
    ) as urls:
        yield urls


def infer(url: str, rows: list[list[float]] = ROWS) -> dict:
    body = {"id": "client-1", "inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    response = requests.post(f"{url}/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def feedback(url: str, body: object) -> requests.Response:
    response = requests.post(f"{url}/feedback", data=json.dumps(body), timeout=10)
    assert response.status_code < 500, response.text
    return response


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the server's /metrics, by name and sorted labels."""
    text = requests.get(url.replace("/v2/models/iris", "/metrics"), timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def quality(url: str) -> dict[tuple[str, tuple], float]:
    return {key: value for key, value in metrics(url).items() if key[0] in QUALITY}


def refused(url: str, reason: str) -> float:
    return sum(
        v
        for (name, labels), v in metrics(url).items()
        if name == "mlops_feedback_refused_total" and ("reason", reason) in labels
    )


def sample(url: str, name: str, version: str) -> float:
    return sum(v for (n, labels), v in metrics(url).items() if n == name and ("version", version) in labels)


def _payload(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _with_payload(token: str, **changes: object) -> str:
    """The token with its payload changed and its signature kept: an altered receipt."""
    body = {**_payload(token), **changes}
    part = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{part}.{token.split('.')[1]}"


def _signed(*, model: str = "iris", version: str = "iris-c1", issued: float | None = None, key: bytes = KEY) -> str:
    receipt = Receipt(
        model=model,
        version=version,
        id=receipts.new_receipt_id(),
        issued=time.time() if issued is None else issued,
        predictions=[0, 1, 2],
    )
    return issue_receipt(key, receipt)


# ------------------------------------------------------------------------------------------ accepted


def test_a_receipt_is_scored_by_another_pod_under_the_version_that_predicted(servers) -> None:
    """The canary's prediction, labelled through a stable pod (the Service's choice): counted for the canary."""
    stable, canary = servers["stable"], servers["canary"]
    answer = infer(canary)
    assert answer["model_name"] == "iris" and answer["model_version"] == "iris-c0.05" and answer["id"] == "client-1"
    token = answer["parameters"]["receipt"]
    predicted = answer["outputs"][0]["data"]
    assert _payload(token)["p"] == predicted and _payload(token)["v"] == "iris-c0.05"
    assert len(base64.urlsafe_b64decode(_payload(token)["id"] + "==")) * 8 >= 96
    own_before = {k: v for k, v in quality(stable).items() if ("version", "iris-c1") in k[1]}

    scored = feedback(stable, {"receipt": token, "labels": TRUTH})
    right = sum(p == t for p, t in zip(predicted, TRUTH, strict=True))
    assert scored.status_code == 200, scored.text
    assert scored.json() == {"model_version": "iris-c0.05", "labelled": 3, "correct": right}
    assert sample(stable, "mlops_feedback_labels_total", "iris-c0.05") == 3
    assert sample(stable, "mlops_feedback_correct_total", "iris-c0.05") == right
    assert sample(stable, "mlops_accuracy", "iris-c0.05") == pytest.approx(right / 3)
    confusion = sample(stable, "mlops_feedback_confusion_total", "iris-c0.05")
    assert confusion == 3, "the confusion count (precision, recall, F1) is the receipt's version's too"
    own_after = {k: v for k, v in quality(stable).items() if ("version", "iris-c1") in k[1]}
    assert own_after == own_before, "the stable version's own series did not move"
    assert ("mlops_feedback_labels_total", (("model", "iris"), ("version", "iris-c1"))) in own_after


def test_a_receipt_is_scored_once_per_pod(servers) -> None:
    stable, canary = servers["stable"], servers["canary"]
    token = infer(stable)["parameters"]["receipt"]
    before = refused(stable, receipts.REPLAYED)
    assert feedback(stable, {"receipt": token, "labels": TRUTH}).status_code == 200
    again = feedback(stable, {"receipt": token, "labels": [2, 2, 2]})
    assert again.status_code == 409 and "already been scored" in again.json()["error"]
    assert refused(stable, receipts.REPLAYED) == before + 1
    # The documented limit: each pod remembers what it scored, so another pod accepts it once too.
    assert feedback(canary, {"receipt": token, "labels": TRUTH}).status_code == 200
    assert feedback(canary, {"receipt": token, "labels": TRUTH}).status_code == 409


def test_a_receipt_refused_for_its_labels_can_be_sent_again_corrected(servers) -> None:
    token = infer(servers["stable"])["parameters"]["receipt"]
    assert feedback(servers["stable"], {"receipt": token, "labels": [0, 1]}).status_code == 400
    assert feedback(servers["stable"], {"receipt": token, "labels": TRUTH}).status_code == 200


# ------------------------------------------------------------------------------------------ refused


def _respelled(token: str) -> str:
    """The token with its signature's last character changed in the bits base64 ignores: the same bytes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    signatures = [base64.urlsafe_b64decode(t.split(".")[1] + "=") for t in (token, respelled)]
    assert signatures[0] == signatures[1]
    return respelled


def _altered_predictions(url: str) -> str:
    token = infer(url)["parameters"]["receipt"]
    return _with_payload(token, p=TRUTH if _payload(token)["p"] != TRUTH else [2, 2, 2])


REFUSALS: list[tuple[str, Callable[[str], object], int, str, str]] = [
    (
        "signed with another key (another ModelDeployment)",
        lambda url: {"receipt": _signed(key=os.urandom(32)), "labels": TRUTH},
        403,
        receipts.FORGED,
        "signature does not match",
    ),
    (
        "made up",
        lambda url: {"receipt": "eyJtIjoiaXJpcyJ9.c2lnbmF0dXJl", "labels": TRUTH},
        403,
        receipts.FORGED,
        "signature",
    ),
    (
        "predictions altered to match the labels",
        lambda url: {"receipt": _altered_predictions(url), "labels": TRUTH},
        403,
        receipts.FORGED,
        "altered",
    ),
    (
        "version altered",
        lambda url: {"receipt": _with_payload(infer(url)["parameters"]["receipt"], v="iris-other"), "labels": TRUTH},
        403,
        receipts.FORGED,
        "altered",
    ),
    (
        "issue time altered",
        lambda url: {
            "receipt": _with_payload(infer(url)["parameters"]["receipt"], t=time.time() + 10),
            "labels": TRUTH,
        },
        403,
        receipts.FORGED,
        "altered",
    ),
    (
        "signature re-spelled (the same bytes)",
        lambda url: {"receipt": _respelled(infer(url)["parameters"]["receipt"]), "labels": TRUTH},
        400,
        receipts.MALFORMED,
        "base64url",
    ),
    (
        "signature lengthened",
        lambda url: {"receipt": infer(url)["parameters"]["receipt"] + "A", "labels": TRUTH},
        403,
        receipts.FORGED,
        "signature does not match",
    ),
    (
        "no receipt at all",
        lambda url: {"receipt": "not a receipt", "labels": TRUTH},
        400,
        receipts.MALFORMED,
        "parameters.receipt",
    ),
    ("a number for a receipt", lambda url: {"receipt": 7, "labels": TRUTH}, 400, receipts.MALFORMED, "receipt"),
    (
        "expired",
        lambda url: {"receipt": _signed(issued=time.time() - MAX_AGE - 5), "labels": TRUTH},
        403,
        receipts.EXPIRED,
        "old",
    ),
    (
        "from the future",
        lambda url: {"receipt": _signed(issued=time.time() + 3600), "labels": TRUTH},
        403,
        receipts.EXPIRED,
        "in the future",
    ),
    (
        "another model's",
        lambda url: {"receipt": _signed(model="wine"), "labels": TRUTH},
        403,
        receipts.OTHER_MODEL,
        "for model 'wine'",
    ),
    (
        "a label too many",
        lambda url: {"receipt": infer(url)["parameters"]["receipt"], "labels": [*TRUTH, 0]},
        400,
        receipts.LABEL_COUNT,
        "3 predicted rows, but 4 labels",
    ),
    (
        "labels that are no values",
        lambda url: {"receipt": infer(url)["parameters"]["receipt"], "labels": [[0], [1], [2]]},
        400,
        receipts.INVALID_LABELS,
        "numbers or strings",
    ),
    (
        "the echoed form",
        lambda url: {"model_version": "iris-c1", "predictions": [0, 0, 0], "labels": TRUTH},
        400,
        receipts.ECHOED_FORM,
        '{"receipt": "<parameters.receipt of the infer response>"',
    ),
    (
        "the echoed form of a real answer",
        lambda url: {"model_version": "iris-c1", "labels": TRUTH, "predictions": infer(url)["outputs"][0]["data"]},
        400,
        receipts.ECHOED_FORM,
        "no longer accepted",
    ),
    ("the id form", lambda url: {"id": "client-1", "labels": TRUTH}, 400, receipts.ID_FORM, 'Send {"receipt"'),
    ("not an object", lambda url: [1, 2], 400, receipts.MALFORMED, "receipt"),
]


@pytest.mark.parametrize(("case", "body", "status", "reason", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_feedback_without_a_valid_receipt_is_refused_counted_and_never_scored(
    servers, case: str, body: Callable[[str], object], status: int, reason: str, words: str
) -> None:
    stable = servers["stable"]
    payload = body(stable)
    before, count = quality(stable), refused(stable, reason)
    response = feedback(stable, payload)
    assert response.status_code == status, (case, response.text)
    assert words in response.json()["error"], response.text
    assert refused(stable, reason) == count + 1
    assert quality(stable) == before, f"{case}: a refused feedback moved the quality metrics"


def test_an_undecodable_body_is_refused_as_malformed(servers) -> None:
    stable = servers["stable"]
    count = refused(stable, receipts.MALFORMED)
    response = requests.post(f"{stable}/feedback", data=b"{not json", timeout=10)
    assert response.status_code == 400 and refused(stable, receipts.MALFORMED) == count + 1


def test_a_server_without_a_key_issues_no_receipt_and_refuses_all_feedback(servers) -> None:
    keyless = servers["keyless"]
    answer = infer(keyless)
    assert "parameters" not in answer and answer["outputs"][0]["data"]
    before = quality(keyless)
    bodies = [
        {"receipt": _signed(version="iris-c1"), "labels": TRUTH},
        {"id": "client-1"},
        {"model_version": "iris-c1", "predictions": [0, 1, 2], "labels": TRUTH},
    ]
    for body in bodies:
        response = feedback(keyless, body)
        assert response.status_code == 403 and "feedback is not enabled: no receipt key" in response.json()["error"]
    assert refused(keyless, receipts.DISABLED) == 3 and quality(keyless) == before


def test_a_forged_flood_leaves_the_accuracy_where_it_was(servers) -> None:
    """The issue's attack: hundreds of posts with predictions != labels, in every form, on a pod with real labels."""
    stable = servers["stable"]
    for _ in range(5):
        token = infer(stable)["parameters"]["receipt"]
        assert feedback(stable, {"receipt": token, "labels": _payload(token)["p"]}).status_code == 200
    before = quality(stable)
    accuracy = sample(stable, "mlops_accuracy", "iris-c1")
    statuses = set()
    for i in range(200):
        wrong = [(p + 1) % 3 for p in TRUTH]
        body = (
            {"model_version": "iris-c1", "predictions": TRUTH, "labels": wrong}
            if i % 4 == 0
            else {"id": f"r{i}", "labels": wrong}
            if i % 4 == 1
            else {"receipt": _with_payload(_signed(), p=wrong), "labels": wrong}
            if i % 4 == 2
            else {"receipt": _signed(key=os.urandom(32)), "labels": wrong}
        )
        statuses.add(feedback(stable, body).status_code)
    assert statuses <= {400, 403} and quality(stable) == before
    assert sample(stable, "mlops_accuracy", "iris-c1") == accuracy > 0


# ------------------------------------------------------------------------------------------ pure parts


def test_a_receipt_opens_only_with_its_key_and_spelling() -> None:
    receipt = Receipt(model="iris", version="v1", id=receipts.new_receipt_id(), issued=1.5, predictions=[0, "a", 2.5])
    token = issue_receipt(KEY, receipt)
    assert open_receipt(KEY, token) == receipt
    for bad, reason in [
        (issue_receipt(os.urandom(32), receipt), receipts.FORGED),
        (token + ".x", receipts.MALFORMED),
        ("", receipts.MALFORMED),
        (None, receipts.MALFORMED),
        ("é" + token, receipts.MALFORMED),
        ("A" + token, receipts.FORGED),
    ]:
        with pytest.raises(Refusal) as refusal:
            open_receipt(KEY, bad)
        assert refusal.value.reason == reason, bad
    # A shortened signature is refused either way: MALFORMED when what is left is not the canonical base64url
    # of any bytes, FORGED when it is (1 time in 16 for one character less), the bytes being no signature.
    for n in range(1, 5):
        with pytest.raises(Refusal) as refusal:
            open_receipt(KEY, token[:-n])
        assert refusal.value.reason in (receipts.MALFORMED, receipts.FORGED), token[:-n]


def _receipt(issued: float, rid: str | None = None) -> Receipt:
    return Receipt(model="m", version="v", id=rid or f"r{issued}", issued=issued, predictions=[0])


def test_seen_receipts_are_bounded_and_never_score_a_replay_twice() -> None:
    seen = SeenReceipts(max_age=100, capacity=3)
    for issued in (10.0, 20.0, 30.0, 40.0, 50.0):
        seen.admit(_receipt(issued), now=60.0)
    assert len(seen) == 3 and seen.watermark == 20.0  # 10 and 20 forgotten, the newest of them the watermark
    for issued, reason in ((10.0, receipts.EXPIRED), (20.0, receipts.EXPIRED), (40.0, receipts.REPLAYED)):
        with pytest.raises(Refusal) as refusal:
            seen.admit(_receipt(issued), now=60.0)
        assert refusal.value.reason == reason
    seen.admit(_receipt(25.0), now=60.0)  # after the watermark and never seen: scored, and the first issued
    assert len(seen) == 3 and seen.watermark == 25.0  # so forgotten at once, and never accepted again
    with pytest.raises(Refusal):
        seen.admit(_receipt(25.0), now=60.0)
    seen.admit(_receipt(160.0), now=145.0)  # 25 and 40 are past the maximum age now: forgotten
    assert len(seen) == 2 and seen.watermark == 40.0
    with pytest.raises(Refusal):
        seen.admit(_receipt(50.0), now=145.0)  # still remembered: a replay
    assert math.isinf(SeenReceipts(max_age=1).watermark)


def test_memory_stays_bounded_under_a_flood_of_valid_receipts() -> None:
    seen = SeenReceipts(max_age=86400, capacity=1000)
    issued = np.linspace(0, 1000, 5000)
    for i, when in enumerate(issued):
        seen.admit(_receipt(float(when), rid=f"r{i}"), now=1000.0)
    assert len(seen) == 1000 and seen.watermark == pytest.approx(issued[3999])
    for i in (0, 3999, 4000, 4999):
        with pytest.raises(Refusal):
            seen.admit(_receipt(float(issued[i]), rid=f"r{i}"), now=1000.0)


def test_capture_keys_rows_by_receipt_and_writes_a_label_only_once_verified(tmp_path) -> None:
    from mlops_operator.data.capture import read_records
    from mlops_operator.server.capture import CaptureWriter
    from mlops_operator.storage import ArtifactStore

    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    capture = CaptureWriter(store, "captures/ml/iris", version="iris-c1", pod="p", features=["a", "b", "c", "d"])
    app = build_app(_model(1.0), profile=None, receipt_key=KEY, feedback_max_age=MAX_AGE, capture=capture)
    with serving({"pod": app}) as urls:
        token = infer(urls["pod"])["parameters"]["receipt"]
        assert feedback(urls["pod"], {"receipt": _with_payload(token, p=[2, 0, 1]), "labels": TRUTH}).status_code == 403
        assert feedback(urls["pod"], {"id": "client-1", "labels": TRUTH}).status_code == 400
        assert feedback(urls["pod"], {"receipt": token, "labels": TRUTH}).status_code == 200
        assert feedback(urls["pod"], {"receipt": token, "labels": [0, 0, 0]}).status_code == 409
    records = read_records(store, "captures/ml/iris")  # written when the server stopped
    receipt_id = _payload(token)["id"]
    assert [(r["kind"], r["receipt"]) for r in records] == [("prediction", receipt_id)] * 3 + [("label", receipt_id)]
    assert "id" not in records[0], "the client's request id is not what rows are keyed by"
    assert records[-1]["labels"] == TRUTH and records[-1]["version"] == "iris-c1"
    assert records[-1]["issued"] == _payload(token)["t"] and records[-1]["max_age"] == MAX_AGE
