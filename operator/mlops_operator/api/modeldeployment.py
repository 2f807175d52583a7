"""The ModelDeployment kind: serve a model's champion and roll new versions out through canary steps."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .common import (
    Condition,
    DnsLabel,
    ObjectName,
    ResourceRequirements,
    SpecModel,
    StatusModel,
    Timestamp,
    TrainingRunName,
    bounded_duration,
    exactly_one_rule,
    http_url_rule,
)
from .cron import CRON_PATTERN, parse_cron
from .estimators import REGRESSORS
from .scheduling import NodeSelector, SpreadConstraints, Toleration
from .trainingrun import TrainingRunSpec

# The metrics judged when spec.analysis.metrics is empty (rollout.analysis.DEFAULT_METRICS): the only
# names an analysis step may give then.
DEFAULT_METRIC_NAMES = ("error-rate", "latency-p95")
# A timed pause longer than a day is a manual one (no duration) that someone forgot.
PauseDuration = bounded_duration("1s", "24h")
# The interval is also the range of the templates' queries (`rate(...[interval])`): whole units only,
# as Prometheus refuses `[1.5m]`.
AnalysisInterval = bounded_duration("1s", "1h", whole_units=True)
GuardWindow = bounded_duration("1m", "168h")

# What each analysis template measures, for the rules on the options that apply to it. The label-based
# templates (and the estimate) need labelled predictions (or predictions) in the window: only they have a
# minSamples; some measure a classifier only, some a regressor only; some are fractions from 0 to 1.
CLASS_TEMPLATES = ("precision", "recall", "f1")
CLASSIFIER_TEMPLATES = ("accuracy", "precision", "recall", "f1", "estimatedAccuracy")
REGRESSOR_TEMPLATES = ("mae", "rmse")
SAMPLED_TEMPLATES = CLASSIFIER_TEMPLATES + REGRESSOR_TEMPLATES
FRACTION_TEMPLATES = ("errorRate", *CLASSIFIER_TEMPLATES)
DEFAULT_MIN_SAMPLES = 10
# A raw query's placeholders; any other `{{...}}` would reach Prometheus as it is, and fail every time.
QUERY_PLACEHOLDERS = ("{{version}}", "{{namespace}}")
# `result <op> <number>`: the number a decimal literal, as Python's float() and a reader both take it.
SUCCESS_CONDITION_PATTERN = r"^result\s*(<|<=|>|>=|==|!=)\s*(-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)$"
_LABELLED_TASK_WORDS = (
    f"{', '.join(CLASSIFIER_TEMPLATES)} for a classifier; {', '.join(REGRESSOR_TEMPLATES)} for a regressor"
)


def _regressor_fits(template: str, estimator: str) -> str:
    """CEL: a label-based template (an expression) fits the estimator (an expression): a regressor's
    template exactly when the estimator is a regressor."""
    return f"(({template}) in {list(REGRESSOR_TEMPLATES)}) == (({estimator}) in {list(REGRESSORS)})"


def _template_fits(template: str, estimator: str) -> bool:
    """The same rule in the model: a label-based template measures one kind of estimator only."""
    return template not in SAMPLED_TEMPLATES or (template in REGRESSOR_TEMPLATES) == (estimator in REGRESSORS)


def _finite_bound(condition: str) -> str:
    """The pattern lets any decimal through; one too large for a float (1e999) compares with nothing."""
    match = re.fullmatch(SUCCESS_CONDITION_PATTERN, condition)
    if match is not None and not math.isfinite(float(match.group(2))):
        raise ValueError(f"{match.group(2)} is not a finite number")
    return condition


def _known_placeholders(query: str) -> str:
    """An unknown `{{...}}` is sent to Prometheus as it is: a query that fails at every measurement."""
    rest = query
    for placeholder in QUERY_PLACEHOLDERS:
        rest = rest.replace(placeholder, "")
    if "{{" in rest:
        raise ValueError(QUERY_RULE["message"])
    return query


QUERY_RULE = {
    "rule": "!self" + "".join(f".replace('{p}', '')" for p in QUERY_PLACEHOLDERS) + ".contains('{{')",
    "message": f"the only placeholders are {' and '.join(QUERY_PLACEHOLDERS)}",
}
SuccessCondition = Annotated[
    str, Field(max_length=256, pattern=SUCCESS_CONDITION_PATTERN), AfterValidator(_finite_bound)
]
Query = Annotated[
    str,
    Field(min_length=1, max_length=4096, pattern=r"\S", json_schema_extra={"x-kubernetes-validations": [QUERY_RULE]}),
    AfterValidator(_known_placeholders),
]
# The rules across an analysis metric's fields, each with the check the model makes (same words).
ANALYSIS_METRIC_RULES = [
    exactly_one_rule(["template", "query"], "set exactly one of template or query"),
    {"rule": "!has(self.template) || has(self.threshold)", "message": "a template metric needs a threshold"},
    {"rule": "!has(self.threshold) || has(self.template)", "message": "threshold applies only to a template"},
    {"rule": "has(self.query) == has(self.successCondition)", "message": "a query needs a successCondition"},
    {
        "rule": f"!has(self.class) || (has(self.template) && self.template in {list(CLASS_TEMPLATES)})",
        "message": "class applies only to the precision, recall and f1 templates",
    },
    {
        "rule": f"!has(self.threshold) || !has(self.template) || !(self.template in {list(FRACTION_TEMPLATES)}) || "
        "(self.threshold >= 0.0 && self.threshold <= 1.0)",
        "fieldPath": ".threshold",
        "message": f"the threshold of {', '.join(FRACTION_TEMPLATES)} is a fraction from 0 to 1 (5 % is 0.05)",
    },
    {
        "rule": "!has(self.threshold) || self.threshold >= 0.0",
        "fieldPath": ".threshold",
        "message": "threshold must not be negative: no template measures anything below 0",
    },
    {
        "rule": f"!has(self.minSamples) || self.minSamples == {DEFAULT_MIN_SAMPLES} || "
        f"(has(self.template) && self.template in {list(SAMPLED_TEMPLATES)})",
        "fieldPath": ".minSamples",
        "message": f"minSamples applies only to the {', '.join(SAMPLED_TEMPLATES)} templates",
    },
]


class ModelSelector(SpecModel):
    """Which model version to serve: follow a model's champion, or pin one TrainingRun."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                exactly_one_rule(["name", "trainingRun"], "set exactly one of name or trainingRun")
            ]
        }
    }

    name: DnsLabel | None = Field(default=None, description="Model name: serve its current champion.")
    training_run: TrainingRunName | None = Field(default=None, description="Serve the model of this TrainingRun.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSelector:
        """The CRD's rule, for a spec that got past an older CRD: serve one thing, known which."""
        if (self.name is None) == (self.training_run is None):
            raise ValueError("set exactly one of name or trainingRun")
        return self


class ServerSpec(SpecModel):
    """Settings of the model server pods."""

    port: int = Field(default=8080, ge=1024, le=65535, description="Container port of the V2 HTTP endpoint.")
    max_batch_size: int = Field(default=64, ge=1, le=4096, description="Most rows one predict call batches.")
    max_batch_delay_ms: float = Field(
        default=2.0, ge=0, le=1000, description="Longest a request waits for others to batch with."
    )
    resources: ResourceRequirements | None = Field(default=None, description="Resources of each server container.")
    reproducibility: Literal["strict", "replay", "off"] = Field(
        default="replay",
        description="Before a server serves a version it replays the version's golden rows (held-out rows with "
        "what the model predicted in training): replay: served if they are predicted the same, also on other "
        "library versions (then the metric mlops_model_environment_differs is 1); strict: only on the "
        "library versions that trained it; off: no check. A version that fails never becomes ready and says "
        "why in its pods' termination message (ModelNotReproducible).",
    )
    image: Literal["Operator", "Training"] = Field(
        default="Operator",
        description="Which image the servers run: Operator, the operator's current one (its libraries may be "
        "newer than those a version was trained with: the replay guards it); Training, for each version the "
        "image its TrainingRun recorded it was trained in (status.model.environment.image), so it keeps its "
        "libraries across operator upgrades, and misses their security fixes. A version that recorded no "
        "image runs on the operator's.",
    )
    drain_seconds: int = Field(
        default=10,
        ge=0,
        le=300,
        description="How long a server pod scaled away or deleted keeps answering (its preStop) while "
        "kube-proxy, and a gateway or load balancer, stop sending it requests; then it has 20 s at least to "
        "finish the requests in flight.",
    )
    node_selector: NodeSelector = Field(
        default_factory=dict,
        max_length=32,
        description="Labels a node must have to run a server pod, e.g. {kubernetes.io/arch: amd64}.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints the server pods tolerate: to run on dedicated nodes, or (NoExecute with "
        "tolerationSeconds) to leave a failed node sooner than Kubernetes' 300 s.",
    )
    topology_spread_constraints: SpreadConstraints = Field(
        default_factory=list,
        max_length=8,
        description="Spread each version's server pods over nodes or zones; the operator selects the pods "
        "counted (labelSelector, matchLabelKeys).",
    )


class PauseSpec(SpecModel):
    """Wait before the next step."""

    duration: PauseDuration | None = Field(
        default=None, description="How long to wait (e.g. 30s, 5m; 1s to 24h); absent: wait for a manual promote."
    )


class StepAnalysis(SpecModel):
    """Judge the canary now, with the deployment's analysis metrics."""

    metrics: list[DnsLabel] = Field(
        default_factory=list,
        max_length=16,
        description="Names of analysis metrics to run, defined in spec.analysis.metrics (or, when that is "
        "empty, the defaults error-rate and latency-p95); empty: all of them.",
    )


class CanaryStep(SpecModel):
    """One step of a canary rollout: exactly one of setWeight, pause, analysis."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                exactly_one_rule(
                    ["setWeight", "pause", "analysis"],
                    "a step sets exactly one of setWeight, pause, analysis",
                )
            ]
        }
    }

    set_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of traffic sent to the canary.")
    pause: PauseSpec | None = Field(default=None, description="Wait, for a duration or for a manual promote.")
    analysis: StepAnalysis | None = Field(default=None, description="Run the analysis before going on.")

    @model_validator(mode="after")
    def _exactly_one_action(self) -> CanaryStep:
        """The CRD's rule, for a spec that got past an older CRD: a step does one thing, or the others are
        silently skipped."""
        if sum(action is not None for action in (self.set_weight, self.pause, self.analysis)) != 1:
            raise ValueError("a step sets exactly one of setWeight, pause, analysis")
        return self


class CanaryStrategy(SpecModel):
    """Ordered steps from 0 % to 100 % of traffic on the new version."""

    steps: list[CanaryStep] = Field(
        default_factory=lambda: [
            CanaryStep(set_weight=20),
            CanaryStep(pause=PauseSpec(duration="1m")),
            CanaryStep(set_weight=50),
            CanaryStep(pause=PauseSpec(duration="1m")),
        ],
        max_length=32,
        description="Steps in order; after the last one the canary becomes stable at 100 %.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
                    "message": "setWeight must not decrease from one step to the next",
                }
            ]
        },
    )
    allow_input_schema_change: bool = Field(
        default=False,
        description="Roll out a version whose input signature (features, order, types) differs from the stable "
        "version's without a person's approval. False: such a canary gets no traffic until `kubectl mlops promote` "
        "(clients sending the old inputs would fail, or get wrong predictions from reordered columns).",
    )


class StrategySpec(SpecModel):
    """How a new version replaces the stable one."""

    canary: CanaryStrategy = Field(default_factory=CanaryStrategy, description="Canary steps.")


class GatewayApiRouting(SpecModel):
    """Split traffic with weights on an HTTPRoute of the Gateway API."""

    http_route: ObjectName = Field(
        description="Name of an HTTPRoute in the same namespace; only the backendRefs to our Services are changed."
    )


class TrafficRouting(SpecModel):
    """How traffic is split between stable and canary."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(self.mode == 'GatewayAPI') == has(self.gatewayAPI)",
                    "message": "gatewayAPI must be set exactly when mode is GatewayAPI",
                }
            ]
        }
    }

    mode: Literal["Replicas", "GatewayAPI"] = Field(
        default="Replicas",
        description="Replicas: weight by replica ratio behind one Service; GatewayAPI: weights on an HTTPRoute.",
    )
    gateway_api: GatewayApiRouting | None = Field(default=None, alias="gatewayAPI", description="The HTTPRoute.")

    @model_validator(mode="after")
    def _route_exactly_in_its_mode(self) -> TrafficRouting:
        """The CRD's rule, for a spec that got past an older CRD: a route in Replicas mode is never used."""
        if (self.mode == "GatewayAPI") != (self.gateway_api is not None):
            raise ValueError("gatewayAPI must be set exactly when mode is GatewayAPI")
        return self


