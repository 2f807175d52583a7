"""`kubectl mlops`: read a ModelDeployment's rollout at a glance and steer it without editing spec.

Installed as the `kubectl-mlops` script, so kubectl finds it as a plugin when it is on PATH.
`status` and `history` render what the operator wrote in status; `promote`, `abort` and `resume` set
the command annotations (`mlops.dev/<command>`) to a fresh token, which the operator acts on once;
`approve` sets `mlops.dev/approved=true` on a TrainingRun waiting for manual promotion.

`args` reads the command line, `views` renders status, `commands` plans each command and runs it,
and `connection` is the only part that talks to the API server. Every failure a user can cause (no
such object, no permission, no kubeconfig, an unreachable API server) ends in one line on stderr and
exit code 1.
"""

from ..rollout.canary import COMMANDS
from .args import DATASET, KINDS, MODEL_DEPLOYMENT, TRAINING_RUN, Kind, PluginError, build_parser, object_name
from .commands import (
    ApprovalPlan,
    approval_patch,
    command_effect,
    command_patch,
    main,
    new_token,
    pending_command,
    plan_approval,
    render_request,
    run,
)
from .connection import Connection, connect, context_namespace, describe_api_error, fetch, patch
from .views import (
    Deployment,
    describe_step,
    desired_weight,
    format_duration,
    render_history,
    render_status,
    step_activity,
)

__all__ = [
    "COMMANDS",
    "DATASET",
    "KINDS",
    "MODEL_DEPLOYMENT",
    "TRAINING_RUN",
    "ApprovalPlan",
    "Connection",
    "Deployment",
    "Kind",
    "PluginError",
    "approval_patch",
    "build_parser",
    "command_effect",
    "command_patch",
    "connect",
    "context_namespace",
    "describe_api_error",
    "describe_step",
    "desired_weight",
    "fetch",
    "format_duration",
    "main",
    "new_token",
    "object_name",
    "patch",
    "pending_command",
    "plan_approval",
    "render_history",
    "render_request",
    "render_status",
    "run",
    "step_activity",
]
