"""The command line of `kubectl mlops`: its commands, the connection options kubectl users expect,
and the NAME or TYPE/NAME a user may write for an object."""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from ..api import GROUP
from ..api.names import DATASET, MODEL_DEPLOYMENT, TRAINING_RUN, Kind


class PluginError(Exception):
    """A failure explained in one line; the plugin prints it and exits 1."""


def one_line(error: Any) -> str:
    return " ".join(str(error).split())


KINDS = (MODEL_DEPLOYMENT, TRAINING_RUN, DATASET)  # the order the commands' help names them


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
    command(
        "approve",
        "approve a TrainingRun waiting for manual promotion (mlops.dev/approved=true), or "
        "with md/NAME a canary held because its inputs differ (InputSchemaChanged)",
        TRAINING_RUN,
    )
    retry = "clear a TrainingRun's rollback mark: its version may be promoted and rolled out again (through a canary)"
    command("retry", retry, TRAINING_RUN)
    reproduce = command(
        "reproduce",
        "train a finished TrainingRun again (its dataset version, estimator, parameters, split and seed; never "
        "promoted) and say whether its predictions on the golden set and its metrics are identical (exit 2: not)",
        TRAINING_RUN,
    )
    reproduce.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help="wait for it and compare (default)"
    )
    reproduce.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait (default 1800)")
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
