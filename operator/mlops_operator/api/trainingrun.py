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
from .estimators import (
    CLASSIFICATION_METRICS,
    PROBABILITIES_ONLY_WITH,
    REGRESSION_METRICS,
    REGRESSORS,
    EstimatorName,
    MetricName,
    PreprocessorName,
    task_of,
)
from .reasons import Decision, TrainingPhase

# The parameters go to the training Job with the rest of the spec (common.JOB_ENV_VALUE_MAX_BYTES); the
# schema cannot bound the size of free-form values, so it bounds their number and the model their bytes.
PARAMS_MAX_KEYS = 64
PARAMS_MAX_BYTES = 64 * 1024


def _fits_the_task(metric: str) -> str:
    """CEL: the metric (an expression) is of the estimator's task: a regression metric exactly when the
    estimator is a regressor."""
    return f"(({metric}) in {list(REGRESSION_METRICS)}) == (self.model.estimator in {list(REGRESSORS)})"


_TASK_WORDS = f"{', '.join(CLASSIFICATION_METRICS)} for a classifier; {', '.join(REGRESSION_METRICS)} for a regressor"
_HAS_EVALUATED = "has(self.evaluation) && has(self.evaluation.metrics) && self.evaluation.metrics.size() > 0"
# References from one field to another that the API server can judge (`fieldPath` makes its error name the
# field): a metric the estimator's task cannot have is never computed, and neither is one that
# evaluation.metrics leaves out; a gate on it could never pass, and the run would be rejected for nothing.
# The model says the same, naming the item (for a spec that got past an older CRD).
TRAINING_RUN_RULES = [
    {
        "rule": "!has(self.evaluation) || !has(self.evaluation.metrics) || "
        f"self.evaluation.metrics.all(m, {_fits_the_task('m')})",
        "fieldPath": ".evaluation.metrics",
        "message": f"evaluation.metrics must be metrics of the estimator's task: {_TASK_WORDS}",
    },
    {
        "rule": f"!has(self.promotion) || !has(self.promotion.gates) || "
        f"self.promotion.gates.all(g, {_fits_the_task('g.metric')})",
        "fieldPath": ".promotion.gates",
        "message": f"promotion.gates[].metric must be metrics of the estimator's task: {_TASK_WORDS}",
    },
    {
        "rule": f"!has(self.promotion) || !has(self.promotion.beatChampion) || "
        f"{_fits_the_task('self.promotion.beatChampion.metric')}",
        "fieldPath": ".promotion.beatChampion.metric",
        "message": f"promotion.beatChampion.metric must be a metric of the estimator's task: {_TASK_WORDS}",
    },
    {
        "rule": f"!({_HAS_EVALUATED}) || !has(self.promotion) || !has(self.promotion.gates) || "
        "self.promotion.gates.all(g, g.metric in self.evaluation.metrics)",
        "fieldPath": ".promotion.gates",
        "message": "promotion.gates[].metric must be one of evaluation.metrics: only those are computed",
    },
    {
        "rule": f"!({_HAS_EVALUATED}) || !has(self.promotion) || !has(self.promotion.beatChampion) || "
        "self.promotion.beatChampion.metric in self.evaluation.metrics",
        "fieldPath": ".promotion.beatChampion.metric",
        "message": "promotion.beatChampion.metric must be one of evaluation.metrics: only those are computed",
    },
]


