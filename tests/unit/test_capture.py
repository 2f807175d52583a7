"""Production data capture: batches written off the request path, never clashing between replicas, bounded
in memory and by the retention, against a file:// store and the real S3 server (VersityGW on loopback)."""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest

from mlops_operator.data.capture import RECORDS_FILE, batch_time, read_records
from mlops_operator.server.capture import CaptureWriter
from mlops_operator.storage import ArtifactStore, StoreError
from support import wait_for
from support.s3server import S3Server

FEATURES = ["a", "b"]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def writer(store: ArtifactStore, pod: str = "pod-a", **options) -> CaptureWriter:
    return CaptureWriter(
        store, "captures/ml/iris", version="v1", pod=pod, features=FEATURES, rng=random.Random(1), **options
    )


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore.from_uri(f"file://{tmp_path}")


@pytest.fixture
def s3_store(s3: S3Server, monkeypatch) -> ArtifactStore:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return ArtifactStore.from_uri(f"s3://{s3.bucket('captures')}/team-a")


def test_rows_and_labels_are_written_as_one_batch_and_read_back(store: ArtifactStore) -> None:
    clock = Clock()
    capture = writer(store, clock=clock)
    capture.predicted("r1", np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 1]))
    capture.predicted(None, np.array([[5.0, 6.0]]), np.array([1]))  # no receipt: captured, never labelled
    capture.labelled("r1", [0, 0], version="v0", issued=clock.now - 5, max_age=3600)
    assert store.versions_under("captures/ml/iris") == [], "nothing is written on the request path"
    assert capture.flush() == 4
    [(path, size)] = store.versions_under("captures/ml/iris")
    assert path.startswith("captures/ml/iris/") and path.endswith("-pod-a-000000") and size > 0
    assert batch_time(path) == pytest.approx(clock.now, abs=0.001)
    records = read_records(store, "captures/ml/iris")
    assert [r["kind"] for r in records] == ["prediction", "prediction", "prediction", "label"]
    assert records[1] == {
        "kind": "prediction",
        "receipt": "r1",
        "row": 1,
        "version": "v1",
        "time": clock.now,
        "features": {"a": 3.0, "b": 4.0},
        "prediction": 1,
    }
    assert records[3] == {
        "kind": "label",
        "receipt": "r1",
        "labels": [0, 0],
        "version": "v0",  # the receipt's
        "issued": clock.now - 5,
        "time": clock.now,
        "max_age": 3600,
    }
    assert capture.flush() == 0  # nothing pending: no empty batch


def test_two_replicas_never_clash(store: ArtifactStore) -> None:
    clock = Clock()
    replicas = [writer(store, pod=f"pod-{i}", clock=clock) for i in range(2)]
    for round_ in range(3):
        for capture in replicas:
            capture.predicted(f"{capture.pod}-{round_}", np.array([[1.0, 2.0]]), np.array([0]))
            capture.flush()  # the same millisecond for both: the pod in the name keeps them apart
    paths = [path for path, _ in store.versions_under("captures/ml/iris")]
    assert len(paths) == 6 and len(set(paths)) == 6
    assert sorted(r["receipt"] for r in read_records(store, "captures/ml/iris")) == sorted(
        f"pod-{i}-{r}" for i in range(2) for r in range(3)
    )


def test_sampling_keeps_requests_whole(store: ArtifactStore) -> None:
    capture = writer(store, sample_rate=0.25)
    for i in range(400):
        capture.predicted(f"r{i}", np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 1]))
    capture.flush()
    records = read_records(store, "captures/ml/iris")
    ids = {r["receipt"] for r in records}
    assert 60 < len(ids) < 140 and len(records) == 2 * len(ids)  # a quarter of the requests, both rows each


def test_memory_is_bounded_and_a_failed_write_is_retried(store: ArtifactStore) -> None:
    capture = writer(store, max_pending=5)
    capture.predicted("r1", np.zeros((4, 2)), np.zeros(4))
    capture.predicted("r2", np.zeros((4, 2)), np.zeros(4))
    assert capture.dropped == 3  # 5 kept of 8

    class Down:  # the store unreachable for a while: the one edge case stood in for
        root_uri = store.root_uri

        def write_version(self, *_: object) -> str:
            raise StoreError("the object store at http://s3 is unreachable", reason="Unreachable")

    capture.store = Down()  # type: ignore[assignment]
    assert capture.flush() == 0  # the batch waits, still bounded
    capture.store = store
    assert capture.flush() == 5 and capture.written == 5
    assert len(read_records(store, "captures/ml/iris")) == 5