class AnalysisMetric(SpecModel):
    """One measurement judged at every analysis: a built-in template, or a PromQL query with a condition."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": ANALYSIS_METRIC_RULES}}

    name: DnsLabel = Field(description="Name of the metric, used in status and Events.")
    template: (
        Literal[
            "errorRate",
            "latencyP95",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "mae",
            "rmse",
            "drift",
            "predictionDrift",
            "estimatedAccuracy",
        ]
        | None
    ) = Field(
        default=None,
        description="Built-in: errorRate (fraction, max), latencyP95 (seconds, max), drift (the largest feature "
        "PSI, max), predictionDrift (PSI of the predictions against the training target, max); from labels "
        "posted back: accuracy, precision, recall, f1 (classifiers, min; macro average or one class), mae, rmse "
        "(regressors, max); estimatedAccuracy (min): the label-free estimate from the model's calibrated "
        "confidence (classifiers with probabilities).",
    )
    threshold: float | None = Field(default=None, description="Bound of the template metric (see template).")
    class_: str | None = Field(
        default=None,
        alias="class",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="precision, recall, f1: judge this class (as the server names it: 1, not 1.0) instead of "
        "the macro average over the classes seen.",
    )
    min_samples: int = Field(
        default=DEFAULT_MIN_SAMPLES,
        ge=1,
        le=1_000_000,
        description="accuracy, precision, recall, f1, mae, rmse: fewest labelled predictions in the window "
        "(estimatedAccuracy: predictions) before a verdict; fewer is inconclusive.",
    )
    query: Query | None = Field(
        default=None,
        description="PromQL returning one number; {{version}} and {{namespace}} are substituted (no other "
        "placeholder).",
    )
    success_condition: SuccessCondition | None = Field(
        default=None,
        description="Condition on the query's result: result, a comparison (<, <=, >, >=, == or !=) and a "
        "number, e.g. 'result < 0.05'.",
    )

    @model_validator(mode="after")
    def _as_the_crd_checks_it(self) -> AnalysisMetric:
        """The CRD's rules in the same words: an option the metric ignores, or a bound it can never cross,
        would judge every version silently wrong."""
        template, threshold = self.template, self.threshold
        broken = [
            (template is None) == (self.query is None),
            template is not None and threshold is None,
            threshold is not None and template is None,
            (self.query is None) != (self.success_condition is None),
            self.class_ is not None and template not in CLASS_TEMPLATES,
            threshold is not None and template in FRACTION_TEMPLATES and not 0 <= threshold <= 1,
            threshold is not None and threshold < 0,
            self.min_samples != DEFAULT_MIN_SAMPLES and template not in SAMPLED_TEMPLATES,
        ]
        for rule, failed in zip(ANALYSIS_METRIC_RULES, broken, strict=True):
            if failed:
                raise ValueError(rule["message"])
        return self


class AnalysisSpec(SpecModel):
    """How the canary (and, after promotion, the stable version) is judged."""

    interval: AnalysisInterval = Field(
        default="30s",
        description="Time between two measurements (1s to 1h, whole units), and the range of the built-in "
        "templates' queries when it is a number of minutes.",
    )
    failure_limit: int = Field(default=2, ge=1, le=100, description="Failed measurements that trigger a rollback.")
    inconclusive_limit: int = Field(
        default=3, ge=1, le=100, description="Inconclusive measurements (no data) that pause the rollout."
    )
    metrics: list[AnalysisMetric] = Field(
        default_factory=list,
        max_length=16,
        description="What is measured; empty: errorRate < 5 % and latencyP95 < 0.5 s.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


DEFAULT_GUARD_WINDOW = "10m"
GUARD_WINDOW_RULE = {
    "rule": f"self.enabled || !has(self.window) || self.window == '{DEFAULT_GUARD_WINDOW}'",
    "fieldPath": ".window",
    "message": "window applies only when the guard is enabled",
}


class PostPromotionSpec(SpecModel):
    """Keep judging the new stable version after it reached 100 %."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [GUARD_WINDOW_RULE]}}

    enabled: bool = Field(default=True, description="Whether the guard runs.")
    window: GuardWindow = Field(
        default=DEFAULT_GUARD_WINDOW, description="How long after promotion the version is still judged (1m to 168h)."
    )

    @model_validator(mode="after")
    def _window_only_when_enabled(self) -> PostPromotionSpec:
        """A window for a guard that never runs is a mistake the user would never see (the API server fills
        in the default, so only another value can be told apart)."""
        if not self.enabled and self.window != DEFAULT_GUARD_WINDOW:
            raise ValueError(GUARD_WINDOW_RULE["message"])
        return self


