"""What each `kubectl mlops` command does: the effect it would have, the patch it writes, what it says.

`promote`, `abort` and `resume` set the command annotation (`mlops.dev/<command>`) to a fresh token,
which the operator acts on once; `approve` sets `mlops.dev/approved=true` on a TrainingRun, `retry`
clears a TrainingRun's rollback mark (`mlops.dev/rolled-back`) and stamps `mlops.dev/retried-at`;
`reproduce` creates a TrainingRun repeating one and compares the two (plugin/reproduce.py). The plans
are pure functions of the object; `run` is the one place that fetches and patches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from ..api import GROUP
from ..api.clock import format_time, utc_now
from ..api.reasons import Decision, TrainingPhase
from ..api.trainingrun import TrainingRunStatus
from ..registry import APPROVED_ANNOTATION, MODEL_LABEL, RETRIED_ANNOTATION, ROLLED_BACK_ANNOTATION, ROLLED_BACK_LABEL
from ..rollout.canary import APPROVE_INPUTS_ANNOTATION, COMMANDS, PAUSE_INCONCLUSIVE, PAUSE_SPEC, PAUSE_STEP
from .args import MODEL_DEPLOYMENT, TRAINING_RUN, PluginError, build_parser, object_name, one_line
from .connection import connect, create, fetch, patch
from .reproduce import reproduce
from .views import Deployment, describe_step, parse_status, render_history, render_status


def new_token(now: dt.datetime | None = None, suffix: str | None = None) -> str:
    """A command token never used before: the UTC time and a random suffix (two requests in one second differ)."""
    moment = (now or utc_now()).astimezone(dt.UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{suffix or secrets.token_hex(3)}"


def command_patch(command: str, token: str) -> dict[str, Any]:
    """The merge patch that requests `command` once: its annotation set to a fresh token."""
    return {"metadata": {"annotations": {COMMANDS[command]: token}}}


def approval_patch() -> dict[str, Any]:
    return {"metadata": {"annotations": {APPROVED_ANNOTATION: "true"}}}


def command_effect(command: str, md: dict[str, Any]) -> tuple[bool, str]:
    """(whether the command does something now, what it does or why it would not)."""
    deployment = Deployment.parse(md)
    status, spec, name = deployment.status, deployment.spec, deployment.meta.get("name", "?")
    canary, stable = status.canary, status.stable.version if status.stable else None
    if canary is None:
        serving = f" (serving {stable})" if stable else ""
        return False, f"{name} has no rollout in progress{serving}: nothing to {command}"
    version, pause = canary.version, status.pause_reason
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
    if spec is None:
        return True, "the current step is skipped"
    steps, index = spec.strategy.canary.steps, canary.step_index
    if pause == PAUSE_SPEC:
        return False, f"{name} is frozen by spec.paused: set it to false first"
    if canary.input_schema_changed:
        return True, f"{version} is rolled out although its inputs differ ({canary.input_schema_changed})"
    current = f"step {index + 1}/{len(steps)} ({describe_step(steps[index])})" if index < len(steps) else "the rollout"
    if index + 1 >= len(steps):
        return True, f"{current} is skipped, which completes the rollout: {version} becomes stable at 100%"
    return True, f"{current} is skipped; the rollout goes on with step {index + 2} ({describe_step(steps[index + 1])})"


def pending_command(command: str, md: dict[str, Any]) -> str | None:
    """The token of an earlier request of the same command the operator has not acted on yet, if any."""
    deployment = Deployment.parse(md)
    annotations = deployment.meta.get("annotations") or {}
    handled = deployment.status.handled_commands.get(command)
    token = annotations.get(COMMANDS[command])
    return token if token and token != handled else None


def render_request(command: str, md: dict[str, Any], token: str, *, effect: str) -> str:
    deployment = Deployment.parse(md)
    meta = deployment.meta
    lines = [
        f"{command} requested for ModelDeployment {meta.get('name')} in namespace {meta.get('namespace')} "
        f"({COMMANDS[command]}={token}).",
        f"The operator acts on it once: {effect}.",
    ]
    earlier = pending_command(command, md)
    if earlier:
        lines.append(f"An earlier {command} ({earlier}) was not acted on yet: this one replaces it (one {command}).")
    lines.append(f"Watch with: {deployment.hint('status')}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ApprovalPlan:
    patch: dict[str, Any] | None  # None: nothing to write
    message: str
    ok: bool  # False: the approval cannot have an effect (exit 1)


def plan_approval(run: dict[str, Any]) -> ApprovalPlan:
    """Whether approving this TrainingRun can promote it, and what to tell the user."""
    meta, spec = run.get("metadata") or {}, run.get("spec") or {}
    status: TrainingRunStatus = parse_status(TrainingRunStatus, run)
    name = meta.get("name", "?")
    # From the spec as sent: approving must work even when the spec no longer validates.
    model = (spec.get("model") or {}).get("name") or (meta.get("labels") or {}).get(MODEL_LABEL, "?")
    policy = (spec.get("promotion") or {}).get("policy", "auto")
    promotion = status.promotion
    decision = promotion.decision if promotion else None
    evidence = f" ({promotion.reason}: {promotion.message})" if promotion and promotion.message else ""
    watch = f"Watch with: kubectl get tr -n {meta.get('namespace')} -l {MODEL_LABEL}={model} -L {GROUP}/promoted"
    if decision == Decision.PROMOTED:
        return ApprovalPlan(None, f"TrainingRun {name} is already the champion of model {model}{evidence}.", True)
    if decision == Decision.SUPERSEDED:
        return ApprovalPlan(
            None,
            f"TrainingRun {name} was the champion of {model} and has been superseded: approval "
            f"cannot bring it back (pin it with spec.model.trainingRun instead)",
            False,
        )
    if decision == Decision.REJECTED:
        return ApprovalPlan(
            None, f"TrainingRun {name} was rejected{evidence}: approval does not override its gates", False
        )
    if policy != "manual":
        return ApprovalPlan(None, f"TrainingRun {name} has promotion policy {policy}: it needs no approval", False)
    if status.phase == TrainingPhase.FAILED:
        why = f" ({status.reason}: {status.message or ''})" if status.reason else ""
        return ApprovalPlan(None, f"TrainingRun {name} failed{why}: there is no model to approve", False)
    if decision == Decision.PENDING_APPROVAL:
        words = (
            f"Approved TrainingRun {name}: it becomes the champion of model {model}, and ModelDeployments that "
            f"follow {model} roll it out."
        )
    else:
        words = (
            f"Approved TrainingRun {name} in advance: it becomes the champion of model {model} once it "
            "succeeds and passes its gates."
        )
    return ApprovalPlan(approval_patch(), f"{words}\n{watch}", True)


def plan_inputs_approval(md: dict[str, Any]) -> ApprovalPlan:
    """Approve the canary a ModelDeployment holds because its input signature differs from the stable
    version's: the annotation names that version, so an approval never carries over to the next one."""
    deployment = Deployment.parse(md)
    canary, name = deployment.status.canary, deployment.meta.get("name", "?")
    if canary is None or not canary.input_schema_changed:
        return ApprovalPlan(None, f"ModelDeployment {name} holds no canary for its inputs: nothing to approve", False)
    patch = {"metadata": {"annotations": {APPROVE_INPUTS_ANNOTATION: canary.version}}}
    words = f"Approved the inputs of {canary.version} ({canary.input_schema_changed}): its canary steps begin."
    return ApprovalPlan(patch, words, True)


