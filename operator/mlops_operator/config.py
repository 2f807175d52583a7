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
        )
