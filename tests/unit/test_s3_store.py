"""The S3 artifact store against a real S3 server (VersityGW on loopback): versions are written once,
readers see all of a version or none of it, a late second writer never changes a published version (nor
on a claim), and every failure names the object and its cause."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from mlops_operator.modelformat.files import manifest_bytes, read_model_files, sha256_hex
from mlops_operator.storage import ArtifactStore, StoreError
from mlops_operator.storage.s3 import INDEX, S3Store
from support.s3server import S3Server


@pytest.fixture
def store(s3: S3Server, monkeypatch, request) -> S3Store:
    """A store configured the way a pod is: from the environment."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3.bucket("artifacts")
    made = ArtifactStore.from_uri(f"s3://{bucket}/team-a/{request.node.name[:40]}")
    assert isinstance(made, S3Store)
    return made


def test_a_version_is_written_read_and_downloaded_whole(store: S3Store, tmp_path: pathlib.Path) -> None:
    files = {"data.csv": b"a,b\n1,2\n", "profile.json": b"{}"}
    uri = store.write_version("datasets/ns/iris/abc", files)
    assert uri == f"{store.root_uri}/datasets/ns/iris/abc" and store.has_version("datasets/ns/iris/abc")
    assert store.read(f"{uri}/data.csv") == files["data.csv"]
    local = store.local_version(uri, tmp_path / "copy")
    assert {p.name: p.read_bytes() for p in local.iterdir()} == files, "the download holds exactly the version"


def test_a_written_version_is_never_overwritten(store: S3Store) -> None:
    uri = store.write_version("models/ns/iris/run-1", {"model.skops": b"first"})
    again = store.write_version("models/ns/iris/run-1", {"model.skops": b"second", "extra": b"x"})
    assert again == uri and store.read(f"{uri}/model.skops") == b"first"
    with pytest.raises(StoreError) as missing:
        store.read(f"{uri}/extra")
    assert missing.value.reason == "ObjectMissing"


def test_the_server_refuses_a_second_publish(store: S3Store) -> None:
    """The publish step relies on If-None-Match: * (the first writer wins a race): the real server honours it."""
    store.write_version("v", {"f": b"1"})
    key = f"{store.prefix}/v/{INDEX}"
    with pytest.raises(Exception) as refused:
        store.client.put_object(Bucket=store.bucket, Key=key, Body=b"{}", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412, refused.value
    assert json.loads(_get(store, f"v/{INDEX}"))["files"] == ["f"]


def test_files_without_a_published_index_are_no_version(store: S3Store, tmp_path: pathlib.Path) -> None:
    """A writer that died before publishing left files: readers do not see a version."""
    store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/half/model.skops", Body=b"partial")
    assert not store.has_version("half")
    with pytest.raises(StoreError, match="not a published version") as missing:
        store.local_version(store.uri("half"), tmp_path / "x")
    assert missing.value.reason == "ObjectMissing"
    # A later writer publishes its own complete version over the leftovers.
    store.write_version("half", {"model.skops": b"whole", "metadata.json": b"{}"})
    local = store.local_version(store.uri("half"), tmp_path / "y")
    assert sorted(p.name for p in local.iterdir()) == ["metadata.json", "model.skops"]
    assert (local / "model.skops").read_bytes() == b"whole"


def test_only_files_the_index_names_are_downloaded(store: S3Store, tmp_path: pathlib.Path) -> None:
    uri = store.write_version("m", {"model.skops": b"m"})
    store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/m/stray", Body=b"left by a losing writer")
    assert [p.name for p in store.local_version(uri, tmp_path / "m").iterdir()] == ["model.skops"]


def _get(store: S3Store, relative: str) -> bytes:
    return store.client.get_object(Bucket=store.bucket, Key=f"{store.prefix}/{relative}")["Body"].read()


def _put_raw(store: S3Store, relative: str, body: bytes) -> None:
    store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{relative}", Body=body)


def _object_key(store: S3Store, uri: str) -> str:
    """The key of the object that holds the file `<version uri>/<name>`: where the version's index says."""
    version, _, name = store.relative(uri).rpartition("/")
    return f"{store.prefix}/{version}/{json.loads(_get(store, f'{version}/{INDEX}'))['dir']}/{name}"


def _stored(store: S3Store, relative: str) -> dict[str, bytes]:
    """Every object under a version, by its key below the version."""
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}/{relative}/")
    keys = [item["Key"] for item in listed.get("Contents") or []]
    return {
        key.removeprefix(f"{store.prefix}/{relative}/"): _get(store, key.removeprefix(f"{store.prefix}/"))
        for key in keys
    }


