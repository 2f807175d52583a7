"""The artifact store in object storage (the cluster's S3 server, VersityGW), and its faults: wrong or
missing credentials, a missing bucket, a tampered model object; and the claim store, which stays
supported beside it. (The store down while a server restarts: test_disruptions.py, which runs alone.)

The rest of the suite runs on the S3 store too (`make deploy` configures it, as a real cluster would):
every Dataset, TrainingRun and ModelDeployment there has no volume in its namespace."""

from __future__ import annotations

import json

import pytest

from mlops_operator.config import STORE_ANNOTATION
from support import (
    REPO,
    STATE,
    Kubectl,
    add_s3_credentials,
    artifact_path,
    condition,
    s3_env,
    service_predictions,
    training_run_manifest,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")
DATASET = (REPO / "examples/dataset-iris.yaml").read_text()


def _failed_check(cluster: Kubectl, namespace: str) -> dict:
    ds = wait_phase(cluster, "dataset", "iris", namespace, ("Failed", "Ready"), timeout=120)
    assert ds["status"]["phase"] == "Failed", ds["status"]
    return condition(ds, "Ready")


def _waiting_check(cluster: Kubectl, namespace: str) -> dict:
    """A check whose pod cannot start waits for the cause (tests/integration/test_dataset_checks.py): Pending,
    not Failed, with Ready=False saying why."""

    def waiting() -> dict | None:
        ds = cluster.get("dataset", "iris", namespace)
        return ds if (condition(ds, "Ready") or {}).get("reason") == "PodCannotStart" else None

    ds = wait_for(waiting, timeout=120, what="Dataset iris to say that its check's pod cannot start")
    assert ds["status"]["phase"] == "Pending", ds["status"]
    return condition(ds, "Ready")


def _upload_parquet(key: str, *, drop: str | None = None) -> str:
    """tests/integration/data/iris.csv (without the column `drop`) as a Parquet object in the cluster's
    bucket; its s3:// URI."""
    import io

    import boto3
    import pyarrow.csv
    import pyarrow.parquet

    env = s3_env()
    buffer = io.BytesIO()
    table = pyarrow.csv.read_csv(REPO / "tests/integration/data/iris.csv")
    pyarrow.parquet.write_table(table.drop_columns([drop]) if drop else table, buffer)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    client.put_object(Bucket=env["MLOPS_S3_BUCKET"], Key=key, Body=buffer.getvalue())
    return f"s3://{env['MLOPS_S3_BUCKET']}/{key}"


def test_the_lifecycle_keeps_nothing_on_a_volume(cluster: Kubectl, ns: str) -> None:
    """A Dataset from a Parquet object, a TrainingRun and a served model in a namespace with no claim:
    everything is in the bucket."""
    source = _upload_parquet(f"sources/{ns}/iris.parquet")
    cluster.apply(
        json.dumps(
            {
                "apiVersion": "mlops.dev/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": "iris"},
                "spec": {
                    "source": {"s3": {"uri": source}},
                    "format": "auto",
                    "target": "target",
                    "schema": {"minRows": 100},
                },
            }
        ),
        ns,
    )
    ds = wait_phase(cluster, "dataset", "iris", ns, ("Ready", "Failed"), timeout=120)["status"]
    assert ds["phase"] == "Ready" and ds["rows"] == 150, ds.get("lastCheck")
    bucket = s3_env()["MLOPS_S3_BUCKET"]
    assert ds["snapshotUri"].startswith(f"s3://{bucket}/artifacts/datasets/{ns}/iris/"), ds["snapshotUri"]
    cluster.apply(training_run_manifest("iris-a", "sklearn.linear_model.LogisticRegression"), ns)
    trained = wait_phase(cluster, "trainingrun", "iris-a", ns, ("Succeeded",), timeout=180)
    run, uid = trained["status"], trained["metadata"]["uid"]
    assert run["model"]["uri"] == f"s3://{bucket}/artifacts/models/{ns}/iris/iris-a-{uid}"
    assert artifact_path(ns, run["model"]["uri"] + "/MANIFEST.json").exists(), "the model is in the bucket"
    cluster.apply(
        json.dumps(
            {
                "apiVersion": "mlops.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "iris"},
                "spec": {"model": {"name": "iris"}, "replicas": 2, "postPromotion": {"enabled": False}},
            }
        ),
        ns,
    )
    wait_phase(cluster, "modeldeployment", "iris", ns, ("Healthy",), timeout=120)
    assert cluster.json("get", "pvc", "-n", ns)["items"] == [], "no claim in the namespace"
    for pod in cluster.json("get", "pods", "-n", ns, "-l", "mlops.dev/deployment=iris")["items"]:
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        # the scratch space, and the feedback receipt key: a Secret, no claim
        assert set(volumes) == {"tmp", "receipts"}, f"{pod['metadata']['name']} mounts {sorted(volumes)}"
        assert "emptyDir" in volumes["tmp"] and "secret" in volumes["receipts"], volumes
    wait_for(lambda: service_predictions(cluster, ns, "iris"), timeout=60, what="predictions through the new Service")


