"""`kubectl mlops`: read a ModelDeployment's rollout at a glance and steer it without editing spec.

Installed as the `kubectl-mlops` script, so kubectl finds it as a plugin when it is on PATH.
`status` and `history` render what the operator wrote in status; `promote`, `abort` and `resume` set
the command annotations (`mlops.dev/<command>`) to a fresh token, which the operator acts on once;
`approve` sets `mlops.dev/approved=true` on a TrainingRun waiting for manual promotion.

Rendering and planning are pure functions of the object (table-tested without a cluster); only
`connect`, `fetch` and `patch` talk to the API server. Every failure a user can cause (no such object,
no permission, no kubeconfig, an unreachable API server) ends in one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from . import __version__
from .api import GROUP, VERSION
from .api.modeldeployment import CanaryStep, ModelDeploymentSpec
from .registry import APPROVED_ANNOTATION, MODEL_LABEL
from .rollout.canary import COMMANDS, PAUSE_INCONCLUSIVE, PAUSE_SPEC, PAUSE_STEP, seconds

LABEL_WIDTH = 18  # the values of `status` start in one column, whichever labels a view has
REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class PluginError(Exception):
    """A failure explained in one line; the plugin prints it and exits 1."""


@dataclass(frozen=True)
class Kind:
    plural: str
    kind: str
    names: tuple[str, ...]  # what a user may write before the slash: md/iris, modeldeployment/iris, ...

    @property
    def resource(self) -> str:
        return f"{self.plural}.{GROUP}"


MODEL_DEPLOYMENT = Kind("modeldeployments", "ModelDeployment", ("md", "modeldeployment", "modeldeployments"))
TRAINING_RUN = Kind("trainingruns", "TrainingRun", ("tr", "trainingrun", "trainingruns"))
DATASET = Kind("datasets", "Dataset", ("dset", "dataset", "datasets"))
KINDS = (MODEL_DEPLOYMENT, TRAINING_RUN, DATASET)


# ------------------------------------------------------------------------------------------ parsing


def build_parser() -> argparse.ArgumentParser:
    # The connection options are accepted before and after the command, as kubectl accepts them.
    connection = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    connection.add_argument("--kubeconfig", help="path of the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    connection.add_argument("--context", help="kubeconfig context to use (default: its current context)")
    connection.add_argument(
        "-n", "--namespace", help="namespace of the object (default: the context's namespace, or default)"
    )
    parser = argparse.ArgumentParser(
        prog="kubectl mlops",
        description="Read and steer mlops.dev rollouts: ModelDeployment status and history, manual promote, "
        "abort and resume, and approval of TrainingRuns.",
        parents=[connection],
    )
    parser.add_argument("--version", action="version", version=f"kubectl-mlops {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, kind: Kind) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_, parents=[connection])
        sub.add_argument("name", metavar=kind.kind.upper(), help=f"name of the {kind.kind} (or {kind.names[0]}/NAME)")
        return sub

    command("status", "show a ModelDeployment's versions, weights, current step and last analysis", MODEL_DEPLOYMENT)
    command("history", "list a ModelDeployment's finished rollouts: time, version, outcome, reason", MODEL_DEPLOYMENT)
    for name, words in (
        ("promote", "skip the current canary step (a manual pause, a wait for pods, an analysis)"),
        ("abort", "roll the canary back: the stable version takes all traffic, the canary version is marked failed"),
        ("resume", "continue a rollout paused on inconclusive analysis"),
    ):
        sub = command(name, words, MODEL_DEPLOYMENT)
        sub.add_argument(
            "--force", action="store_true", default=False, help="set the annotation even if status says it does nothing"
        )
    command("approve", "approve a TrainingRun waiting for manual promotion (mlops.dev/approved=true)", TRAINING_RUN)
    return parser


def object_name(argument: str, kind: Kind) -> str:
    """The name in `iris` or `md/iris`; a TYPE/NAME of another type is refused."""
    if "/" not in argument:
        return argument
    type_, name = argument.split("/", 1)
    accepted = {*kind.names, kind.resource, *(f"{n}.{GROUP}" for n in kind.names)}
    if type_.lower() not in accepted or not name:
        raise PluginError(f"{argument} is not a {kind.kind} (expected NAME or {kind.names[0]}/NAME)")
    return name


def context_namespace(contexts: list[dict[str, Any]], active: dict[str, Any] | None, chosen: str | None) -> str | None:
    """The namespace set in the chosen (or the current) kubeconfig context, if any."""
    if chosen:
        found = next((c for c in contexts if c.get("name") == chosen), None)
        if found is None:
            raise PluginError(f"context {chosen} is not in the kubeconfig")
    else:
        found = active
    return ((found or {}).get("context") or {}).get("namespace") or None


# ---------------------------------------------------------------------------------------- rendering


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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


def _ago(text: Any, now: dt.datetime) -> str:
    moment = _parse_time(text)
    if moment is None:
        return str(text or "-")
    return f"{text} ({format_duration((now - moment).total_seconds())} ago)"


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _table(headers: list[str], rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append((indent + "   ".join([*cells, str(row[-1])])).rstrip())
    return lines


def _spec(md: dict[str, Any]) -> ModelDeploymentSpec | None:
    try:
        return ModelDeploymentSpec.model_validate(md.get("spec") or {})
    except ValidationError:
        return None


def _command_hint(command: str, md: dict[str, Any]) -> str:
    meta = md.get("metadata") or {}
    namespace = f" -n {meta['namespace']}" if meta.get("namespace") else ""
    return f"kubectl mlops {command} {meta.get('name', 'NAME')}{namespace}"


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
    if step_index >= len(steps):
        return 100
    weights = [s.set_weight for s in steps[: step_index + 1] if s.set_weight is not None]
    return weights[-1] if weights else 0


def step_activity(md: dict[str, Any], now: dt.datetime) -> str:
    """What the rollout is doing at its current step, in words, with the command that moves it on."""
    spec, status = _spec(md), md.get("status") or {}
    canary = status.get("canary") or {}
    pause = status.get("pauseReason")
    if pause == PAUSE_SPEC:
        return "frozen: spec.paused is true (set it to false where the spec is managed)"
    if pause == PAUSE_INCONCLUSIVE:
        return (
            f"paused: {canary.get('inconclusives', 0)} inconclusive measurements in a row (no data); "
            f"continue with `{_command_hint('resume', md)}`, skip the step with promote, or abort"
        )
    if spec is None:
        return "unknown: the spec is invalid"
    steps, index = spec.strategy.canary.steps, int(canary.get("stepIndex") or 0)
    if index >= len(steps):
        return "all steps done: becoming stable"
    step = steps[index]
    if step.set_weight is not None:
        ready, wanted = canary.get("readyReplicas", 0), canary.get("replicas", 0)
        words = f"waiting for canary pods ({ready}/{wanted} ready)"
        started = _parse_time(canary.get("stepStartedAt"))
        if started is not None:
            left = spec.progress_deadline_seconds - (now - started).total_seconds()
            words += f"; rolled back in {format_duration(left)} unless ready" if left > 0 else "; deadline passed"
        return words
    if step.pause is not None:
        if step.pause.duration is None or pause == PAUSE_STEP:
            return f"waiting for `{_command_hint('promote', md)}`"
        started = _parse_time(canary.get("pauseStartedAt"))
        if started is None:
            return "starting"
        left = seconds(step.pause.duration) - (now - started).total_seconds()
        return f"{format_duration(left)} left" if left > 0 else "pause over"
    words = "waiting for a passing measurement"
    last = _parse_time(canary.get("lastAnalysisAt"))
    if last is not None:
        due = seconds(spec.analysis.interval) - (now - last).total_seconds()
        words += f"; next in {format_duration(due)}" if due > 0 else "; next measurement due now"
    return words


def _ready_line(status: dict[str, Any]) -> str:
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return "Unknown"
    message = f": {ready['message']}" if ready.get("message") else ""
    return f"{ready.get('status', 'Unknown')}, {ready.get('reason', '')}{message}"


def _pods(version: dict[str, Any]) -> str:
    return f"pods {version.get('readyReplicas', 0)}/{version.get('replicas', 0)} ready"


def render_status(md: dict[str, Any], *, now: dt.datetime | None = None) -> str:
    """A readable view of a ModelDeployment: versions, weights, step, last analysis, degradation."""
    now = now or dt.datetime.now(dt.UTC)
    meta, status, spec = md.get("metadata") or {}, md.get("status") or {}, _spec(md)
    selector = (md.get("spec") or {}).get("model") or {}
    model = (
        f"TrainingRun {selector['trainingRun']} (pinned)"
        if selector.get("trainingRun")
        else f"{selector.get('name', '?')} (follows its champion)"
    )
    fields = [("Name", meta.get("name", "?")), ("Namespace", meta.get("namespace", "?")), ("Model", model)]
    if not status:
        fields.append(("Phase", "no status yet: the operator has not reconciled it (is it running?)"))
        return _fields(fields)
    fields += [("Phase", status.get("phase") or "Unknown"), ("Ready", _ready_line(status))]
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation and observed and observed < generation:
        fields.append(("Note", f"status is of generation {observed}, the spec is at {generation}: not yet reconciled"))
    stable, canary = status.get("stable"), status.get("canary")
    width = max(len(str((v or {}).get("version") or "")) for v in (stable, canary))
    if stable:
        fields.append(
            ("Stable", f"{stable.get('version', '?'):<{width}}   weight {stable.get('weight', 0)}%   {_pods(stable)}")
        )
    else:
        fields.append(("Stable", "none yet"))
    if canary:
        fields += _canary_fields(md, spec, canary, now, width=width)
    elif stable:
        fields.append(("Canary", "none: no rollout in progress"))
        guard = _guard_words(spec, status, now)
        if guard:
            fields.append(("Guard", guard))
    if status.get("routing"):
        fields.append(("Routing", status["routing"]))
    degraded = status.get("degraded")
    if degraded:
        reason = degraded.get("reason", "")
        fields.append(("Degraded", f"{reason}: {degraded['message']}" if degraded.get("message") else reason))
    if status.get("failedVersions"):
        fields.append(("Failed versions", ", ".join(status["failedVersions"]) + " (not retried automatically)"))
    lines = [_fields(fields)]
    if spec and canary:
        lines += ["", "Steps:", *_step_table(spec.strategy.canary.steps, int(canary.get("stepIndex") or 0))]
    if status.get("lastAnalysis"):
        lines += ["", "Last analysis:", *_analysis_table(status["lastAnalysis"], now)]
    return "\n".join(lines)


def _canary_fields(
    md: dict[str, Any], spec: ModelDeploymentSpec | None, canary: dict[str, Any], now: dt.datetime, *, width: int
) -> list[tuple[str, str]]:
    steps = spec.strategy.canary.steps if spec else []
    index = int(canary.get("stepIndex") or 0)
    desired = f" (desired {desired_weight(steps, index)}%)" if spec else ""
    weight = f"weight {canary.get('weight', 0)}%{desired}"
    position = f"{min(index + 1, len(steps))}/{len(steps)}" if spec else f"{index + 1}"
    current = f" {describe_step(steps[index])}" if index < len(steps) else ""
    failed, inconclusive = f"{canary.get('failures', 0)} failed", f"{canary.get('inconclusives', 0)} inconclusive"
    if spec:
        failed += f" (rollback at {spec.analysis.failure_limit})"
        inconclusive += f" in a row (pause at {spec.analysis.inconclusive_limit})"
    fields = [
        ("Canary", f"{canary.get('version', '?'):<{width}}   {weight}   {_pods(canary)}"),
        ("Step", f"{position}{current}: {step_activity(md, now)}"),
        ("Measurements", f"{canary.get('successes', 0)} successful, {failed}, {inconclusive}"),
    ]
    if canary.get("startedAt"):
        fields.append(("Started", _ago(canary["startedAt"], now)))
    return fields


def _step_table(steps: list[CanaryStep], index: int) -> list[str]:
    rows = []
    for number, step in enumerate(steps):
        mark, state = ("->", "current") if number == index else ("", "done" if number < index else "")
        rows.append([mark, str(number + 1), describe_step(step), state])
    return _table(["", "", "", ""], rows, indent="  ")[1:]


def _analysis_table(results: list[dict[str, Any]], now: dt.datetime) -> list[str]:
    rows = [
        [r.get("metric", "?"), r.get("phase", "?"), _value(r.get("value")), _ago(r.get("measuredAt"), now),
         r.get("message", "")]
        for r in results
    ]  # fmt: skip
    return _table(["METRIC", "PHASE", "VALUE", "MEASURED", "MESSAGE"], rows, indent="  ")


def _guard_words(spec: ModelDeploymentSpec | None, status: dict[str, Any], now: dt.datetime) -> str | None:
    """The post-promotion guard in words while it is judging the new stable version."""
    promoted, last_good = _parse_time(status.get("promotedAt")), status.get("lastGood")
    if spec is None or not spec.post_promotion.enabled or promoted is None or not last_good:
        return None
    left = seconds(spec.post_promotion.window) - (now - promoted).total_seconds()
    if left <= 0:
        return None
    return (
        f"judging {status['stable'].get('version')} for {format_duration(left)} more; "
        f"{status.get('guardFailures', 0)}/{spec.analysis.failure_limit} failed measurements "
        f"roll back to {last_good.get('version')}"
    )


def _fields(fields: list[tuple[str, str]]) -> str:
    width = max(LABEL_WIDTH, *(len(label) + 2 for label, _ in fields))
    return "\n".join(f"{(label + ':').ljust(width)}{value}" for label, value in fields)


def render_history(md: dict[str, Any]) -> str:
    """The finished rollouts, newest first, with the rollout in progress on top."""
    status = md.get("status") or {}
    rows = []
    canary = status.get("canary")
    if canary:
        spec = _spec(md)
        total = f"/{len(spec.strategy.canary.steps)}" if spec else ""
        where = f"step {int(canary.get('stepIndex') or 0) + 1}{total}, weight {canary.get('weight', 0)}%"
        rows.append([canary.get("startedAt") or "-", canary.get("version", "?"), "InProgress", where])
    for entry in status.get("history") or []:
        rows.append(
            [entry.get("at", "-"), entry.get("version", "?"), entry.get("outcome", "?"), entry.get("reason", "")]
        )
    if not rows:
        stable = (status.get("stable") or {}).get("version")
        return f"No rollouts yet{f': {stable} has served since the start' if stable else ''}."
    return "\n".join(_table(["TIME", "VERSION", "EVENT", "REASON"], rows))


# ------------------------------------------------------------------------------------------ commands


def new_token(now: dt.datetime | None = None, suffix: str | None = None) -> str:
    """A command token never used before: the UTC time and a random suffix (two requests in one second differ)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{suffix or secrets.token_hex(3)}"


