"""How the operator's pods reach the artifact store: the namespace's claim mounted, or object storage
through the environment boto3 reads (no volume, so pods can run on any node). Pure, table-tested."""

from __future__ import annotations

import dataclasses
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..config import OperatorConfig

CA_MOUNT = "/etc/mlops/s3-ca"


@dataclass(frozen=True)
class StoreAccess:
    env: dict[str, str]
    env_from: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)


def store_access(config: OperatorConfig, *, read_only: bool) -> StoreAccess:
    """What a Job or server container needs to read (and, unless `read_only`, write) the store."""
    if not config.uses_object_store:
        return StoreAccess(
            env={"MLOPS_STORE_URI": config.store_uri, "MLOPS_STORE_PATH": config.artifact_mount},
            volumes=[
                {
                    "name": "artifacts",
                    "persistentVolumeClaim": {"claimName": config.artifact_pvc, "readOnly": read_only},
                }
            ],
            mounts=[{"name": "artifacts", "mountPath": config.artifact_mount, "readOnly": read_only}],
        )
    env = {"MLOPS_STORE_URI": config.store_uri, "MLOPS_S3_ADDRESSING": config.s3_addressing}
    if config.s3_endpoint:
        env["AWS_ENDPOINT_URL"] = config.s3_endpoint
    if config.s3_region:
        env["AWS_REGION"] = config.s3_region
    env_from = [{"secretRef": {"name": config.s3_credentials_secret}}] if config.s3_credentials_secret else []
    volumes, mounts = [], []
    if config.s3_ca_configmap:
        env["AWS_CA_BUNDLE"] = f"{CA_MOUNT}/ca.crt"
        volumes.append(
            {
                "name": "s3-ca",
                "configMap": {"name": config.s3_ca_configmap, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
            }
        )
        mounts.append({"name": "s3-ca", "mountPath": CA_MOUNT, "readOnly": True})
    return StoreAccess(env=env, env_from=env_from, volumes=volumes, mounts=mounts)


def serving_store_access(model_uri: str, config: OperatorConfig) -> StoreAccess:
    """A model server reads the store its model's URI is in, whatever the store for new artifacts is
    now (a namespace moved to a bucket keeps serving the models stored on its claim), with the servers'
    own keys where the chart names them (`s3_server_credentials_secret`: read models, write captures)."""
    access = reading_store_access(model_uri, config)
    if access.env_from and config.s3_server_credentials_secret:
        return dataclasses.replace(access, env_from=[{"secretRef": {"name": config.s3_server_credentials_secret}}])
    return access


def reading_store_access(model_uri: str, config: OperatorConfig) -> StoreAccess:
    """Read-only access to the store `model_uri` is in (the claim it names, or its bucket)."""
    if model_uri.startswith("pvc://"):
        claim = model_uri.removeprefix("pvc://").split("/", 1)[0]
        return store_access(dataclasses.replace(config, artifact_store="", artifact_pvc=claim), read_only=True)
    if model_uri.startswith("s3://"):
        inside = config.uses_object_store and model_uri.startswith(config.store_uri + "/")
        root = config.store_uri if inside else "s3://" + model_uri.removeprefix("s3://").split("/", 1)[0]
        return store_access(dataclasses.replace(config, artifact_store=root), read_only=True)
    return store_access(config, read_only=True)


SNAPSHOT_MOUNT = "/snapshots"


def snapshot_store_access(snapshot_uri: str, config: OperatorConfig) -> StoreAccess:
    """What a training Job also needs when its dataset snapshot lives outside the store it writes the
    model to (a namespace that moved stores keeps training on the versions it pinned): that store, read
    only, under MLOPS_SNAPSHOT_STORE_URI (and its claim at /snapshots). Nothing when it is the same."""
    if not snapshot_uri.startswith(("s3://", "pvc://")) or snapshot_uri.startswith(config.store_uri + "/"):
        return StoreAccess(env={})
    other = reading_store_access(snapshot_uri, config)
    env = {k: v for k, v in other.env.items() if k not in ("MLOPS_STORE_URI", "MLOPS_STORE_PATH")}
    env["MLOPS_SNAPSHOT_STORE_URI"] = other.env["MLOPS_STORE_URI"]
    volumes = [{**v, "name": "snapshots"} for v in other.volumes if "persistentVolumeClaim" in v]
    mounts = [{"name": "snapshots", "mountPath": SNAPSHOT_MOUNT, "readOnly": True}] if volumes else []
    if volumes:
        env["MLOPS_SNAPSHOT_STORE_PATH"] = SNAPSHOT_MOUNT
    return StoreAccess(env=env, env_from=other.env_from, volumes=volumes, mounts=mounts)


# The kinds of artifacts the store keeps per namespace: `<kind>/<namespace>/...` (storage/__init__.py).
NAMESPACED_ARTIFACTS = ("datasets", "models", "captures")


def another_namespaces_artifacts(uri: str, *, store_uri: str, namespace: str) -> str | None:
    """The namespace whose artifacts `uri` points into, when it is inside the artifact store and not under
    `namespace`'s own: a Dataset source there would copy another team's snapshots, models or captures.
    The key is compared as written and normalised (`a/./b`, `a//b`, `a/x/../b`: a posix-backed server may
    resolve them to the same file)."""
    root = store_uri.rstrip("/")
    if not uri.startswith(root + "/"):
        return None
    key = uri[len(root) + 1 :]
    for candidate in (key, posixpath.normpath("/" + key).lstrip("/")):
        parts = [p for p in candidate.split("/") if p]
        if len(parts) >= 2 and parts[0] in NAMESPACED_ARTIFACTS and parts[1] not in (namespace, ".", ".."):
            return parts[1]
        if len(parts) == 1 and parts[0] in NAMESPACED_ARTIFACTS:  # every namespace's, this one's among them
            return "every namespace"
    return None


# What each holder of a namespace's keys does in the store (storage/__init__.py: the layout):
# the check and training Jobs write snapshots and models, and read the captured rows a Dataset adds;
# the model servers read models, and write and expire their captures.
STORE_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "jobs": {
        "datasets": ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
        "models": ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
        "captures": ("s3:GetObject",),
    },
    "servers": {
        "models": ("s3:GetObject",),
        "captures": ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
    },
}


def namespace_store_policy(store_uri: str, namespace: str, *, holder: str) -> dict[str, Any]:
    """The IAM policy (AWS's JSON) for the keys `holder` ("jobs" or "servers") holds in `namespace`: its
    own prefixes of the store and nothing else, listing included (`mlops-operator store-policy`)."""
    if not store_uri.startswith("s3://"):
        raise ValueError(f"{store_uri!r}: a store policy is for an s3:// store")
    bucket, _, root = store_uri.removeprefix("s3://").rstrip("/").partition("/")
    base = f"{root}/" if root else ""
    grants = STORE_GRANTS[holder]
    statements: list[dict[str, Any]] = []
    for actions in dict.fromkeys(grants.values()):
        kinds = [kind for kind, granted in grants.items() if granted == actions]
        statements.append(
            {
                "Sid": ("ReadWrite" if len(actions) > 1 else "Read") + "".join(k.capitalize() for k in kinds),
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": [f"arn:aws:s3:::{bucket}/{base}{kind}/{namespace}/*" for kind in kinds],
            }
        )
    statements.append(
        {
            "Sid": "ListOwnPrefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{base}{kind}/{namespace}/*" for kind in grants]}},
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}
