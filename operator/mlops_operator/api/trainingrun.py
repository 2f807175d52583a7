"""The TrainingRun kind: one training of a model version on a pinned dataset version, and its promotion."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .common import (
    Condition,
    DatasetName,
    DnsLabel,
    ResourceRequirements,
    Sha256Version,
    SpecModel,
    StatusModel,
    Timestamp,
    at_most_bytes,
)
from .estimators import CLASSIFICATION_METRICS, EstimatorName, MetricName, PreprocessorName, task_of
from .reasons import Decision, TrainingPhase

# The parameters go to the training Job with the rest of the spec (common.JOB_ENV_VALUE_MAX_BYTES); the
# schema cannot bound the size of free-form values, so it bounds their number and the model their bytes.
PARAMS_MAX_KEYS = 64
PARAMS_MAX_BYTES = 64 * 1024


class DatasetRef(SpecModel):
    """The Dataset to train on, optionally pinned to one content version."""

    name: DatasetName = Field(description="Name of the Dataset in the same namespace.")
    version: Sha256Version | None = Field(
        default=None,
        description="Content version to train on (sha256:...); default: the Dataset's current one.",
    )


class ModelSpec(SpecModel):
    """Which model this run produces a version of, and how."""

    name: DnsLabel = Field(
        description="Logical model name; every run with the same name is a version of the same model."
    )
    estimator: EstimatorName = Field(description="Allow-listed scikit-learn estimator class path.")
    params: Annotated[dict[str, Any], at_most_bytes(PARAMS_MAX_BYTES, what="the parameters")] = Field(
        default_factory=dict,
        max_length=PARAMS_MAX_KEYS,
        description="Keyword arguments of the estimator, e.g. {C: 1.0, max_iter: 200}; at most 64 of them, "
        "64 KiB as JSON.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    preprocessing: list[PreprocessorName] = Field(
        default_factory=list,
        max_length=5,
        description="Allow-listed preprocessing steps applied before it, in order.",
    )


class EvaluationSpec(SpecModel):
    """How the model is evaluated on held-out data."""

    test_size: float = Field(default=0.2, ge=0.05, le=0.5, description="Fraction of rows held out for evaluation.")
    seed: int = Field(
        default=42, ge=0, le=2**32 - 1, description="Seed of the train/test split and of the estimator (32 bits)."
    )
    metrics: list[MetricName] = Field(
        default_factory=list,
        max_length=8,
        description="Metrics to compute; default: all metrics of the task (classification or regression).",
    )


class MetricGate(SpecModel):
    """A bound one metric must meet for the model to be promoted."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "a gate needs min or max"},
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "message": "min must not be greater than max: no model could pass this gate",
                },
            ]
        }
    }

    metric: MetricName = Field(description="Name of the metric.")
    min: float | None = Field(default=None, description="The metric must be at least this.")
    max: float | None = Field(default=None, description="The metric must be at most this.")


class ChampionGate(SpecModel):
    """The model must beat the current champion of the same model name."""

    metric: MetricName = Field(description="Metric compared with the champion's.")
    margin: float = Field(
        default=0.0, ge=0, description="How much better than the champion it must be (absolute difference)."
    )


class PromotionSpec(SpecModel):
    """When the trained model becomes the champion of its model name."""

    policy: Literal["auto", "manual"] = Field(
        default="auto",
        description="auto: promote when every gate passes; manual: also wait for approval (annotation).",
    )
    gates: list[MetricGate] = Field(
        default_factory=list,
        max_length=16,
        description="Absolute bounds on metrics, one gate per metric.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["metric"]},
    )
    beat_champion: ChampionGate | None = Field(
        default=None, description="Must beat the current champion by at least a margin on one metric."
    )