class ScalingPolicy(SpecModel):
    """How much the replica count may change within a period (autoscaling/v2 HPAScalingPolicy)."""

    type: Literal["Pods", "Percent"] = Field(description="Pods: a number of pods; Percent: of the current replicas.")
    value: int = Field(ge=1, le=1000, description="The number of pods, or the percent.")
    period_seconds: int = Field(ge=1, le=1800, description="The period the change is allowed in (1 to 1800 s).")


class ScalingRules(SpecModel):
    """Scaling in one direction (autoscaling/v2 HPAScalingRules); a field left out keeps the operator's default."""

    stabilization_window_seconds: int | None = Field(
        default=None, ge=0, le=3600, description="Recommendations of this past window are considered (0 to 3600 s)."
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None, description="Which policy applies when several do; Disabled: never scale in this direction."
    )
    policies: list[ScalingPolicy] | None = Field(default=None, min_length=1, max_length=10, description="Policies.")


class ScalingBehavior(SpecModel):
    """Overrides of the autoscaler's behaviour; defaults: scale up at once (100 % or 4 pods per 15 s),
    scale down after 5 minutes of lower demand, by at most half the pods a minute."""

    scale_up: ScalingRules | None = Field(default=None, description="Scaling out.")
    scale_down: ScalingRules | None = Field(default=None, description="Scaling in.")