def _model_files(model: bytes) -> dict[str, bytes]:
    files = {"model.skops": model, "metadata.json": json.dumps({"model": "iris", "note": model.decode()}).encode()}
    return {**files, "MANIFEST.json": manifest_bytes(files)}


def _late_writer(store: S3Store, meanwhile: Callable[[], object], puts: list[str]) -> S3Store:
    """Another writer of `store`'s versions (a replaced pod of the same Job) that finds no index, and then
    `meanwhile` runs (the first writer publishes) before it writes anything; the keys it puts go to `puts`."""

    class LateWriter(S3Store):
        def _exists(self, key: str) -> bool:
            found = super()._exists(key)
            if key.endswith(f"/{INDEX}") and not found and not puts:
                meanwhile()
            return found

        def _call(self, operation: str, key: str, **kwargs: Any) -> Any:
            if operation == "put_object":
                puts.append(key)
            return super()._call(operation, key, **kwargs)

    return LateWriter(store.root_uri, store.bucket, store.prefix, store.client)


def test_a_late_writer_never_changes_a_published_version(store: S3Store, tmp_path: pathlib.Path) -> None:
    """Two pods of one Job: the first publishes while the second, past its check, is about to write. The
    version keeps the first one's files byte for byte, and its recorded sha256 still verifies."""
    first, late = _model_files(b"trained by the first pod"), _model_files(b"trained again by its replacement")
    version, puts = "models/ns/iris/run-1-uid", []
    uri = _late_writer(store, lambda: store.write_version(version, first), puts).write_version(version, late)
    assert uri == store.uri(version)
    assert len(puts) == len(late) + 1, f"the late writer wrote its files and tried to publish: {puts}"
    reader = ArtifactStore.from_uri(store.root_uri)  # a server that starts afterwards
    assert {name: reader.read(f"{uri}/{name}") for name in first} == first
    directory = reader.local_version(uri, tmp_path / "served")
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == first
    assert read_model_files(directory, expected_sha256=sha256_hex(first["MANIFEST.json"])).covered
    stored, late_dirs = _stored(store, version), {key.split("/")[-2] for key in puts if not key.endswith(INDEX)}
    winner = json.loads(stored[INDEX])["dir"]
    assert len(late_dirs) == 1 and winner not in late_dirs, "each writer puts its files under a key of its own"
    assert sorted(stored) == sorted([INDEX, *(f"{winner}/{name}" for name in first)]), (
        "the losing writer removed its own files, and only those"
    )


def test_a_publish_retried_after_it_was_written_keeps_the_version(store: S3Store) -> None:
    """The answer to the conditional write was lost and the request retried: refused (412), yet the index
    names this writer's files. It has won: its files stay."""

    class Retried(S3Store):
        def _call(self, operation: str, key: str, **kwargs: Any) -> Any:
            if operation == "put_object" and "IfNoneMatch" in kwargs:
                super()._call(operation, key, **kwargs)  # written; the answer never arrives
            return super()._call(operation, key, **kwargs)

    files = _model_files(b"model")
    uri = Retried(store.root_uri, store.bucket, store.prefix, store.client).write_version("m", files)
    assert {name: store.read(f"{uri}/{name}") for name in files} == files


def test_a_version_written_before_writers_had_keys_of_their_own_still_reads(
    store: S3Store, tmp_path: pathlib.Path
) -> None:
    """Files directly under the version, an index without "dir": read, downloaded, listed, never overwritten."""
    old = _model_files(b"an old model")
    for name, content in old.items():
        _put_raw(store, f"models/ns/iris/old/{name}", content)
    _put_raw(store, f"models/ns/iris/old/{INDEX}", json.dumps({"files": sorted(old)}).encode())
    uri = store.uri("models/ns/iris/old")
    assert store.has_version("models/ns/iris/old") and store.read(f"{uri}/model.skops") == old["model.skops"]
    directory = store.local_version(uri, tmp_path / "old")
    assert read_model_files(directory, expected_sha256=sha256_hex(old["MANIFEST.json"])).covered
    assert store.write_version("models/ns/iris/old", _model_files(b"a new model")) == uri
    assert ArtifactStore.from_uri(store.root_uri).read(f"{uri}/model.skops") == old["model.skops"]
    [(path, size)] = store.versions_under("models/ns/iris")
    assert path == "models/ns/iris/old" and size == sum(map(len, _stored(store, "models/ns/iris/old").values()))