class TrainingRunSpec(SpecModel):
    """What the user wants: a dataset, an estimator, an evaluation and a promotion policy."""

    dataset_ref: DatasetRef = Field(description="Dataset (and optionally its version) to train on.")
    model: ModelSpec = Field(description="Model name, estimator and parameters.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Held-out evaluation.")
    promotion: PromotionSpec = Field(default_factory=PromotionSpec, description="Promotion gates and policy.")
    resources: ResourceRequirements | None = Field(default=None, description="Resources of the training Job.")
    active_deadline_seconds: int = Field(
        default=3600, ge=10, le=7 * 24 * 3600, description="Time limit of the training Job, in seconds."
    )
    backoff_limit: int = Field(default=1, ge=0, le=10, description="How many times a failed training pod is retried.")
    dataset_wait_seconds: int = Field(
        default=600,
        ge=0,
        le=7 * 24 * 3600,
        description="How long to wait for the Dataset to become Ready before failing, in seconds.",
    )

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> TrainingRunSpec:
        task = task_of(self.model.estimator)
        named = [(f"evaluation.metrics[{i}]", m) for i, m in enumerate(self.evaluation.metrics)]
        named += [(f"promotion.gates[{i}].metric", g.metric) for i, g in enumerate(self.promotion.gates)]
        if self.promotion.beat_champion:
            named.append(("promotion.beatChampion.metric", self.promotion.beat_champion.metric))
        for path, metric in named:
            if (metric in CLASSIFICATION_METRICS) != (task == "classification"):
                raise ValueError(
                    f"{path}: {metric} is not a {task} metric, and {self.model.estimator} is a {task} estimator"
                )
        return self


class DatasetPin(StatusModel):
    """The dataset version pinned when the run started."""

    name: str = Field(description="Name of the Dataset.")
    version: str = Field(description="Content version trained on.")
    snapshot_uri: str = Field(default="", description="Artifact-store URI of that version's data.")
    target: str = Field(default="target", description="The target column.")


class ModelArtifact(StatusModel):
    """The stored model produced by the run."""

    uri: str = Field(description="Artifact-store URI of the model directory.")
    sha256: str = Field(
        description="sha256 of the model's MANIFEST.json, which lists the sha256 of every file the server loads."
    )
    version: str = Field(description="Model version: the TrainingRun's name.")
    calibrated: bool = Field(
        default=False,
        description="Whether the model carries a confidence calibration (from its held-out split): the "
        "label-free estimate of its live accuracy (analysis template estimatedAccuracy) needs one.",
    )


class PromotionStatus(StatusModel):
    """The promotion decision and the evidence it was based on."""

    decision: Decision = Field(description="The decision.")
    reason: str = Field(description="CamelCase reason of the decision.")
    message: str = Field(default="", description="The evidence: metric values and bounds.")
    champion: str | None = Field(default=None, description="The champion compared against, if any.")
    metric: str | None = Field(default=None, description="Metric compared with the champion.")
    value: float | None = Field(default=None, description="This run's value of the metric.")
    champion_value: float | None = Field(default=None, description="The champion's value of the metric.")
    decided_at: Timestamp | None = Field(default=None, description="When the decision was made.")


class TrainingRunStatus(StatusModel):
    """What is true about the TrainingRun, written only by the operator."""

    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    phase: TrainingPhase | None = Field(
        default=None, description="Summary for printer columns: Pending, Running, Succeeded, Failed."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Succeeded and Promoted conditions.")
    reason: str | None = Field(default=None, description="CamelCase reason of the current phase.")
    message: str | None = Field(default=None, description="The current phase in words.")
    dataset: DatasetPin | None = Field(default=None, description="Dataset version pinned at start (lineage).")
    job_name: str | None = Field(default=None, description="Name of the training Job.")
    attempts: int = Field(default=0, description="Training pods started so far.")
    started_at: Timestamp | None = Field(default=None, description="When the Job was created.")
    completed_at: Timestamp | None = Field(default=None, description="When the run reached a terminal phase.")
    duration_seconds: float | None = Field(default=None, description="Training wall time.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Evaluation metrics on held-out data.")
    primary_metric: str | None = Field(default=None, description="The metric shown in printer columns.")
    primary_value: str | None = Field(default=None, description="Its value, formatted.")
    model: ModelArtifact | None = Field(default=None, description="The stored model.")
    promotion: PromotionStatus | None = Field(default=None, description="Promotion decision and evidence.")