class AutoscalingSpec(SpecModel):
    """Replicas that follow demand: the operator owns a HorizontalPodAutoscaler targeting this
    ModelDeployment (its scale subresource), which sets spec.replicas between the bounds."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                exactly_one_rule(
                    ["cpuUtilization", "requestsPerSecond"], "set exactly one of cpuUtilization or requestsPerSecond"
                ),
                {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"},
            ]
        }
    }

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest server pods.")
    max_replicas: int = Field(ge=1, le=100, description="Most server pods.")
    cpu_utilization: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Target average CPU use of the server pods, in percent of their CPU request "
        "(needs server.resources.requests.cpu and a metrics API, e.g. metrics-server).",
    )
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        le=100000,
        description="Target inference requests per second per pod, from the servers' own mlops_requests_total "
        "through the custom metrics API as mlops_requests_per_second (e.g. prometheus-adapter; "
        "docs/autoscaling.md has its rule).",
    )
    behavior: ScalingBehavior | None = Field(default=None, description="Overrides of the scaling behaviour.")


CaptureAge = bounded_duration("1h", "8760h", whole_units=True)


class CaptureRetention(SpecModel):
    """How much captured data the servers keep: older batches go first, then the oldest beyond the size."""

    max_age: CaptureAge = Field(
        default="168h", description="Captured batches older than this are removed (1h to 8760h)."
    )
    max_megabytes: int = Field(
        default=1024, ge=1, le=1_048_576, description="The captured batches of this ModelDeployment in all, at most."
    )


class CaptureSpec(SpecModel):
    """Keep the production data: the rows the servers predicted on (request id, version, time, features,
    prediction) and the labels posted back by request id, in the artifact store (object storage), for a
    Dataset source `capture` to train on."""

    enabled: bool = Field(default=True, description="Whether the servers capture.")
    sample_rate: float = Field(
        default=1.0, gt=0, le=1, description="Share of the inference requests captured (whole requests)."
    )
    retention: CaptureRetention = Field(default_factory=CaptureRetention, description="Retention bounds.")


TriggerWindow = bounded_duration("1m", "168h", whole_units=True)
RetrainingCooldown = bounded_duration("1m", "720h")
TriggerCheckInterval = bounded_duration("10s", "1h", whole_units=True)


class DriftTrigger(SpecModel):
    """Retrain when drift stays above a threshold for a duration."""

    threshold: float = Field(
        gt=0, le=100, description="PSI above which the served version has drifted (0.2: a real shift)."
    )
    for_: TriggerWindow = Field(default="10m", alias="for", description="How long drift must stay above the threshold.")
    on: Literal["features", "predictions"] = Field(
        default="features", description="features: the largest feature PSI; predictions: the predictions' PSI."
    )


QUALITY_BOUND_RULES = [
    {
        "rule": f"!(self.template in {list(CLASSIFIER_TEMPLATES)}) || (self.bound >= 0.0 && self.bound <= 1.0)",
        "fieldPath": ".bound",
        "message": f"the bound of {', '.join(CLASSIFIER_TEMPLATES)} is a fraction from 0 to 1 (80 % is 0.8)",
    },
    {
        "rule": "self.bound >= 0.0",
        "fieldPath": ".bound",
        "message": "bound must not be negative: mae and rmse never are",
    },
]


class QualityTrigger(SpecModel):
    """Retrain when live (or estimated) quality over a duration is worse than a bound."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": QUALITY_BOUND_RULES}}

    template: Literal["accuracy", "precision", "recall", "f1", "estimatedAccuracy", "mae", "rmse"] = Field(
        description="An analysis template on the served version: accuracy-like ones below the bound trigger, "
        "mae and rmse above it."
    )
    bound: float = Field(description="The bound (a minimum for accuracy-like templates, a maximum for errors).")
    for_: TriggerWindow = Field(default="10m", alias="for", description="The window the metric is computed over.")
    min_samples: int = Field(default=30, ge=1, le=1_000_000, description="No trigger on fewer labelled predictions.")

    @model_validator(mode="after")
    def _bound_within_the_metrics_range(self) -> QualityTrigger:
        """A bound the metric can never cross (80 for 80 %) fires the trigger always, or never."""
        broken = [self.template in CLASSIFIER_TEMPLATES and not 0 <= self.bound <= 1, self.bound < 0]
        for rule, failed in zip(QUALITY_BOUND_RULES, broken, strict=True):
            if failed:
                raise ValueError(rule["message"])
        return self


