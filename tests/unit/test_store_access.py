"""How the operator's pods reach the artifact store (pure): a claim mounted, or object storage through
boto3's environment; per namespace; and a Job's pod that cannot start said in words."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from mlops_operator.api.trainingrun import DatasetPin, TrainingRunSpec
from mlops_operator.config import STORE_ANNOTATION, OperatorConfig
from mlops_operator.controllers.cache import ObjectCache
from mlops_operator.controllers.watches import objects_to_wake
from mlops_operator.resources.jobs import desired_training_job, pod_cannot_start
from mlops_operator.resources.store import (
    namespace_store_policy,
    serving_store_access,
    snapshot_store_access,
    store_access,
)

RUN = TrainingRunSpec.model_validate(
    {"datasetRef": {"name": "iris"}, "model": {"name": "iris", "estimator": "sklearn.svm.SVC"}}
)
S3 = OperatorConfig(
    artifact_store="s3://ml-artifacts/prod",
    s3_endpoint="http://s3.local:9000",
    s3_region="eu-1",
    s3_addressing="path",
    s3_credentials_secret="mlops-s3",
)


def test_object_storage_needs_no_volume_only_environment() -> None:
    access = store_access(S3, read_only=False)
    assert access.volumes == [] and access.mounts == []
    assert access.env == {
        "MLOPS_STORE_URI": "s3://ml-artifacts/prod",
        "MLOPS_S3_ADDRESSING": "path",
        "AWS_ENDPOINT_URL": "http://s3.local:9000",
        "AWS_REGION": "eu-1",
    }
    assert access.env_from == [{"secretRef": {"name": "mlops-s3"}}]


def test_without_a_secret_the_pods_use_their_own_identity_and_a_private_ca_is_mounted() -> None:
    access = store_access(dataclasses.replace(S3, s3_credentials_secret="", s3_ca_configmap="corp-ca"), read_only=True)
    assert access.env_from == []
    assert access.env["AWS_CA_BUNDLE"] == "/etc/mlops/s3-ca/ca.crt"
    assert access.volumes == [
        {"name": "s3-ca", "configMap": {"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    ]


def test_the_claim_store_mounts_the_claim() -> None:
    access = store_access(OperatorConfig(), read_only=True)
    assert access.env == {"MLOPS_STORE_URI": "pvc://mlops-artifacts", "MLOPS_STORE_PATH": "/artifacts"}
    assert access.volumes[0]["persistentVolumeClaim"] == {"claimName": "mlops-artifacts", "readOnly": True}


@pytest.mark.parametrize(
    ("model_uri", "config", "store_uri", "claim"),
    [
        ("s3://ml-artifacts/prod/models/ns/iris/r1", S3, "s3://ml-artifacts/prod", None),
        # Stored on a claim before the namespace moved to a bucket: still read from the claim.
        ("pvc://old-claim/models/ns/iris/r0", S3, "pvc://old-claim", "old-claim"),
        # In another bucket (the store's prefix changed since): that bucket, same credentials.
        ("s3://archive/models/ns/iris/r0", S3, "s3://archive", None),
        ("s3://ml-artifacts/models/ns/iris/r2", OperatorConfig(), "s3://ml-artifacts", None),
    ],
)
def test_a_server_reads_the_store_its_model_is_in(model_uri, config, store_uri, claim) -> None:
    access = serving_store_access(model_uri, config)
    assert access.env["MLOPS_STORE_URI"] == store_uri
    claims = [v["persistentVolumeClaim"]["claimName"] for v in access.volumes if "persistentVolumeClaim" in v]
    assert claims == ([claim] if claim else [])


def test_servers_get_their_own_keys_where_the_chart_names_them_and_jobs_keep_theirs() -> None:
    scoped = dataclasses.replace(S3, s3_server_credentials_secret="mlops-s3-server")
    model = "s3://ml-artifacts/prod/models/ns/iris/r1"
    assert serving_store_access(model, scoped).env_from == [{"secretRef": {"name": "mlops-s3-server"}}]
    assert serving_store_access(model, S3).env_from == [{"secretRef": {"name": "mlops-s3"}}]
    assert store_access(scoped, read_only=False).env_from == [{"secretRef": {"name": "mlops-s3"}}]
    # A training Job reading a snapshot in another bucket reads it with the Jobs' keys, not the servers'.
    assert snapshot_store_access("s3://archive/datasets/ns/d/v", scoped).env_from == [
        {"secretRef": {"name": "mlops-s3"}}
    ]
    # A model on a claim: no keys at all.
    assert serving_store_access("pvc://old-claim/models/ns/iris/r0", scoped).env_from == []


def _granted(policy: dict, action: str) -> list[str]:
    return [r for st in policy["Statement"] if action in st["Action"] for r in st["Resource"]]


def test_a_namespaces_store_policy_names_its_own_prefixes_only() -> None:
    jobs = namespace_store_policy("s3://ml-artifacts/prod", "team-a", holder="jobs")
    servers = namespace_store_policy("s3://ml-artifacts/prod/", "team-a", holder="servers")
    own = "arn:aws:s3:::ml-artifacts/prod/{}/team-a/*"
    assert sorted(_granted(jobs, "s3:PutObject")) == [own.format("datasets"), own.format("models")]
    assert sorted(_granted(jobs, "s3:GetObject")) == [own.format(k) for k in ("captures", "datasets", "models")]
    # The servers read models and write only their captures.
    assert _granted(servers, "s3:PutObject") == _granted(servers, "s3:DeleteObject") == [own.format("captures")]
    assert sorted(_granted(servers, "s3:GetObject")) == [own.format("captures"), own.format("models")]
    for policy in (jobs, servers):
        [listing] = [st for st in policy["Statement"] if st["Action"] == ["s3:ListBucket"]]
        assert listing["Resource"] == ["arn:aws:s3:::ml-artifacts"]
        prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
        assert all(p.startswith("prod/") and p.endswith("/team-a/*") for p in prefixes)
        assert len({st["Sid"] for st in policy["Statement"]}) == len(policy["Statement"])
    bare = namespace_store_policy("s3://bucket", "b", holder="servers")
    assert _granted(bare, "s3:GetObject") == ["arn:aws:s3:::bucket/models/b/*", "arn:aws:s3:::bucket/captures/b/*"]
    with pytest.raises(ValueError, match="s3://"):
        namespace_store_policy("pvc://mlops-artifacts", "b", holder="jobs")


def test_a_training_job_on_object_storage_has_no_artifact_volume() -> None:
    job = desired_training_job(
        name="r",
        namespace="ns",
        uid="u",
        spec=RUN,
        config=S3,
        dataset=DatasetPin.model_validate({"name": "iris", "version": "v", "snapshotUri": "s3://x/y", "target": "t"}),
    )
    pod = job["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "mlops-s3"}}]


@pytest.mark.parametrize(
    ("annotation", "store_uri", "refused"),
    [
        (None, "s3://ml-artifacts/prod", None),
        ("s3://team-a/ml/", "s3://team-a/ml", None),
        ("pvc://team-claim", "pvc://team-claim", None),
        ("gs://team-a", "s3://ml-artifacts/prod", "is not s3://<bucket>[/prefix] or pvc://<claim>"),
        ("s3://A_B", "s3://ml-artifacts/prod", "is not s3://"),
    ],
)
def test_a_namespace_can_name_its_own_store(annotation, store_uri, refused) -> None:
    config, problem = S3.for_namespace({STORE_ANNOTATION: annotation} if annotation else {})
    assert config.store_uri == store_uri
    assert (problem is None) if refused is None else (refused in problem and STORE_ANNOTATION in problem)


def test_a_namespace_change_wakes_its_datasets() -> None:
    cache = ObjectCache()
    cache.observe("datasets", {"metadata": {"name": "iris", "namespace": "ml", "resourceVersion": "1"}})
    namespace = {"metadata": {"name": "ml", "annotations": {STORE_ANNOTATION: "s3://b"}}}
    assert objects_to_wake("namespaces", namespace, cache) == [("datasets", "ml", "iris")]


def _pod(name: str, created: str, waiting: dict | None) -> dict:
    state = {"waiting": waiting} if waiting else {"running": {}}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": [{"name": "main", "state": state}]},
    }


def test_a_pod_that_cannot_start_is_said_in_the_kubelets_words_once_it_is_stuck() -> None:
    missing = {"reason": "CreateContainerConfigError", "message": 'secret "mlops-s3" not found'}
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pods = [_pod("p1", "2026-01-01T00:00:00Z", missing)]
    # The kubelet says so for a moment on its own (its cache): not yet stuck, but look again then.
    assert pod_cannot_start(pods, now=created + dt.timedelta(seconds=5)) == (None, created + dt.timedelta(seconds=20))
    assert pod_cannot_start(pods, now=created + dt.timedelta(seconds=21)) == (
        'pod p1 cannot start: CreateContainerConfigError: secret "mlops-s3" not found',
        None,
    )
    later = created + dt.timedelta(minutes=5)
    # Only the newest pod counts; a container merely being created is not stuck.
    assert pod_cannot_start([*pods, _pod("p2", "2026-01-01T00:01:00Z", None)], now=later) == (None, None)
    assert pod_cannot_start([_pod("p3", "2026-01-01T00:00:00Z", {"reason": "ContainerCreating"})], now=later) == (
        None,
        None,
    )
    assert pod_cannot_start([], now=later) == (None, None)


def test_an_s3_source_with_its_own_secret_and_endpoint_reaches_the_check_job() -> None:
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.resources.jobs import desired_dataset_check_job

    spec = DatasetSpec.model_validate(
        {
            "source": {
                "s3": {"uri": "s3://team/d.parquet", "secretName": "team-s3", "endpoint": "https://s3.team.example"}
            }
        }
    )
    job = desired_dataset_check_job(name="d", namespace="ns", uid="u", spec=spec, check=1, config=S3)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [
        {"secretRef": {"name": "mlops-s3"}},
        {"prefix": "MLOPS_SOURCE_", "secretRef": {"name": "team-s3"}},
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (
        env["MLOPS_SOURCE_ENDPOINT"] == "https://s3.team.example" and env["AWS_ENDPOINT_URL"] == "http://s3.local:9000"
    )


@pytest.mark.parametrize(
    ("snapshot", "config", "expected_env", "claims"),
    [
        ("s3://ml-artifacts/prod/datasets/ns/iris/abc/data.csv", S3, {}, []),
        # The namespace moved from its claim to the bucket: the pinned version is still read, from the claim.
        (
            "pvc://mlops-artifacts/datasets/ns/iris/abc/data.csv",
            S3,
            {"MLOPS_SNAPSHOT_STORE_URI": "pvc://mlops-artifacts", "MLOPS_SNAPSHOT_STORE_PATH": "/snapshots"},
            ["mlops-artifacts"],
        ),
        # And back: a snapshot in the bucket for a namespace now on a claim, with the bucket's environment.
        (
            "s3://ml-artifacts/prod/datasets/ns/iris/abc/data.csv",
            dataclasses.replace(S3, artifact_store=""),
            {"MLOPS_SNAPSHOT_STORE_URI": "s3://ml-artifacts", "AWS_ENDPOINT_URL": "http://s3.local:9000"},
            [],
        ),
    ],
)
def test_a_training_job_reads_its_snapshot_from_the_store_it_is_in(snapshot, config, expected_env, claims) -> None:
    job = desired_training_job(
        name="r",
        namespace="ns",
        uid="u",
        spec=RUN,
        config=config,
        dataset=DatasetPin.model_validate({"name": "iris", "version": "v", "snapshotUri": snapshot, "target": "t"}),
    )
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert {k: env[k] for k in expected_env} == expected_env
    assert ("MLOPS_SNAPSHOT_STORE_URI" in env) == bool(expected_env)
    mounted = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == "snapshots"]
    assert mounted == claims


def test_every_pod_the_operator_creates_has_requests_and_limits_unless_its_spec_sets_its_own() -> None:
    """The chart's podResources for the pods whose spec says nothing (none is BestEffort; a namespace's
    ResourceQuota counts each); a TrainingRun's spec.resources or a ModelDeployment's server.resources win
    whole."""
    import dataclasses
    import json

    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.api.modeldeployment import ModelDeploymentSpec
    from mlops_operator.resources.jobs import desired_dataset_check_job
    from mlops_operator.resources.serving import desired_server_deployment

    defaults = {
        pod: {"requests": {"cpu": "25m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
        for pod in ("training", "check", "server")
    }
    config = dataclasses.replace(S3, pod_resources=json.dumps(defaults))
    pin = DatasetPin.model_validate({"name": "iris", "version": "v", "snapshotUri": "s3://x/y", "target": "t"})

    def container(body: dict) -> dict:
        return body["spec"]["template"]["spec"]["containers"][0]

    def check(config: OperatorConfig) -> dict:
        builtin = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
        return container(
            desired_dataset_check_job(name="d", namespace="ns", uid="u", spec=builtin, check=1, config=config)
        )

    training = desired_training_job(name="r", namespace="ns", uid="u", spec=RUN, config=config, dataset=pin)
    version = {"version": "r", "modelUri": "s3://ml-artifacts/prod/models/ns/iris/r", "sha256": "1" * 64}

    def server(spec: dict) -> dict:
        md = ModelDeploymentSpec.model_validate({"model": {"name": "iris"}, **spec})
        return container(
            desired_server_deployment(
                md="m", uid="u", variant="stable", spec=md, model="iris", version=version, replicas=1, config=config
            )
        )

    assert check(config)["resources"] == defaults["check"]
    assert container(training)["resources"] == defaults["training"]
    assert server({})["resources"] == defaults["server"]
    own = {"requests": {"cpu": "2"}}
    assert server({"server": {"resources": own}})["resources"] == own
    sized = TrainingRunSpec.model_validate({**RUN.model_dump(by_alias=True, exclude_none=True), "resources": own})
    trained = desired_training_job(name="r", namespace="ns", uid="u", spec=sized, config=config, dataset=pin)
    assert container(trained)["resources"] == own
    assert "resources" not in check(S3), "with no podResources configured, nothing is invented"