def command_patch(command: str, token: str) -> dict[str, Any]:
    """The merge patch that requests `command` once: its annotation set to a fresh token."""
    return {"metadata": {"annotations": {COMMANDS[command]: token}}}


def approval_patch() -> dict[str, Any]:
    return {"metadata": {"annotations": {APPROVED_ANNOTATION: "true"}}}


def command_effect(command: str, md: dict[str, Any]) -> tuple[bool, str]:
    """(whether the command does something now, what it does or why it would not)."""
    status, name = md.get("status") or {}, (md.get("metadata") or {}).get("name", "?")
    canary, stable = status.get("canary"), (status.get("stable") or {}).get("version")
    if not canary:
        serving = f" (serving {stable})" if stable else ""
        return False, f"{name} has no rollout in progress{serving}: nothing to {command}"
    version, pause = canary.get("version"), status.get("pauseReason")
    if command == "abort":
        return True, f"{version} is rolled back: {stable} takes all traffic and {version} is not retried automatically"
    if command == "resume":
        if pause == PAUSE_INCONCLUSIVE:
            return True, f"the rollout of {version} continues after its inconclusive measurements"
        if pause == PAUSE_STEP:
            return False, f"{version} waits at a manual pause step, which resume does not move: use promote"
        if pause == PAUSE_SPEC:
            return False, f"{name} is frozen by spec.paused: set it to false where the spec is managed"
        return False, f"the rollout of {version} is not paused"
    spec = _spec(md)
    if spec is None:
        return True, "the current step is skipped"
    steps, index = spec.strategy.canary.steps, int(canary.get("stepIndex") or 0)
    if pause == PAUSE_SPEC:
        return False, f"{name} is frozen by spec.paused: set it to false first"
    current = f"step {index + 1}/{len(steps)} ({describe_step(steps[index])})" if index < len(steps) else "the rollout"
    if index + 1 >= len(steps):
        return True, f"{current} is skipped, which completes the rollout: {version} becomes stable at 100%"
    return True, f"{current} is skipped; the rollout goes on with step {index + 2} ({describe_step(steps[index + 1])})"