class RetrainingTriggers(SpecModel):
    """What starts a retraining run; any one of them does."""

    drift: DriftTrigger | None = Field(default=None, description="Drift above a threshold for a duration.")
    quality: QualityTrigger | None = Field(default=None, description="Live or estimated quality beyond a bound.")
    new_dataset_version: bool = Field(
        default=False, description="A new version of the template's Dataset (its status.version changed)."
    )
    schedule: str | None = Field(
        default=None, max_length=128, pattern=CRON_PATTERN, description="A cron schedule, in UTC (e.g. '0 3 * * 1')."
    )

    @model_validator(mode="after")
    def _schedule_is_cron(self) -> RetrainingTriggers:
        if self.schedule:
            parse_cron(self.schedule)  # a ValueError naming the field that is wrong
        return self


RETRAINING_RULES = [
    {
        "rule": "has(self.triggers.drift) || has(self.triggers.quality) || "
        "(has(self.triggers.newDatasetVersion) && self.triggers.newDatasetVersion) || has(self.triggers.schedule)",
        "message": "retraining needs at least one trigger",
    },
    {
        "rule": "!has(self.triggers.quality) || "
        + _regressor_fits("self.triggers.quality.template", "self.template.model.estimator"),
        "fieldPath": ".triggers.quality.template",
        "message": f"triggers.quality.template must measure the template's estimator: {_LABELLED_TASK_WORDS}",
    },
    {
        "rule": "!has(self.template.datasetRef.version)",
        "fieldPath": ".template.datasetRef.version",
        "message": "a retraining template must not pin datasetRef.version: every retrained run would train on the "
        "same data again",
    },
]