def test_deleting_a_version_removes_every_writers_files(store: S3Store) -> None:
    """The index first, then every object under the version: the winner's files and a loser's leftovers."""
    store.write_version("captures/b1", {"records.jsonl": b"one\n"})
    _put_raw(store, "captures/b1/0123456789abcdef0123456789abcdef/records.jsonl", b"a losing writer's\n")
    [(_, size)] = store.versions_under("captures")
    assert size == sum(map(len, _stored(store, "captures/b1").values())), "everything the version keeps"
    assert store.read(store.uri("captures/b1/records.jsonl")) == b"one\n"
    store.delete_version("captures/b1")
    assert _stored(store, "captures/b1") == {} and not store.has_version("captures/b1")
    assert store.versions_under("captures") == []
    with pytest.raises(StoreError) as gone:
        store.read(store.uri("captures/b1/records.jsonl"))
    assert gone.value.reason == "ObjectMissing"
    store.write_version("captures/b1", {"records.jsonl": b"two\n"})  # the name written again
    assert store.read(store.uri("captures/b1/records.jsonl")) == b"two\n"


def test_a_late_writer_never_changes_a_published_version_on_a_claim(tmp_path: pathlib.Path, monkeypatch) -> None:
    """The claim store: the late writer's rename onto the published directory fails; it keeps what it found."""
    import tempfile

    from mlops_operator.storage import local

    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    first, late = _model_files(b"trained by the first pod"), _model_files(b"trained again by its replacement")
    staged = tempfile.mkdtemp

    def publish_first_then_stage(**options: Any) -> str:
        monkeypatch.setattr(local.tempfile, "mkdtemp", staged)
        store.write_version("models/ns/iris/run", first)  # between the late writer's check and its writes
        return staged(**options)

    monkeypatch.setattr(local.tempfile, "mkdtemp", publish_first_then_stage)
    uri = store.write_version("models/ns/iris/run", late)
    assert {name: store.read(f"{uri}/{name}") for name in late} == first
    assert [p.name for p in (tmp_path / "models/ns/iris").iterdir()] == ["run"], "no staging directory left"


def test_uris_of_another_store_or_escaping_it_are_refused(store: S3Store) -> None:
    for uri in ("s3://other-bucket/team-a/x", f"{store.root_uri}/../escape", f"{store.root_uri}x/y", "file:///etc"):
        with pytest.raises(StoreError):
            store.read(uri)


@pytest.mark.parametrize(
    ("setup", "reason", "words"),
    [
        ("wrong-secret", "AccessDenied", "check the store's credentials"),
        ("no-bucket", "BucketMissing", "the bucket no-such-bucket does not exist"),
        ("unreachable", "Unreachable", "is unreachable"),
    ],
)
def test_store_failures_name_the_object_and_the_cause(s3: S3Server, monkeypatch, setup, reason, words) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3.bucket("artifacts")
    if setup == "wrong-secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    elif setup == "no-bucket":
        bucket = "no-such-bucket"
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    store = ArtifactStore.from_uri(f"s3://{bucket}/p")
    with pytest.raises(StoreError) as failed:
        store.write_version("datasets/ns/d/v1", {"data.csv": b"x"})
    assert failed.value.reason == reason, failed.value
    assert words in str(failed.value) and (setup == "unreachable" or f"s3://{bucket}/p/datasets" in str(failed.value))


