"""Operator-wide settings, from the environment (the Helm chart sets them; defaults suit the local cluster)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from typing import Any

# A namespace annotation that puts the artifacts of its objects in a store of its own (a team's bucket):
# `s3://bucket[/prefix]` (the operator's S3 endpoint and credentials Secret name), or `pvc://<claim>`.
from .api.names import STORE_ANNOTATION  # noqa: F401 (read here, defined with every key)

# A Dataset's s3 source with a Secret of its own: the check Job gets its keys under this prefix, and the
# source's endpoint as <prefix>ENDPOINT (resources/jobs.py writes them, data/sources.py reads them).
S3_SOURCE_ENV_PREFIX = "MLOPS_SOURCE_"
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")
_PVC_URI = re.compile(r"^pvc://[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "mlops-operator:dev"  # the image of Jobs and servers: the operator's own
    image_pull_policy: str = "IfNotPresent"
    artifact_pvc: str = "mlops-artifacts"  # in each namespace, the claim that holds its artifacts
    artifact_mount: str = "/artifacts"
    # s3://bucket[/prefix]: artifacts in object storage, read and written by the pods directly (no volume);
    # empty: the claim above in each namespace. The S3 settings reach the pods as boto3's environment.
    artifact_store: str = ""
    s3_endpoint: str = ""  # AWS_ENDPOINT_URL; empty: AWS's own endpoints
    s3_region: str = ""  # AWS_REGION
    s3_addressing: str = "auto"  # path | virtual | auto
    s3_credentials_secret: str = ""  # a Secret in each namespace with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
    # The Secret the model servers get instead (keys that read models and write captures only); empty: the above.
    s3_server_credentials_secret: str = ""
    s3_ca_configmap: str = ""  # a ConfigMap in each namespace with the store's CA bundle (key ca.crt)
    prometheus_url: str | None = None  # for analysis, unless a ModelDeployment names its own
    allow_raw_queries: bool = True  # false: analysis only on the built-in, namespace-scoped templates
    # The Prometheus URLs a ModelDeployment's spec.prometheusUrl may name, besides prometheus_url: the
    # operator queries from its own network position, so a URL a tenant picks is refused unless listed.
    prometheus_allowed_urls: tuple[str, ...] = ()
    # How many ModelDeployments' servers may roll at once onto a pod template only the operator changed
    # (an upgrade, a chart setting): resources/serving.py, "Upgrade rolls".
    server_upgrades_at_once: int = 3
    # How long a finished Job and its pods stay once its result is recorded (ttlSecondsAfterFinished).
    finished_job_ttl_seconds: int = 600
    # Requests and limits of the pods the operator creates when their spec sets none (the chart's
    # podResources), as JSON: {"training": {...}, "check": {...}, "server": {...}}.
    pod_resources: str = ""
    # A reconcile running longer than this is stuck: the liveness probe fails (controllers/liveness.py).
    stuck_reconcile_seconds: float = 120.0
    # Fault injection for the tests of that probe: reconciles of this "namespace/name" never return.
    # Never set it in production.
    test_hang_reconcile: str = ""
    # Fault injection for tests: `<namespace>/<run>` makes the process exit right after it wrote that run's
    # promotion decision and before the champion label (a crash between the two writes).
    test_crash_after_decision: str = ""

    def default_resources(self, pod: str) -> dict[str, Any] | None:
        """The requests and limits of a `training`, `check` or `server` pod whose spec sets none."""
        return (json.loads(self.pod_resources) if self.pod_resources else {}).get(pod) or None

    @property
    def uses_object_store(self) -> bool:
        return self.artifact_store.startswith("s3://")

    @property
    def store_uri(self) -> str:
        return self.artifact_store.rstrip("/") if self.uses_object_store else f"pvc://{self.artifact_pvc}"

    @classmethod
    def from_env(cls) -> OperatorConfig:
        return cls(
            image=os.environ.get("MLOPS_IMAGE", cls.image),
            image_pull_policy=os.environ.get("MLOPS_IMAGE_PULL_POLICY", cls.image_pull_policy),
            artifact_pvc=os.environ.get("MLOPS_ARTIFACT_PVC", cls.artifact_pvc),
            artifact_store=os.environ.get("MLOPS_ARTIFACT_STORE", ""),
            s3_endpoint=os.environ.get("MLOPS_S3_ENDPOINT", ""),
            s3_region=os.environ.get("MLOPS_S3_REGION", ""),
            s3_addressing=os.environ.get("MLOPS_S3_ADDRESSING") or "auto",
            s3_credentials_secret=os.environ.get("MLOPS_S3_CREDENTIALS_SECRET", ""),
            s3_server_credentials_secret=os.environ.get("MLOPS_S3_SERVER_CREDENTIALS_SECRET", ""),
            s3_ca_configmap=os.environ.get("MLOPS_S3_CA_CONFIGMAP", ""),
            prometheus_url=os.environ.get("MLOPS_PROMETHEUS_URL") or None,
            allow_raw_queries=os.environ.get("MLOPS_ALLOW_RAW_QUERIES", "true").lower() != "false",
            prometheus_allowed_urls=tuple(
                u.strip() for u in os.environ.get("MLOPS_PROMETHEUS_ALLOWED_URLS", "").split(",") if u.strip()
            ),
            pod_resources=os.environ.get("MLOPS_POD_RESOURCES", ""),
            finished_job_ttl_seconds=int(os.environ.get("MLOPS_FINISHED_JOB_TTL_SECONDS") or 600),
            server_upgrades_at_once=int(os.environ.get("MLOPS_SERVER_UPGRADES_AT_ONCE") or 3),
            stuck_reconcile_seconds=float(os.environ.get("MLOPS_STUCK_RECONCILE_SECONDS") or 120.0),
            test_hang_reconcile=os.environ.get("MLOPS_TEST_HANG_RECONCILE", ""),
            test_crash_after_decision=os.environ.get("MLOPS_TEST_CRASH_AFTER_DECISION", ""),
        )

    def for_namespace(self, annotations: dict[str, str] | None) -> tuple[OperatorConfig, str | None]:
        """This configuration with the store a namespace names in its `mlops.dev/artifact-store`
        annotation; and why the annotation is refused, if it is (the operator's own store is kept)."""
        wanted = (annotations or {}).get(STORE_ANNOTATION, "").strip()
        if not wanted:
            return self, None
        if _S3_URI.match(wanted):
            return dataclasses.replace(self, artifact_store=wanted.rstrip("/")), None
        if _PVC_URI.match(wanted):
            return dataclasses.replace(self, artifact_store="", artifact_pvc=wanted.removeprefix("pvc://")), None
        return self, (
            f"the namespace annotation {STORE_ANNOTATION}={wanted[:200]!r} is not s3://<bucket>[/prefix] or "
            "pvc://<claim>; fix or remove it"
        )