class RetrainingSpec(SpecModel):
    """Continuous training: TrainingRuns the operator creates from a template when a trigger fires; each
    goes through its ordinary gates (it must beat the champion) and, promoted, through this canary."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": RETRAINING_RULES}}

    mode: Literal["Auto", "Suggest"] = Field(
        default="Suggest",
        description="Auto: create the TrainingRun; Suggest: record what would be done, create nothing.",
    )
    template: TrainingRunSpec = Field(description="The spec of every TrainingRun created (a TrainingRun's spec).")
    triggers: RetrainingTriggers = Field(description="When to retrain.")
    cooldown: RetrainingCooldown = Field(default="1h", description="No new run sooner than this after the last one.")
    max_per_day: int = Field(default=3, ge=1, le=100, description="Most runs created in any 24 hours.")
    check_interval: TriggerCheckInterval = Field(default="1m", description="How often the triggers are evaluated.")

    @model_validator(mode="after")
    def _triggers_and_template_fit(self) -> RetrainingSpec:
        """The CRD's rules in the same words: a trigger on a metric the model has no data for never fires,
        and a pinned version makes every retrained run train on the same data."""
        triggers, estimator = self.triggers, self.template.model.estimator
        broken = [
            not (triggers.drift or triggers.quality or triggers.new_dataset_version or triggers.schedule),
            triggers.quality is not None and not _template_fits(triggers.quality.template, estimator),
            self.template.dataset_ref.version is not None,
        ]
        for rule, failed in zip(RETRAINING_RULES, broken, strict=True):
            if failed:
                raise ValueError(rule["message"])  # each message names its field
        return self


class ModelDeploymentSpec(SpecModel):
    """What the user wants: a model served by N replicas, updated through canary steps."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.strategy) || !has(self.strategy.canary) || !has(self.strategy.canary.steps)"
                    " || self.strategy.canary.steps.all(s, !has(s.analysis) || !has(s.analysis.metrics)"
                    " || s.analysis.metrics.all(m,"
                    " (has(self.analysis) && has(self.analysis.metrics) && self.analysis.metrics.size() > 0)"
                    " ? self.analysis.metrics.exists(d, d.name == m)"
                    f" : m in {list(DEFAULT_METRIC_NAMES)}))",
                    "message": "strategy.canary.steps[].analysis.metrics must name metrics of analysis.metrics "
                    f"(without any, the defaults {' and '.join(DEFAULT_METRIC_NAMES)})",
                },
                {
                    "rule": "!has(self.retraining) || (has(self.model.name) && "
                    "self.retraining.template.model.name == self.model.name)",
                    "message": "retraining needs model.name (the champion this ModelDeployment follows), and its "
                    "template must train that model",
                },
                {
                    "rule": "!has(self.autoscaling) || !has(self.autoscaling.cpuUtilization) || "
                    "(has(self.server) && has(self.server.resources) && has(self.server.resources.requests) "
                    "&& 'cpu' in self.server.resources.requests)",
                    "message": "autoscaling.cpuUtilization is a percent of the CPU request: set "
                    "server.resources.requests.cpu",
                },
                {
                    "rule": "!has(self.retraining) || !has(self.analysis) || !has(self.analysis.metrics) || "
                    "self.analysis.metrics.all(m, !has(m.template) || "
                    f"!(m.template in {list(SAMPLED_TEMPLATES)}) || "
                    f"{_regressor_fits('m.template', 'self.retraining.template.model.estimator')})",
                    "fieldPath": ".analysis.metrics",
                    "message": "analysis.metrics[].template must measure the estimator retraining trains: "
                    f"{_LABELLED_TASK_WORDS}",
                },
            ]
        }
    }

    model: ModelSelector = Field(description="The model to serve: a model name's champion, or one TrainingRun.")
    replicas: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Server pods in all (split between stable and canary during a rollout); the scale "
        "subresource sets it (kubectl scale, or the autoscaler when autoscaling is set).",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Let a HorizontalPodAutoscaler set replicas from CPU use or request rate."
    )
    capture: CaptureSpec | None = Field(default=None, description="Capture production data for training.")
    retraining: RetrainingSpec | None = Field(
        default=None, description="Create TrainingRuns of this model when drift or quality triggers fire."
    )
    server: ServerSpec = Field(default_factory=ServerSpec, description="Model server settings.")
    strategy: StrategySpec = Field(default_factory=StrategySpec, description="Rollout strategy.")
    traffic_routing: TrafficRouting = Field(default_factory=TrafficRouting, description="Traffic splitting.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Metrics that judge a version.")
    post_promotion: PostPromotionSpec = Field(default_factory=PostPromotionSpec, description="Guard after 100 %.")
    prometheus_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Prometheus HTTP API base URL; default: the operator's configured one.",
        json_schema_extra=http_url_rule("prometheusUrl"),
    )
    paused: bool = Field(default=False, description="Freeze the rollout where it is.")
    progress_deadline_seconds: int = Field(
        default=300, ge=10, le=3600, description="How long canary pods may take to become ready before a rollback."
    )

    @model_validator(mode="after")
    def _steps_name_defined_metrics(self) -> ModelDeploymentSpec:
        defined = {m.name for m in self.analysis.metrics}
        known = defined or set(DEFAULT_METRIC_NAMES)
        for index, step in enumerate(self.strategy.canary.steps):
            unknown = sorted(set(step.analysis.metrics) - known) if step.analysis else []
            if unknown:
                where = f"spec.analysis.metrics defines {sorted(defined)}"
                if not defined:
                    where = f"spec.analysis.metrics is empty, so only the defaults {list(DEFAULT_METRIC_NAMES)} exist"
                raise ValueError(f"strategy.canary.steps[{index}].analysis.metrics names {unknown}, but {where}")
        return self

    @model_validator(mode="after")
    def _references_hold(self) -> ModelDeploymentSpec:
        """The CRD's rules across the spec, in the model: a spec that got past an older CRD is InvalidSpec."""
        retraining = self.retraining
        if retraining is not None and self.model.name != retraining.template.model.name:
            raise ValueError(
                "retraining needs model.name (the champion this ModelDeployment follows), and its template must "
                "train that model"
            )
        requests = (self.server.resources.requests if self.server.resources else None) or {}
        if self.autoscaling is not None and self.autoscaling.cpu_utilization is not None and "cpu" not in requests:
            raise ValueError(
                "autoscaling.cpuUtilization is a percent of the CPU request: set server.resources.requests.cpu"
            )
        for index, metric in enumerate(self.analysis.metrics if retraining is not None else []):
            estimator = retraining.template.model.estimator
            if metric.template and not _template_fits(metric.template, estimator):
                raise ValueError(
                    f"analysis.metrics[{index}].template: {metric.template} cannot measure {estimator}, the "
                    f"estimator retraining trains ({_LABELLED_TASK_WORDS})"
                )
        return self