def test_the_retention_removes_old_batches_then_the_oldest_beyond_the_size(store: ArtifactStore) -> None:
    clock = Clock()
    capture = writer(store, clock=clock, max_age_seconds=3600, max_bytes=10_000, prune_seconds=0)
    for hour in range(4):
        clock.now += 1800  # a batch every half hour
        capture.predicted(f"h{hour}", np.zeros((10, 2)), np.zeros(10))
        capture.flush()
    times = [batch_time(path) for path, _ in store.versions_under("captures/ml/iris")]
    assert all(clock.now - t <= 3600 for t in times) and len(times) == 3  # the oldest is over an hour old
    one = store.versions_under("captures/ml/iris")[0][1]
    capture.max_bytes = 2 * one  # only the newest two fit
    capture.prune(now=clock.now)
    assert [batch_time(p) for p, _ in store.versions_under("captures/ml/iris")] == sorted(times)[-2:]


def test_the_server_writes_what_is_pending_when_it_stops(store: ArtifactStore) -> None:
    capture = writer(store, flush_seconds=3600)

    async def serve_and_stop() -> None:
        capture.start()
        capture.predicted("r1", np.zeros((1, 2)), np.zeros(1))
        await capture.stop()

    asyncio.run(serve_and_stop())
    assert [r["receipt"] for r in read_records(store, "captures/ml/iris")] == ["r1"]


def test_capture_against_the_real_s3_server(s3_store: ArtifactStore) -> None:
    clock = Clock()
    capture = CaptureWriter(
        s3_store,
        "captures/ml/iris",
        version="v1",
        pod="pod-a",
        features=FEATURES,
        clock=clock,
        max_age_seconds=60,
        prune_seconds=60,
    )
    capture.predicted("r1", np.array([[1.0, 2.0]]), np.array([1]))
    capture.labelled("r1", [1], version="v1", issued=clock.now, max_age=60)
    assert capture.flush() == 2
    [(path, _)] = s3_store.versions_under("captures/ml/iris")
    assert json.loads(s3_store.read(s3_store.uri(f"{path}/{RECORDS_FILE}")).decode().splitlines()[1])["labels"] == [1]
    clock.now += 120
    capture.predicted("r2", np.array([[1.0, 2.0]]), np.array([1]))
    capture.flush()  # the first batch is now past its age: removed by the retention
    assert [r["receipt"] for r in read_records(s3_store, "captures/ml/iris")] == ["r2"]
    s3_store.delete_version(s3_store.versions_under("captures/ml/iris")[0][0])
    s3_store.delete_version("captures/ml/iris/gone")  # one already gone is success
    assert s3_store.versions_under("captures/ml/iris") == []


# ------------------------------------------------------------------------- the Dataset source `capture`


def test_a_capture_source_adds_the_labelled_rows_to_the_base_and_is_checked_like_any_source(store) -> None:
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check

    base_spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    base = run_check(base_spec, namespace="ml", name="iris", store=store, input_dir=store.root)
    features = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    capture = CaptureWriter(store, "captures/ml/iris", version="v1", pod="p", features=features, clock=Clock())
    capture.predicted("r1", np.array([[5.0, 3.0, 1.5, 0.2], [6.5, 3.0, 5.5, 2.0]]), np.array([0.0, 2.0]))
    capture.predicted("r2", np.array([[6.0, 2.9, 4.5, 1.5]]), np.array([1.0]))  # never labelled: left out
    capture.predicted(None, np.array([[6.0, 2.9, 4.5, 1.5]]), np.array([1.0]))  # no receipt: left out
    capture.labelled("r1", [0, 1], version="v1", issued=capture._clock(), max_age=3600)  # row 2 was really 1
    capture.flush()
    spec = DatasetSpec.model_validate(
        {"source": {"capture": {"base": "iris", "modelDeployment": "iris"}}, "schema": {"minRows": 100}}
    )
    inputs = {"baseSnapshotUri": base["snapshotUri"], "capturePrefix": "captures/ml/iris"}
    result = run_check(spec, namespace="ml", name="iris-live", store=store, input_dir=store.root, capture=inputs)
    assert result["ok"] and result["rows"] == base["rows"] + 2 and result["version"] != base["version"]
    snapshot = store.read(result["snapshotUri"]).decode().splitlines()
    assert snapshot[-2:] == ["5.0,3.0,1.5,0.2,0", "6.5,3.0,5.5,2.0,1"]  # the labels, not the predictions
    again = run_check(spec, namespace="ml", name="iris-live", store=store, input_dir=store.root, capture=inputs)
    assert again["version"] == result["version"], "the same captures make the same version"
    strict = DatasetSpec.model_validate(
        {
            "source": {"capture": {"base": "iris", "modelDeployment": "iris"}},
            "schema": {"columns": [{"name": "target", "type": "integer", "min": 0, "max": 0}]},
        }
    )
    refused = run_check(strict, namespace="ml", name="iris-live", store=store, input_dir=store.root, capture=inputs)
    assert not refused["ok"] and refused["reason"] == "SchemaViolation", refused


