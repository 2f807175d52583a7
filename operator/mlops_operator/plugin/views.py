"""What `kubectl mlops status` and `history` print: a ModelDeployment's status in words.

Pure functions of the object, table-tested without a cluster. Status is parsed into the API's status
models; the spec too, but an invalid spec must not hide the status, so the views also work without
it. Every "how long is left" comes from `rollout.timing`, the rules the operator itself follows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..api.clock import parse_time, utc_now
from ..api.common import Condition
from ..api.modeldeployment import (
    AnalysisResult,
    CanaryStatus,
    CanaryStep,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    RetrainingEvent,
    VersionStatus,
)
from ..api.reasons import ConditionStatus, ConditionType
from ..rollout import timing
from ..rollout.canary import (
    PAUSE_INCONCLUSIVE,
    PAUSE_INPUT_SCHEMA,
    PAUSE_SPEC,
    PAUSE_STEP,
    PAUSE_TARGET_MISSING,
)
from .args import PluginError

LABEL_WIDTH = 18  # the values of `status` start in one column, whichever labels a view has


def parse_status(model: type[BaseModel], body: dict[str, Any]) -> Any:
    """The object's status as `model`; a status that does not fit is a one-line error."""
    try:
        return model.model_validate(body.get("status") or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        name = (body.get("metadata") or {}).get("name", "?")
        raise PluginError(f"status of {name} does not parse: status.{where}: {first['msg']}") from None


@dataclass(frozen=True)
class Deployment:
    """A ModelDeployment as the views read it: metadata as sent, spec and status parsed."""

    meta: dict[str, Any]
    spec_body: dict[str, Any]
    spec: ModelDeploymentSpec | None  # None: the spec does not validate (it slipped past the schema)
    status: ModelDeploymentStatus
    has_status: bool  # False until the operator first wrote status

    @classmethod
    def parse(cls, md: dict[str, Any]) -> Deployment:
        spec_body = md.get("spec") or {}
        try:
            spec: ModelDeploymentSpec | None = ModelDeploymentSpec.model_validate(spec_body)
        except ValidationError:
            spec = None
        status = parse_status(ModelDeploymentStatus, md)
        return cls(md.get("metadata") or {}, spec_body, spec, status, bool(md.get("status")))

    def hint(self, command: str) -> str:
        """The plugin command line that runs `command` on this object."""
        namespace = f" -n {self.meta['namespace']}" if self.meta.get("namespace") else ""
        return f"kubectl mlops {command} {self.meta.get('name', 'NAME')}{namespace}"


def format_duration(total: float) -> str:
    """35s, 4m12s, 1h5m."""
    whole = max(0, round(total))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _until(moment: dt.datetime, now: dt.datetime) -> float:
    return (moment - now).total_seconds()


def _ago(text: str | None, now: dt.datetime) -> str:
    """A timestamp as written, with how long ago it was; shown as is when it does not parse."""
    try:
        moment = parse_time(text)
    except ValueError:
        moment = None
    if moment is None:
        return str(text or "-")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return f"{text} ({format_duration((now - moment).total_seconds())} ago)"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _table(headers: list[str], rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append((indent + "   ".join([*cells, str(row[-1])])).rstrip())
    return lines


def _fields(fields: list[tuple[str, str]]) -> str:
    width = max(LABEL_WIDTH, *(len(label) + 2 for label, _ in fields))
    return "\n".join(f"{(label + ':').ljust(width)}{value}" for label, value in fields)


def describe_step(step: CanaryStep) -> str:
    """One canary step in words: `setWeight 20%`, `pause 1m`, `pause until promoted`, `analysis (errors)`."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}%"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause until promoted"
    metrics = step.analysis.metrics if step.analysis else []
    return f"analysis ({', '.join(metrics)})" if metrics else "analysis"


def desired_weight(steps: list[CanaryStep], step_index: int) -> int:
    """The canary weight the steps ask for at a step: the last setWeight reached, 100 once all are done."""
    return 100 if step_index >= len(steps) else timing.steps_weight(steps, step_index)


def step_activity(md: Deployment, canary: CanaryStatus, now: dt.datetime) -> str:
    """What the rollout is doing at its current step, in words, with the command that moves it on."""
    spec, pause = md.spec, md.status.pause_reason
    if pause == PAUSE_SPEC:
        return "frozen: spec.paused is true (set it to false where the spec is managed)"
    if pause == PAUSE_INCONCLUSIVE:
        return (
            f"paused: {canary.inconclusives} inconclusive measurements in a row (no data); "
            f"continue with `{md.hint('resume')}`, skip the step with promote, or abort"
        )
    if pause == PAUSE_INPUT_SCHEMA:
        return (
            f"held without traffic: {canary.input_schema_changed or 'its input signature changed'}; "
            f"roll it out anyway with `{md.hint('promote')}`, or abort"
        )
    if pause == PAUSE_TARGET_MISSING:
        return (
            f"holding: {canary.version} is no longer the version to roll out (its TrainingRun is gone, rolled "
            f"back or no longer the champion); still measured; abort with `{md.hint('abort')}`"
        )
    if spec is None:
        return "unknown: the spec is invalid"
    step = timing.current_step(spec, canary)
    if step is None:
        if timing.awaiting_evidence(spec, canary):
            return "all steps done: waiting for a passing measurement before becoming stable"
        return "all steps done: becoming stable"
    if step.set_weight is not None:
        words = f"waiting for canary pods ({canary.ready_replicas}/{canary.replicas} ready)"
        deadline = timing.progress_deadline(spec, canary)
        if deadline is not None:
            left = _until(deadline, now)
            words += f"; rolled back in {format_duration(left)} unless ready" if left > 0 else "; deadline passed"
        return words
    if step.pause is not None:
        if step.pause.duration is None or pause == PAUSE_STEP:
            return f"waiting for `{md.hint('promote')}`"
        end = timing.pause_end(spec, canary)
        if end is None:
            return "starting"
        left = _until(end, now)
        if left > 0:
            return f"{format_duration(left)} left"
        return (
            "pause over: waiting for a measurement with data" if timing.awaiting_measurement(canary) else "pause over"
        )
    words = "waiting for a passing measurement"
    due = timing.next_measurement(spec, md.status)
    if due is not None:
        left = _until(due, now)
        words += f"; next in {format_duration(left)}" if left > 0 else "; next measurement due now"
    return words


def _ready_line(conditions: list[Condition]) -> str:
    ready = next((c for c in conditions if c.type == ConditionType.READY), None)
    if ready is None:
        return "Unknown"
    message = f": {ready.message}" if ready.message else ""
    return f"{ready.status}, {ready.reason}{message}"


def _pods(version: VersionStatus) -> str:
    return f"pods {version.ready_replicas}/{version.replicas} ready"


def _model_words(spec_body: dict[str, Any]) -> str:
    # From the spec as sent: the selector is worth showing even when the spec does not validate.
    selector = spec_body.get("model") or {}
    if selector.get("trainingRun"):
        return f"TrainingRun {selector['trainingRun']} (pinned)"
    return f"{selector.get('name', '?')} (follows its champion)"


def trained_with(environment: dict[str, str]) -> str:
    """A version's recorded environment in one line: the libraries that decide its predictions, the image."""
    names = {"scikitLearn": "scikit-learn", "numpy": "numpy", "scipy": "scipy", "skops": "skops", "python": "Python"}
    words = ", ".join(f"{label} {environment[key]}" for key, label in names.items() if environment.get(key))
    return words + (f" (image {environment['image']})" if environment.get("image") else "")


def _libraries_line(conditions: list[Condition]) -> str | None:
    found = next((c for c in conditions if c.type == ConditionType.ENVIRONMENT_DIFFERS), None)
    if found is None:
        return None
    if found.status == ConditionStatus.TRUE:
        return found.message
    return "every version served runs on the libraries that trained it"


def render_status(
    md: dict[str, Any], *, now: dt.datetime | None = None, environments: dict[str, dict[str, str]] | None = None
) -> str:
    """A readable view of a ModelDeployment: versions, weights, step, last analysis, degradation;
    `environments`: what each version was trained with (its TrainingRun's status.model.environment)."""
    now = now or utc_now()
    deployment = Deployment.parse(md)
    meta, status, spec = deployment.meta, deployment.status, deployment.spec
    fields = [
        ("Name", meta.get("name", "?")),
        ("Namespace", meta.get("namespace", "?")),
        ("Model", _model_words(deployment.spec_body)),
    ]
    if not deployment.has_status:
        fields.append(("Phase", "no status yet: the operator has not reconciled it (is it running?)"))
        return _fields(fields)
    fields += [("Phase", status.phase or "Unknown"), ("Ready", _ready_line(status.conditions))]
    generation, observed = meta.get("generation"), status.observed_generation
    if generation and observed and observed < generation:
        fields.append(("Note", f"status is of generation {observed}, the spec is at {generation}: not yet reconciled"))
    stable, canary = status.stable, status.canary
    width = max(len(v.version) if v else 0 for v in (stable, canary))
    if stable:
        fields.append(("Stable", f"{stable.version:<{width}}   weight {stable.weight}%   {_pods(stable)}"))
    else:
        fields.append(("Stable", "none yet"))
    if canary:
        fields += _canary_fields(deployment, canary, now, width=width)
    elif stable:
        fields.append(("Canary", "none: no rollout in progress"))
        guard = _guard_words(spec, status, now)
        if guard:
            fields.append(("Guard", guard))
    for version in (v for v in (stable, canary) if v and (environments or {}).get(v.version)):
        fields.append(("Trained with", f"{version.version}: {trained_with((environments or {})[version.version])}"))
    libraries = _libraries_line(status.conditions)
    if libraries:
        fields.append(("Libraries", libraries))
    if status.routing:
        fields.append(("Routing", status.routing))
    if status.server_upgrade:
        fields.append(("Server upgrade", status.server_upgrade))
    if status.autoscaler:
        fields.append(("Autoscaler", status.autoscaler))
    if status.capture:
        fields.append(("Capture", status.capture))
    retraining = status.retraining
    if retraining is not None and retraining.waiting:
        fields.append(("Retraining", retraining.waiting))
    degraded = status.degraded
    if degraded:
        fields.append(("Degraded", f"{degraded.reason}: {degraded.message}" if degraded.message else degraded.reason))
    if status.failed_versions:
        fields.append(("Failed versions", ", ".join(status.failed_versions) + " (not retried automatically)"))
    lines = [_fields(fields)]
    if spec and canary:
        lines += ["", "Steps:", *_step_table(spec.strategy.canary.steps, canary.step_index)]
    if status.last_analysis:
        lines += ["", "Last analysis:", *_analysis_table(status.last_analysis, now)]
    if retraining is not None and retraining.history:
        lines += ["", "Retraining:", *_retraining_table(retraining.history, now)]
    return "\n".join(lines)


def _retraining_table(history: list[RetrainingEvent], now: dt.datetime) -> list[str]:
    rows = [
        [
            _ago(e.at, now),
            e.decision,
            e.run,
            e.trigger,
            e.message or (f"{e.metric} {_value(e.value)} (bound {_value(e.bound)}, {e.window})" if e.metric else ""),
        ]
        for e in history[:5]
    ]
    return _table(["WHEN", "DECISION", "RUN", "TRIGGER", "EVIDENCE"], rows, indent="  ")


def _canary_fields(md: Deployment, canary: CanaryStatus, now: dt.datetime, *, width: int) -> list[tuple[str, str]]:
    spec = md.spec
    steps = spec.strategy.canary.steps if spec else []
    index = canary.step_index
    desired = f" (desired {desired_weight(steps, index)}%)" if spec else ""
    weight = f"weight {canary.weight}%{desired}"
    position = f"{min(index + 1, len(steps))}/{len(steps)}" if spec else f"{index + 1}"
    current = f" {describe_step(steps[index])}" if index < len(steps) else ""
    failed, inconclusive = f"{canary.failures} failed", f"{canary.inconclusives} inconclusive"
    if spec:
        failed += f" (rollback at {spec.analysis.failure_limit})"
        inconclusive += f" in a row (pause at {spec.analysis.inconclusive_limit})"
    fields = [
        ("Canary", f"{canary.version:<{width}}   {weight}   {_pods(canary)}"),
        ("Step", f"{position}{current}: {step_activity(md, canary, now)}"),
        ("Measurements", f"{canary.successes} successful, {failed}, {inconclusive}"),
    ]
    if canary.started_at:
        fields.append(("Started", _ago(canary.started_at, now)))
    return fields


def _step_table(steps: list[CanaryStep], index: int) -> list[str]:
    rows = []
    for number, step in enumerate(steps):
        mark, state = ("->", "current") if number == index else ("", "done" if number < index else "")
        rows.append([mark, str(number + 1), describe_step(step), state])
    return _table(["", "", "", ""], rows, indent="  ")[1:]


def _analysis_table(results: list[AnalysisResult], now: dt.datetime) -> list[str]:
    rows = [[r.metric, r.phase, _value(r.value), _ago(r.measured_at, now), r.message] for r in results]
    return _table(["METRIC", "PHASE", "VALUE", "MEASURED", "MESSAGE"], rows, indent="  ")


def _guard_words(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: dt.datetime) -> str | None:
    """The post-promotion guard in words while it is judging the new stable version."""
    end = timing.guard_window_end(spec, status, now) if spec else None
    if spec is None or end is None or status.stable is None or status.last_good is None:
        return None
    return (
        f"judging {status.stable.version} for {format_duration(_until(end, now))} more; "
        f"{status.guard_failures}/{spec.analysis.failure_limit} failed measurements "
        f"roll back to {status.last_good.version}"
    )


def render_history(md: dict[str, Any]) -> str:
    """The finished rollouts, newest first, with the rollout in progress on top."""
    deployment = Deployment.parse(md)
    status, spec = deployment.status, deployment.spec
    rows = []
    canary = status.canary
    if canary:
        total = f"/{len(spec.strategy.canary.steps)}" if spec else ""
        where = f"step {canary.step_index + 1}{total}, weight {canary.weight}%"
        rows.append([canary.started_at or "-", canary.version, "InProgress", where])
    for entry in status.history:
        rows.append([entry.at, entry.version, entry.outcome, entry.reason])
    if not rows:
        stable = status.stable.version if status.stable else None
        return f"No rollouts yet{f': {stable} has served since the start' if stable else ''}."
    return "\n".join(_table(["TIME", "VERSION", "EVENT", "REASON"], rows))