def test_a_dataset_trained_and_served_from_object_storage(store: S3Store, tmp_path: pathlib.Path, monkeypatch) -> None:
    """Check → train → the server's download: the model's checksums verified on the downloaded copy,
    and a tampered object in the bucket refused."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from mlops_operator.modelformat.files import ModelIntegrityError
    from mlops_operator.server.runtime import load
    from support import run_training_of

    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    ds = run_check(spec, namespace="ns", name="iris", store=store, input_dir=tmp_path)
    assert ds["ok"] and ds["snapshotUri"].startswith(f"{store.root_uri}/datasets/ns/iris/")
    request = {
        "namespace": "ns",
        "run": "iris-v1",
        "dataset": {"name": "iris", "version": ds["version"], "snapshotUri": ds["snapshotUri"], "target": "target"},
        "spec": {
            "datasetRef": {"name": "iris"},
            "model": {"name": "iris", "estimator": "sklearn.linear_model.LogisticRegression"},
        },
    }
    result = run_training_of(request, store)
    assert result.ok and result.model_uri == f"{store.root_uri}/models/ns/iris/iris-v1"
    assert run_training_of(request, store) == result, "a retried pod reports the stored version"

    monkeypatch.setenv("MLOPS_STORE_URI", store.root_uri)
    monkeypatch.setenv("MLOPS_MODEL_DIR", str(tmp_path / "models"))
    loaded, profile = load(result.model_uri, expected_sha256=result.sha256)
    assert loaded.version == "iris-v1" and profile is not None
    key = _object_key(store, f"{result.model_uri}/metadata.json")
    store.client.put_object(Bucket=store.bucket, Key=key, Body=b'{"edited": true}')
    monkeypatch.setenv("MLOPS_MODEL_DIR", str(tmp_path / "models-again"))
    with pytest.raises(ModelIntegrityError):
        load(result.model_uri, expected_sha256=result.sha256)


def _put(s3: S3Server, key: str, body: bytes) -> str:
    import boto3

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    )
    client.put_object(Bucket=s3.bucket("sources"), Key=key, Body=body)
    return f"s3://sources/{key}"


def test_a_dataset_source_in_object_storage_as_csv_or_parquet(s3: S3Server, monkeypatch) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.sources import SourceError, read_source

    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    csv = b"a,b,target\n1.5,x,0\n2.5,y,1\n"
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": [1.5, 2.5], "b": ["x", "y"], "target": [0, 1]}), buffer)
    for key, body, fmt in (("team/d.csv", csv, "csv"), ("team/d.parquet", buffer.getvalue(), "auto")):
        spec = DatasetSpec.model_validate({"source": {"s3": {"uri": _put(s3, key, body)}}, "format": fmt})
        table = read_source(spec, input_dir=pathlib.Path("/nonexistent"))
        assert table.num_rows == 2, key
    missing = DatasetSpec.model_validate({"source": {"s3": {"uri": "s3://sources/team/none.csv"}}})
    with pytest.raises(SourceError) as failed:
        read_source(missing, input_dir=pathlib.Path("/nonexistent"))
    assert failed.value.reason == "SourceUnavailable" and "s3://sources/team/none.csv does not exist" in str(
        failed.value
    )


def test_a_source_with_its_own_secret_uses_its_credentials(s3: S3Server, monkeypatch) -> None:
    """The check Job gets the source's Secret under MLOPS_SOURCE_ (resources/jobs.py): it wins over the store's."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.sources import SourceError, read_source

    uri = _put(s3, "own/d.csv", b"a,target\n1,0\n2,1\n")
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-store-credentials-do-not-reach-this-bucket")
    monkeypatch.setenv("MLOPS_SOURCE_AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("MLOPS_SOURCE_AWS_SECRET_ACCESS_KEY", s3.secret_key)
    spec = DatasetSpec.model_validate({"source": {"s3": {"uri": uri, "secretName": "team-bucket"}}})
    assert read_source(spec, input_dir=pathlib.Path("/nonexistent")).num_rows == 2
    monkeypatch.setenv("MLOPS_SOURCE_AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(SourceError, match="access to s3://sources/own/d.csv denied"):
        read_source(spec, input_dir=pathlib.Path("/nonexistent"))


def test_a_version_pinned_before_the_store_moved_still_trains(store: S3Store, tmp_path: pathlib.Path) -> None:
    """The dataset was checked into the claim the namespace had; the model goes to the bucket it has now."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from support import run_training_of

    claim = ArtifactStore.from_uri("pvc://mlops-artifacts", str(tmp_path))
    ds = run_check(
        DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}}),
        namespace="ns",
        name="iris",
        store=claim,
        input_dir=tmp_path,
    )
    assert ds["snapshotUri"].startswith("pvc://mlops-artifacts/")
    request = {
        "namespace": "ns",
        "run": "moved",
        "dataset": {"name": "iris", "version": ds["version"], "snapshotUri": ds["snapshotUri"], "target": "target"},
        "spec": {
            "datasetRef": {"name": "iris"},
            "model": {"name": "iris", "estimator": "sklearn.linear_model.LogisticRegression"},
        },
    }
    result = run_training_of(request, store, snapshots=claim)
    assert result.ok and result.model_uri.startswith(store.root_uri)