class DatasetRef(SpecModel):
    """The Dataset to train on, optionally pinned to one content version."""

    name: DatasetName = Field(description="Name of the Dataset in the same namespace.")
    version: Sha256Version | None = Field(
        default=None,
        description="Content version to train on (sha256:...); default: the Dataset's current one.",
    )
    read_after: Timestamp | None = Field(
        default=None,
        description="Train on the Dataset's current version only once its source was read at or after this moment "
        "(a retraining run sets it to when its trigger fired: the data must include what fired it); the run waits "
        "for that read.",
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
    golden_rows: int = Field(
        default=200,
        ge=0,
        le=1000,
        description="Held-out rows stored with the version beside what the model predicted for them (at most "
        "512 KiB): a server replays them before it serves the version; 0: none.",
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

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": TRAINING_RUN_RULES}}

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

    def _named_metrics(self) -> list[tuple[str, str]]:
        """(field path, metric) of every metric the spec names."""
        named = [(f"evaluation.metrics[{i}]", m) for i, m in enumerate(self.evaluation.metrics)]
        named += [(f"promotion.gates[{i}].metric", g.metric) for i, g in enumerate(self.promotion.gates)]
        if self.promotion.beat_champion:
            named.append(("promotion.beatChampion.metric", self.promotion.beat_champion.metric))
        return named

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> TrainingRunSpec:
        task = task_of(self.model.estimator)
        for path, metric in self._named_metrics():
            if (metric in CLASSIFICATION_METRICS) != (task == "classification"):
                raise ValueError(
                    f"{path}: {metric} is not a {task} metric, and {self.model.estimator} is a {task} estimator"
                )
        return self

    @model_validator(mode="after")
    def _metrics_judged_are_computed(self) -> TrainingRunSpec:
        """A metric the trainer never computes leaves a gate that never passes: refused, not a rejection
        of every run for a reason the spec already held."""
        evaluated = self.evaluation.metrics
        switch = PROBABILITIES_ONLY_WITH.get(self.model.estimator)
        for path, metric in self._named_metrics():
            if evaluated and metric not in evaluated and not path.startswith("evaluation."):
                raise ValueError(f"{path}: {metric} is not computed: evaluation.metrics lists only {evaluated}")
            if metric == "roc_auc" and switch and self.model.params.get(switch) is not True:
                raise ValueError(
                    f"{path}: roc_auc is computed from probabilities, which {self.model.estimator} gives only "
                    f"with params.{switch}: true"
                )
        return self


class DatasetPin(StatusModel):
    """The dataset version pinned when the run started."""

    name: str = Field(description="Name of the Dataset.")
    version: str = Field(description="Content version trained on.")
    snapshot_uri: str = Field(default="", description="Artifact-store URI of that version's data.")
    target: str = Field(default="target", description="The target column.")
    read_at: Timestamp | None = Field(default=None, description="When the Dataset's check read that data.")


class TrainingEnvironment(StatusModel):
    """What a version was trained with (modelformat/environment.py): the same in its metadata.json."""

    python: str | None = Field(default=None, description="Python version.")
    scikit_learn: str | None = Field(default=None, description="scikit-learn version.")
    numpy: str | None = Field(default=None, description="numpy version.")
    scipy: str | None = Field(default=None, description="scipy version.")
    skops: str | None = Field(default=None, description="skops version (the model file's format).")
    pyarrow: str | None = Field(default=None, description="pyarrow version (the dataset reader).")
    lock_sha256: str | None = Field(
        default=None, description="sha256 of the requirements.lock the image installed its libraries from."
    )
    image: str | None = Field(default=None, description="The image the training ran in.")


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
    signature_sha256: str | None = Field(
        default=None,
        description="sha256 of the model's input signature (feature names, order and types; in its "
        "metadata.json): a canary whose signature differs from the stable version's is held.",
    )
    feature_count: int | None = Field(default=None, description="Input features the model takes.")
    environment: TrainingEnvironment | None = Field(
        default=None, description="What it was trained with: Python, the libraries, the lock and the image."
    )
    golden_sha256: str | None = Field(
        default=None,
        description="sha256 of its golden.json: held-out rows and what the model predicted for them. Two runs on "
        "the same dataset version, split and seed with the same value predicted the same (kubectl mlops reproduce).",
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


class ChampionScores(StatusModel):
    """The champion as the Job found it when it started, scored on the run's own held-out rows."""

    name: str = Field(description="The champion's TrainingRun.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Its metrics on this run's held-out rows.")
    error: str | None = Field(default=None, description="Why it could not be scored (then nothing compares).")


class RollbackRecord(StatusModel):
    """A ModelDeployment rolled this version back: it is nobody's champion and no ModelDeployment serves it
    until `kubectl mlops retry` clears the mark."""

    model_deployment: str = Field(description="The ModelDeployment that rolled it back.")
    reason: str = Field(description="CamelCase reason of the rollback (AnalysisFailed, Aborted, ...).")
    message: str = Field(default="", description="The evidence: the measurement that failed, in words.")
    at: Timestamp | None = Field(default=None, description="When it was rolled back.")


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
    test_rows: int | None = Field(default=None, description="Held-out rows the metrics were computed on.")
    champion_scores: ChampionScores | None = Field(
        default=None,
        description="The champion's metrics on this run's held-out rows, measured by its Job (beatChampion compares "
        "the two on the same rows), or why it could not be scored.",
    )
    promotion: PromotionStatus | None = Field(default=None, description="Promotion decision and evidence.")
    rolled_back: RollbackRecord | None = Field(
        default=None, description="Set while a ModelDeployment's rollback of this version stands (until retried)."
    )