class AnalysisResult(StatusModel):
    """The last measurement of one metric."""

    metric: str = Field(description="Name of the analysis metric.")
    phase: Literal["Successful", "Failed", "Inconclusive", "Error"] = Field(description="Verdict.")
    value: float | None = Field(default=None, description="Measured value, if any.")
    message: str = Field(default="", description="Why, in words.")
    measured_at: Timestamp = Field(description="When it was measured.")


class VersionStatus(StatusModel):
    """One served version of the model (stable or canary)."""

    version: str = Field(description="Model version: the TrainingRun's name.")
    model_uri: str = Field(default="", description="Artifact-store URI of the model.")
    sha256: str = Field(default="", description="sha256 of the model file.")
    signature_sha256: str | None = Field(
        default=None, description="sha256 of the version's input signature (features, order, types)."
    )
    weight: int = Field(default=0, description="Share of traffic in percent, as achieved.")
    replicas: int = Field(default=0, description="Desired pods.")
    ready_replicas: int = Field(default=0, description="Ready pods.")


class CanaryStatus(VersionStatus):
    """The version being rolled out, and where the rollout is."""

    input_schema_changed: str | None = Field(
        default=None,
        description="Set while the canary takes other inputs than the stable version (its signature differs): it "
        "gets no traffic until approved (kubectl mlops promote) or spec.strategy.canary.allowInputSchemaChange.",
    )
    step_index: int = Field(default=0, description="Index of the current step in spec.strategy.canary.steps.")
    step_started_at: Timestamp | None = Field(default=None, description="When the current step began.")
    pause_started_at: Timestamp | None = Field(default=None, description="When the current pause began.")
    started_at: Timestamp | None = Field(default=None, description="When this rollout began.")
    successes: int = Field(default=0, description="Successful measurements in this rollout.")
    failures: int = Field(default=0, description="Failed measurements in this rollout.")
    inconclusives: int = Field(default=0, description="Consecutive inconclusive measurements.")
    step_successes: int = Field(default=0, description="Successful measurements during the current step.")
    last_analysis_at: Timestamp | None = Field(default=None, description="When the analysis last ran.")
    scaled_at: Timestamp | None = Field(
        default=None,
        description="When the canary last needed more pods (a step, the total scaled out, or ready pods lost, "
        "as when their node goes): its progress deadline counts from here or from the step's start, whichever "
        "is later.",
    )


