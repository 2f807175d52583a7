"""Operator-wide settings, from the environment (the Helm chart sets them; defaults suit the local cluster)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "mlops-operator:dev"  # the image of Jobs and servers: the operator's own
    image_pull_policy: str = "IfNotPresent"
    artifact_pvc: str = "mlops-artifacts"  # in each namespace, the claim that holds its artifacts
    artifact_mount: str = "/artifacts"
    prometheus_url: str | None = None  # for analysis, unless a ModelDeployment names its own
    allow_raw_queries: bool = True  # false: analysis only on the built-in, namespace-scoped templates
    # A reconcile running longer than this is stuck: the liveness probe fails (controllers/common.py).
    stuck_reconcile_seconds: float = 120.0
    # Fault injection for the tests of that probe: reconciles of this "namespace/name" never return.
    # Never set it in production.
    test_hang_reconcile: str = ""

    @property
    def store_uri(self) -> str:
        return f"pvc://{self.artifact_pvc}"

    @classmethod
    def from_env(cls) -> OperatorConfig:
        return cls(
            image=os.environ.get("MLOPS_IMAGE", cls.image),
            image_pull_policy=os.environ.get("MLOPS_IMAGE_PULL_POLICY", cls.image_pull_policy),
            artifact_pvc=os.environ.get("MLOPS_ARTIFACT_PVC", cls.artifact_pvc),
            prometheus_url=os.environ.get("MLOPS_PROMETHEUS_URL") or None,
            allow_raw_queries=os.environ.get("MLOPS_ALLOW_RAW_QUERIES", "true").lower() != "false",
            stuck_reconcile_seconds=float(os.environ.get("MLOPS_STUCK_RECONCILE_SECONDS") or 120.0),
            test_hang_reconcile=os.environ.get("MLOPS_TEST_HANG_RECONCILE", ""),
        )