def test_a_full_batch_is_written_without_waiting_for_the_timer(store: ArtifactStore) -> None:
    capture = writer(store, flush_seconds=3600, batch_rows=5)

    async def fill_and_wait() -> int:
        capture.start()
        try:
            capture.predicted("r1", np.zeros((6, 2)), np.zeros(6))
            # polled beside the event loop, which keeps running the writer's timer
            await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: wait_for(lambda: capture.written, timeout=10, what="6 pending records of a batch of 5 written"),
            )
            return capture.written
        finally:
            await capture.stop()

    assert asyncio.run(fill_and_wait()) == 6


def test_a_label_joins_only_its_receipts_rows_within_the_age_and_the_first_wins() -> None:
    """The capture join: labels name rows by receipt id (server-issued), never by a client's request id; a
    label posted past the receipt's maximum age, for another version, or after another label for the same
    receipt (a replay to another pod) is left out."""
    from mlops_operator.data.sources import capture_table
    from mlops_operator.data.table import parse_csv

    base = parse_csv(b"a,b,target\n0.0,0.0,0\n")
    t = 1_800_000_000.0

    def predicted(receipt: str | None, row: int, *, time: float = t, version: str = "v1") -> dict:
        return {
            "kind": "prediction",
            "receipt": receipt,
            "row": row,
            "version": version,
            "time": time,
            "features": {"a": float(row), "b": float(receipt is None)},
            "prediction": 0,
        }

    def label(receipt: str, labels: list, *, time: float, version: str = "v1", max_age: float = 3600) -> dict:
        return {
            "kind": "label",
            "receipt": receipt,
            "labels": labels,
            "version": version,
            "issued": t,
            "time": time,
            "max_age": max_age,
        }

    records = [
        predicted("r1", 0),
        predicted("r1", 1),
        predicted("late", 0),
        predicted("canary", 0, version="v2"),
        predicted(None, 0),  # no receipt (a server without a key): never labelled
        {
            "kind": "prediction",
            "id": "client-7",
            "row": 0,
            "version": "v1",
            "time": t,
            "features": {"a": 7.0, "b": 0.0},
            "prediction": 0,
        },  # captured before receipts: never labelled
        label("r1", [2, 2], time=t + 30),  # a replay accepted by a second pod, written in an earlier batch
        label("r1", [1, 2], time=t + 10),  # the first label for r1: it wins
        label("late", [1], time=t + 3601),  # past the receipt's maximum age
        label("canary", [1], time=t + 5, version="v1"),  # not the version that predicted
        label("nobody", [1], time=t + 5),  # a receipt whose rows were not captured (sampled out)
        {"kind": "label", "id": "client-7", "labels": [1], "version": "v1", "time": t + 5},  # the old id form
    ]
    table = capture_table(base, records, target="target")
    assert table.canonical_bytes().decode().splitlines() == ["a,b,target", "0.0,0.0,0", "0.0,0.0,1", "1.0,0.0,2"]
    without_bound = [
        {**r, "max_age": None} if r.get("receipt") == "late" and r["kind"] == "label" else r for r in records
    ]
    assert len(capture_table(base, without_bound, target="target").canonical_bytes().splitlines()) == 5, (
        "a record without its bound takes the servers' default (a day): the late label joins"
    )


def test_a_capture_larger_than_a_check_may_hold_is_refused_before_it_is_read(store: ArtifactStore) -> None:
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.sources import SourceError, read_capture

    clock = Clock()
    capture = writer(store, clock=clock)
    for i in range(20):
        capture.predicted(f"r{i}", np.array([[1.0, 2.0]]), np.array([0]))
    capture.flush()
    [(_, size)] = store.versions_under("captures/ml/iris")
    assert len(read_records(store, "captures/ml/iris", max_bytes=size)) == 20
    store.write_version("datasets/ml/base/v1", {"data.csv": b"a,b,target\n1,2,0\n"})
    spec = DatasetSpec.model_validate(
        {"source": {"capture": {"base": "base", "modelDeployment": "iris"}}, "target": "target"}
    )
    where = {"baseSnapshotUri": store.uri("datasets/ml/base/v1/data.csv"), "capturePrefix": "captures/ml/iris"}
    with pytest.raises(SourceError) as refused:
        read_capture(spec, where, store, max_bytes=size - 1)
    assert refused.value.reason == "SourceUnavailable"
    assert f"is {size} bytes in 1 batches, more than the {size - 1} bytes a check reads" in refused.value.message