def test_a_tampered_model_object_is_refused_and_the_canary_rolled_back(cluster: Kubectl, ns: str) -> None:
    cluster.apply(
        training_run_manifest(
            "iris-b", "sklearn.linear_model.LogisticRegression", params={"C": 0.5}, promotion={"policy": "manual"}
        ),
        ns,
    )
    run = wait_phase(cluster, "trainingrun", "iris-b", ns, ("Succeeded",), timeout=180)["status"]
    stored = artifact_path(ns, run["model"]["uri"] + "/model.skops")
    stored.write_bytes(stored.read_bytes() + b"tampered")  # in the bucket, behind the server's back
    cluster.run(
        "patch",
        "modeldeployment",
        "iris",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "model": {"name": None, "trainingRun": "iris-b"},
                    "progressDeadlineSeconds": 20,
                    "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
                }
            }
        ),
    )
    status = wait_for(
        lambda: (s := cluster.get("modeldeployment", "iris", ns)["status"]).get("degraded") and s,
        timeout=120,
        what="the rollback of the tampered version",
    )
    assert status["degraded"]["reason"] == "ProgressDeadlineExceeded", status["degraded"]
    assert status["stable"]["version"] == "iris-a" and "iris-b" in status["failedVersions"]
    # A canary pod still there (scaled away, it may not have started its container yet) says why it
    # refused the model once it has run: the log line, or no pod left.
    selector = "mlops.dev/deployment=iris,mlops.dev/variant=canary"

    def refused_or_gone() -> str | bool:
        pods = [p["metadata"]["name"] for p in cluster.json("get", "pods", "-n", ns, "-l", selector)["items"]]
        logs = "".join(cluster.run("logs", p, "-n", ns, check=False).stdout for p in pods)
        return "refusing to serve" in logs or not pods

    wait_for(refused_or_gone, timeout=90, what="the canary pods to log that they refuse the tampered model, or go")


def _s3_dataset(uri: str, **source) -> str:
    return json.dumps(
        {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "iris"},
            "spec": {"source": {"s3": {"uri": uri, **source}}, "format": "auto", "target": "target"},
        }
    )


@pytest.mark.parametrize(
    ("case", "reason", "words"),
    [
        ("missing-object", "SourceUnavailable", "does not exist"),
        ("parquet-without-the-target", "SchemaViolation", "target column 'target'"),
        ("unreachable-endpoint", "SourceUnavailable", "is unreachable"),
    ],
)
def test_an_object_source_that_cannot_be_used_is_reported(cluster, store_namespace, case, reason, words) -> None:
    bucket = s3_env()["MLOPS_S3_BUCKET"]
    with store_namespace("s3") as namespace:
        if case == "missing-object":
            manifest = _s3_dataset(f"s3://{bucket}/sources/{namespace}/none.parquet")
        elif case == "parquet-without-the-target":
            manifest = _s3_dataset(_upload_parquet(f"sources/{namespace}/x.parquet", drop="target"))
        else:
            manifest = _s3_dataset(f"s3://{bucket}/sources/x.parquet", endpoint="http://127.0.0.1:9")
        cluster.apply(manifest, namespace)
        ready = _failed_check(cluster, namespace)
        assert ready["reason"] == reason, ready
        assert words in ready["message"], ready["message"]


@pytest.mark.parametrize(
    ("case", "reason", "words"),
    [
        ("wrong-secret", "ArtifactStoreAccessDenied", "check the store's credentials"),
        ("no-secret", "PodCannotStart", 'secret "mlops-s3" not found'),
        ("no-bucket", "ArtifactStoreBucketMissing", "the bucket no-such-bucket does not exist"),
        ("bad-annotation", "ArtifactStoreMissing", f"the namespace annotation {STORE_ANNOTATION}="),
    ],
)
def test_a_store_the_pods_cannot_use_fails_the_check_saying_why(cluster, store_namespace, case, reason, words) -> None:
    with store_namespace("s3" if case == "no-bucket" else "none") as namespace:
        if case == "wrong-secret":
            add_s3_credentials(cluster, namespace, secret_key="not-the-secret")
        elif case == "no-bucket":
            cluster.run("annotate", "namespace", namespace, f"{STORE_ANNOTATION}=s3://no-such-bucket/x")
        elif case == "bad-annotation":
            cluster.run("annotate", "namespace", namespace, f"{STORE_ANNOTATION}=gs://elsewhere")
        cluster.apply(DATASET, namespace)
        ready = _waiting_check(cluster, namespace) if case == "no-secret" else _failed_check(cluster, namespace)
        assert ready["reason"] == reason, ready
        assert words in ready["message"], ready["message"]
        if case in ("wrong-secret", "no-bucket"):
            assert "datasets/" in ready["message"], f"the message does not name the object: {ready['message']}"


def test_the_claim_store_still_works_beside_object_storage(cluster: Kubectl, store_namespace) -> None:
    """A namespace annotated pvc://mlops-artifacts keeps its artifacts on its claim."""
    with store_namespace("pvc") as namespace:
        cluster.apply(DATASET, namespace)
        ds = wait_phase(cluster, "dataset", "iris", namespace, ("Ready",), timeout=120)["status"]
        assert ds["snapshotUri"].startswith(f"pvc://mlops-artifacts/datasets/{namespace}/iris/")
        cluster.apply(training_run_manifest("iris-a", "sklearn.linear_model.LogisticRegression"), namespace)
        run = wait_phase(cluster, "trainingrun", "iris-a", namespace, ("Succeeded",), timeout=180)["status"]
        assert run["model"]["uri"].startswith("pvc://mlops-artifacts/models/"), run["model"]
        assert (STATE / "volumes" / namespace / "mlops-artifacts" / "models").is_dir()