def pending_command(command: str, md: dict[str, Any]) -> str | None:
    """The token of an earlier request of the same command the operator has not acted on yet, if any."""
    annotations = (md.get("metadata") or {}).get("annotations") or {}
    handled = ((md.get("status") or {}).get("handledCommands") or {}).get(command)
    token = annotations.get(COMMANDS[command])
    return token if token and token != handled else None


def render_request(command: str, md: dict[str, Any], token: str, *, effect: str) -> str:
    meta = md.get("metadata") or {}
    lines = [
        f"{command} requested for ModelDeployment {meta.get('name')} in namespace {meta.get('namespace')} "
        f"({COMMANDS[command]}={token}).",
        f"The operator acts on it once: {effect}.",
    ]
    earlier = pending_command(command, md)
    if earlier:
        lines.append(f"An earlier {command} ({earlier}) was not acted on yet: this one replaces it (one {command}).")
    lines.append(f"Watch with: {_command_hint('status', md)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ApprovalPlan:
    patch: dict[str, Any] | None  # None: nothing to write
    message: str
    ok: bool  # False: the approval cannot have an effect (exit 1)


def plan_approval(run: dict[str, Any]) -> ApprovalPlan:
    """Whether approving this TrainingRun can promote it, and what to tell the user."""
    meta, spec, status = run.get("metadata") or {}, run.get("spec") or {}, run.get("status") or {}
    name = meta.get("name", "?")
    model = (spec.get("model") or {}).get("name") or (meta.get("labels") or {}).get(MODEL_LABEL, "?")
    policy = (spec.get("promotion") or {}).get("policy", "auto")
    promotion = status.get("promotion") or {}
    decision = promotion.get("decision")
    evidence = f" ({promotion['reason']}: {promotion['message']})" if promotion.get("message") else ""
    watch = f"Watch with: kubectl get tr -n {meta.get('namespace')} -l {MODEL_LABEL}={model} -L {GROUP}/promoted"
    if decision == "Promoted":
        return ApprovalPlan(None, f"TrainingRun {name} is already the champion of model {model}{evidence}.", True)
    if decision == "Superseded":
        return ApprovalPlan(
            None,
            f"TrainingRun {name} was the champion of {model} and has been superseded: approval "
            f"cannot bring it back (pin it with spec.model.trainingRun instead)",
            False,
        )
    if decision == "Rejected":
        return ApprovalPlan(
            None, f"TrainingRun {name} was rejected{evidence}: approval does not override its gates", False
        )
    if policy != "manual":
        return ApprovalPlan(None, f"TrainingRun {name} has promotion policy {policy}: it needs no approval", False)
    if status.get("phase") == "Failed":
        why = f" ({status['reason']}: {status.get('message', '')})" if status.get("reason") else ""
        return ApprovalPlan(None, f"TrainingRun {name} failed{why}: there is no model to approve", False)
    patch = approval_patch()
    if decision == "PendingApproval":
        words = (
            f"Approved TrainingRun {name}: it becomes the champion of model {model}, and ModelDeployments that "
            f"follow {model} roll it out."
        )
    else:
        words = (
            f"Approved TrainingRun {name} in advance: it becomes the champion of model {model} once it "
            "succeeds and passes its gates."
        )
    return ApprovalPlan(patch, f"{words}\n{watch}", True)


# ----------------------------------------------------------------------------------------- API calls


@dataclass(frozen=True)
class Connection:
    api: Any  # kubernetes.client.ApiClient
    namespace: str
    host: str


def connect(*, kubeconfig: str | None, context: str | None, namespace: str | None) -> Connection:
    """An API client from the kubeconfig (as kubectl picks it), or in-cluster credentials without one."""
    from kubernetes import client, config

    configuration = client.Configuration()
    paths = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    existing = [p for p in paths.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
    if kubeconfig and not existing:
        raise PluginError(f"kubeconfig {kubeconfig} does not exist")
    if not existing:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise PluginError(f"no kubeconfig found at {paths}: pass --kubeconfig or set KUBECONFIG")
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as error:
            raise PluginError(f"in-cluster configuration: {error}") from None
        found = namespace or _read_text(SERVICE_ACCOUNT_NAMESPACE) or "default"
    else:
        try:
            contexts, active = config.list_kube_config_contexts(config_file=paths)
        except (config.ConfigException, KeyError, TypeError, ValueError, OSError) as error:
            raise PluginError(f"kubeconfig {paths}: {_one_line(error)}") from None
        found = namespace or context_namespace(contexts, active, context) or "default"
        try:
            config.load_kube_config(
                config_file=paths, context=context, client_configuration=configuration, persist_config=False
            )
        except (config.ConfigException, KeyError, TypeError, ValueError, OSError) as error:
            raise PluginError(f"kubeconfig {paths}: {_one_line(error)}") from None
    configuration.retries = 1
    return Connection(client.ApiClient(configuration=configuration), found, configuration.host)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip() or None
    except OSError:
        return None


def _one_line(error: Any) -> str:
    return " ".join(str(error).split())


def describe_api_error(error: Any, *, verb: str, kind: Kind, name: str, namespace: str) -> str:
    """An ApiException as one line a person can act on."""
    status = getattr(error, "status", None)
    try:
        body = json.loads(getattr(error, "body", None) or "{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = _one_line(body.get("message") or getattr(error, "reason", "") or "")
    if status == 404:
        if not (body.get("details") or {}).get("name"):
            return f"the API server does not serve {kind.resource}: are the mlops.dev CRDs installed?"
        return f"{kind.kind} {name} not found in namespace {namespace}"
    if status == 403:
        return f"no permission to {verb} {kind.resource} in namespace {namespace}: {message}"
    if status == 401:
        return f"the API server refused the credentials (401 Unauthorized): check the kubeconfig's user ({message})"
    return f"{verb} {kind.kind} {name}: {status} {message}".rstrip()


def _call(connection: Connection, verb: str, kind: Kind, name: str, action: Any) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return action()
    except ApiException as error:
        text = describe_api_error(error, verb=verb, kind=kind, name=name, namespace=connection.namespace)
        if error.status == 404 and "not found in namespace" in text:
            text += _other_kind_hint(connection, kind, name)
        raise PluginError(text) from None
    except HTTPError as error:
        reason = _one_line(getattr(error, "reason", None) or error).split(">: ", 1)[-1]
        raise PluginError(f"cannot reach the API server at {connection.host}: {reason}") from None


def _other_kind_hint(connection: Connection, kind: Kind, name: str) -> str:
    """`; iris-baseline is a TrainingRun, not a ModelDeployment` when the name belongs to another kind."""
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    for other in KINDS:
        if other == kind:
            continue
        try:
            api.get_namespaced_custom_object(
                GROUP, VERSION, connection.namespace, other.plural, name, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception:  # only a hint: any failure means no hint
            continue
        return f" ({name} is a {other.kind}, not a {kind.kind})"
    return ""


def fetch(connection: Connection, kind: Kind, name: str) -> dict[str, Any]:
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    return _call(
        connection,
        "get",
        kind,
        name,
        lambda: api.get_namespaced_custom_object(
            GROUP, VERSION, connection.namespace, kind.plural, name, _request_timeout=REQUEST_TIMEOUT
        ),
    )


def patch(connection: Connection, kind: Kind, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch: only the annotations named in `body` change."""
    from kubernetes import client

    api = client.CustomObjectsApi(connection.api)
    return _call(
        connection,
        "patch",
        kind,
        name,
        lambda: api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            connection.namespace,
            kind.plural,
            name,
            body,
            _content_type="application/merge-patch+json",
            _request_timeout=REQUEST_TIMEOUT,
        ),
    )


# -------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    connection = connect(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
    )
    if args.command == "approve":
        name = object_name(args.name, TRAINING_RUN)
        plan = plan_approval(fetch(connection, TRAINING_RUN, name))
        if not plan.ok:
            raise PluginError(plan.message)
        if plan.patch:
            patch(connection, TRAINING_RUN, name, plan.patch)
        print(plan.message)
        return 0
    name = object_name(args.name, MODEL_DEPLOYMENT)
    md = fetch(connection, MODEL_DEPLOYMENT, name)
    if args.command == "status":
        print(render_status(md))
        return 0
    if args.command == "history":
        print(render_history(md))
        return 0
    acts, effect = command_effect(args.command, md)
    if not acts and not args.force:
        raise PluginError(f"{effect} (--force sets the annotation anyway)")
    token = new_token()
    patch(connection, MODEL_DEPLOYMENT, name, command_patch(args.command, token))
    print(render_request(args.command, md, token, effect=effect if acts else f"probably nothing: {effect}"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a CLI answers in one line; the type names the unexpected failure
        print(f"error: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