class Degradation(StatusModel):
    """Why the last rollback happened."""

    reason: str = Field(description="CamelCase reason (AnalysisFailed, ProgressDeadlineExceeded, Aborted, ...).")
    message: str = Field(default="", description="The metric and value, or what was not ready.")


class HistoryEntry(StatusModel):
    """A finished rollout."""

    version: str = Field(description="Model version rolled out.")
    outcome: Literal["Promoted", "RolledBack", "Aborted"] = Field(description="How it ended.")
    reason: str = Field(default="", description="Why, with the metric and value for a rollback.")
    at: Timestamp = Field(description="When it ended.")


class RetrainingEvent(StatusModel):
    """A trigger that fired, its evidence, and what was done."""

    at: Timestamp = Field(description="When.")
    trigger: str = Field(description="drift, quality, newDatasetVersion or schedule.")
    metric: str = Field(default="", description="The metric judged (PromQL template or source).")
    value: float | None = Field(default=None, description="Its value.")
    bound: float | None = Field(default=None, description="The bound it crossed.")
    window: str = Field(default="", description="The window it was judged over.")
    message: str = Field(default="", description="The evidence in words.")
    decision: Literal["Created", "Suggested"] = Field(description="Created a TrainingRun, or (Suggest) only recorded.")
    run: str = Field(default="", description="The TrainingRun created (or that would be).")


class RetrainingStatus(StatusModel):
    """Continuous training: what triggered, what was created, what holds it."""

    created: int = Field(default=0, description="TrainingRuns created so far (numbers their names).")
    schedule_from: Timestamp | None = Field(
        default=None,
        description="The moment the schedule counts from: when retraining was first evaluated, or the last "
        "scheduled moment that fired (written only then, so an idle object is never rewritten).",
    )
    dataset_version: str | None = Field(default=None, description="The template Dataset's version last seen.")
    waiting: str | None = Field(default=None, description="Why a trigger that fired created nothing (yet).")
    history: list[RetrainingEvent] = Field(default_factory=list, description="Triggers that fired, newest first.")


class ModelDeploymentStatus(StatusModel):
    """What is true about the ModelDeployment, written only by the operator."""

    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    replicas: int = Field(default=0, description="Server pods of both versions (the scale subresource's status).")
    selector: str = Field(default="", description="Label selector of the server pods (the scale subresource's).")
    autoscaler: str | None = Field(default=None, description="What the HorizontalPodAutoscaler reports, in words.")
    capture: str | None = Field(default=None, description="Where production data is captured, or why it is not.")
    retraining: RetrainingStatus | None = Field(default=None, description="Continuous training.")
    phase: str | None = Field(
        default=None,
        description="Summary for printer columns: Pending, Progressing, Paused, Healthy, Degraded.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Available, Progressing and Degraded conditions."
    )
    stable: VersionStatus | None = Field(default=None, description="The version serving most traffic.")
    canary: CanaryStatus | None = Field(default=None, description="The version being rolled out, if any.")
    promoted_at: Timestamp | None = Field(default=None, description="When the stable version reached 100 %.")
    last_good: VersionStatus | None = Field(
        default=None, description="The version before the last promotion: where the post-promotion guard rolls back to."
    )
    last_analysis_at: Timestamp | None = Field(default=None, description="When the stable version was last judged.")
    guard_failures: int = Field(default=0, description="Failed measurements of the stable version since promotion.")
    pause_reason: str | None = Field(
        default=None, description="Why the rollout holds: PauseStep, InconclusiveAnalysis or SpecPaused."
    )
    handled_commands: dict[str, str] = Field(
        default_factory=dict, description="Tokens of the promote/abort/resume annotations already acted on."
    )
    degraded: Degradation | None = Field(default=None, description="Why the last rollback happened.")
    routing: str | None = Field(default=None, description="The traffic split in words; HTTPRoute problems show here.")
    server_upgrade: str | None = Field(
        default=None,
        description="While the servers wait for or roll onto a pod template only the operator changed (an upgrade), "
        "in words (chart serverUpgrades.maxConcurrent); `stalled: …` when the new pods did not become ready "
        "(e.g. they refuse the version on the new image), with what they said: the old pods serve on.",
    )
    last_analysis: list[AnalysisResult] = Field(default_factory=list, description="Latest measurement per metric.")
    receipt_key_secret: str | None = Field(
        default=None,
        description="The Secret (created by the operator, never read by it) whose key the servers sign feedback "
        "receipts with.",
    )
    failed_versions: list[str] = Field(
        default_factory=list, description="Versions rolled back here; not retried automatically."
    )
    history: list[HistoryEntry] = Field(default_factory=list, description="Finished rollouts, newest first.")