def plan_retry(run: dict[str, Any], *, now: dt.datetime | None = None) -> ApprovalPlan:
    """Clear the rollback mark of a TrainingRun (registry.rollbacks): it competes for the champion title
    again, against the current champion, and every ModelDeployment that rolled it back may canary it."""
    meta = run.get("metadata") or {}
    name = meta.get("name", "?")
    stamp = format_time(now or utc_now())
    patch = {"metadata": {"annotations": {RETRIED_ANNOTATION: stamp}}}
    if (meta.get("labels") or {}).get(ROLLED_BACK_LABEL) != "true":  # aborted somewhere: that one may retry
        words = (
            f"TrainingRun {name} carries no rollback mark; ModelDeployments that aborted or rolled it back "
            "before now may roll it out again, through their canary steps."
        )
        return ApprovalPlan(patch, words, True)
    patch["metadata"]["labels"] = {ROLLED_BACK_LABEL: None}
    patch["metadata"]["annotations"][ROLLED_BACK_ANNOTATION] = None
    words = (
        f"Cleared the rollback mark of TrainingRun {name}: its promotion is decided again against the current "
        "champion, and ModelDeployments roll it out through their canary steps if it wins."
    )
    return ApprovalPlan(patch, words, True)


def _plan_of(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """The kind and the planner of a command that plans one object's patch; None for the rollout commands."""
    if args.command == "approve" and args.name.split("/", 1)[0].lower() in MODEL_DEPLOYMENT.names:
        return MODEL_DEPLOYMENT, plan_inputs_approval
    return {"approve": (TRAINING_RUN, plan_approval), "retry": (TRAINING_RUN, plan_retry)}.get(args.command)


def run(args: argparse.Namespace) -> int:
    connection = connect(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
    )
    planned = _plan_of(args)
    if planned is not None:  # approve, retry: a plan of one object, written if it has a patch
        kind, planner = planned
        name = object_name(args.name, kind)
        plan = planner(fetch(connection, kind, name))
        if not plan.ok:
            raise PluginError(plan.message)
        if plan.patch:
            patch(connection, kind, name, plan.patch)
        print(plan.message)
        return 0
    if args.command == "reproduce":
        return reproduce(
            lambda body: create(connection, TRAINING_RUN, body),
            lambda run: fetch(connection, TRAINING_RUN, run),
            object_name(args.name, TRAINING_RUN),
            wait=args.wait,
            timeout=args.timeout,
        )
    name = object_name(args.name, MODEL_DEPLOYMENT)
    md = fetch(connection, MODEL_DEPLOYMENT, name)
    if args.command == "status":
        print(render_status(md, environments=trained_environments(connection, md)))
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


def trained_environments(connection: Any, md: dict[str, Any]) -> dict[str, dict[str, str]]:
    """What the versions a ModelDeployment serves were trained with, from their TrainingRuns; a run that
    cannot be read (deleted, no permission) is left out: the status shows without it."""
    status = md.get("status") or {}
    found = {}
    for version in {(status.get(v) or {}).get("version") for v in ("stable", "canary")} - {None}:
        try:
            run = fetch(connection, TRAINING_RUN, version)
        except PluginError:
            continue
        environment = ((run.get("status") or {}).get("model") or {}).get("environment")
        if environment:
            found[version] = environment
    return found


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
        print(f"error: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1
