"""`kubectl mlops`: rendering of real status shapes, the patches each command writes, argument parsing,
kubeconfig handling, and errors that end in one line and exit code 1 (against a fake API server)."""

from __future__ import annotations

import copy
import datetime as dt
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_operator import plugin
from mlops_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from mlops_operator.registry import APPROVED_ANNOTATION
from mlops_operator.rollout.canary import Observation, Target, next_rollout
from support import status_fields

NOW = dt.datetime(2026, 3, 2, 10, 6, 2, tzinfo=dt.UTC)
URI = "pvc://mlops-artifacts/models/ml/iris/"


def conditions(*, available: tuple, progressing: tuple, degraded: tuple, ready: tuple) -> list[dict]:
    """The four conditions of a ModelDeployment, in the order the controller writes them."""
    return [
        {
            "type": type_,
            "status": state,
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2026-03-02T10:05:00Z",
            "observedGeneration": 1,
        }
        for type_, (state, reason, message) in (
            ("Available", available),
            ("Progressing", progressing),
            ("Degraded", degraded),
            ("Ready", ready),
        )
    ]


# The example deployment (examples/modeldeployment-iris.yaml): 4 replicas, six steps, three metrics.
EXAMPLE_SPEC = {
    "model": {"name": "iris"},
    "replicas": 4,
    "strategy": {
        "canary": {
            "steps": [
                {"setWeight": 25},
                {"pause": {"duration": "30s"}},
                {"analysis": {}},
                {"setWeight": 50},
                {"pause": {"duration": "30s"}},
                {"analysis": {}},
            ]
        }
    },
    "analysis": {
        "interval": "15s",
        "failureLimit": 2,
        "inconclusiveLimit": 4,
        "metrics": [
            {"name": "errors", "template": "errorRate", "threshold": 0.05},
            {"name": "latency", "template": "latencyP95", "threshold": 0.25},
            {"name": "accuracy", "template": "accuracy", "threshold": 0.8},
        ],
    },
    "postPromotion": {"enabled": True, "window": "10m"},
}

MID_CANARY = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris", "namespace": "ml", "generation": 1},
    "spec": EXAMPLE_SPEC,
    "status": {
        "observedGeneration": 1,
        "phase": "Progressing",
        "conditions": conditions(
            available=("True", "ServingStable", "iris-baseline: 3/3 pods ready"),
            progressing=("True", "CanaryInProgress", "iris-logreg at 25%, step 2"),
            degraded=("False", "NoRollback", "no rollback since the last promotion"),
            ready=("False", "RolloutInProgress", "rolling out iris-logreg"),
        ),
        "stable": {
            "version": "iris-baseline",
            "modelUri": URI + "iris-baseline",
            "sha256": "a" * 64,
            "weight": 75,
            "replicas": 3,
            "readyReplicas": 3,
        },
        "canary": {
            "version": "iris-logreg",
            "modelUri": URI + "iris-logreg",
            "sha256": "b" * 64,
            "weight": 25,
            "replicas": 1,
            "readyReplicas": 1,
            "stepIndex": 2,
            "stepStartedAt": "2026-03-02T10:05:45Z",
            "startedAt": "2026-03-02T10:05:00Z",
            "successes": 2,
            "failures": 1,
            "inconclusives": 0,
            "stepSuccesses": 0,
            "lastAnalysisAt": "2026-03-02T10:05:50Z",
        },
        "promotedAt": "2026-03-02T09:00:00Z",
        "handledCommands": {},
        "routing": "replica ratio behind Service iris: 3 stable, 1 canary",
        "lastAnalysis": [
            {
                "metric": "errors",
                "phase": "Successful",
                "value": 0.0,
                "message": "errors 0 <= 0.05",
                "measuredAt": "2026-03-02T10:05:50Z",
            },
            {
                "metric": "latency",
                "phase": "Successful",
                "value": 0.00412,
                "message": "latency 0.00412 <= 0.25",
                "measuredAt": "2026-03-02T10:05:50Z",
            },
            {
                "metric": "accuracy",
                "phase": "Failed",
                "value": 0.6111,
                "message": "accuracy 0.6111 < 0.8",
                "measuredAt": "2026-03-02T10:05:50Z",
            },
        ],
        "history": [
            {"version": "iris-baseline", "outcome": "Promoted", "reason": "after 6 steps", "at": "2026-03-02T09:00:00Z"}
        ],
    },
}

# Two replicas, [setWeight 50, pause (no duration)]: held at the manual gate, waiting for promote.
MANUAL_GATE = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {
        "name": "iris",
        "namespace": "ml",
        "generation": 2,
        "annotations": {"mlops.dev/promote": "20260302T095000Z-4f2a9c"},
    },
    "spec": {
        "model": {"name": "iris"},
        "replicas": 2,
        "postPromotion": {"enabled": False},
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
    },
    "status": {
        "observedGeneration": 2,
        "phase": "Paused",
        "conditions": conditions(
            available=("True", "ServingStable", "iris-logreg: 1/1 pods ready"),
            progressing=("True", "PauseStep", "iris-forest at 50%, step 1 (paused: PauseStep)"),
            degraded=("False", "NoRollback", "no rollback since the last promotion"),
            ready=("False", "RolloutInProgress", "rolling out iris-forest"),
        ),
        "stable": {
            "version": "iris-logreg",
            "modelUri": URI + "iris-logreg",
            "sha256": "b" * 64,
            "weight": 50,
            "replicas": 1,
            "readyReplicas": 1,
        },
        "canary": {
            "version": "iris-forest",
            "modelUri": URI + "iris-forest",
            "sha256": "c" * 64,
            "weight": 50,
            "replicas": 1,
            "readyReplicas": 1,
            "stepIndex": 1,
            "stepStartedAt": "2026-03-02T10:01:10Z",
            "startedAt": "2026-03-02T10:01:02Z",
            "successes": 0,
            "failures": 0,
            "inconclusives": 0,
            "stepSuccesses": 0,
        },
        "pauseReason": "PauseStep",
        "promotedAt": "2026-03-02T09:50:20Z",
        "handledCommands": {"promote": "20260302T095000Z-4f2a9c"},
        "routing": "replica ratio behind Service iris: 1 stable, 1 canary",
    },
}

ROLLED_BACK = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris", "namespace": "ml", "generation": 1},
    "spec": EXAMPLE_SPEC,
    "status": {
        "observedGeneration": 1,
        "phase": "Degraded",
        "conditions": conditions(
            available=("True", "ServingStable", "iris-logreg: 4/4 pods ready"),
            progressing=("False", "RolloutComplete", "iris-logreg serves 100%"),
            degraded=("True", "AnalysisFailed", "accuracy 0.5833 < 0.8"),
            ready=("False", "AnalysisFailed", "accuracy 0.5833 < 0.8"),
        ),
        "stable": {
            "version": "iris-logreg",
            "modelUri": URI + "iris-logreg",
            "sha256": "b" * 64,
            "weight": 100,
            "replicas": 4,
            "readyReplicas": 4,
        },
        "promotedAt": "2026-03-02T09:30:00Z",
        "lastGood": {"version": "iris-baseline", "modelUri": URI + "iris-baseline", "sha256": "a" * 64},
        "degraded": {"reason": "AnalysisFailed", "message": "accuracy 0.5833 < 0.8"},
        "failedVersions": ["iris-guess"],
        "handledCommands": {},
        "routing": "replica ratio behind Service iris: 4 stable, 0 canary",
        "lastAnalysis": [
            {
                "metric": "errors",
                "phase": "Successful",
                "value": 0.0,
                "message": "errors 0 <= 0.05",
                "measuredAt": "2026-03-02T10:04:30Z",
            },
            {
                "metric": "latency",
                "phase": "Successful",
                "value": 0.0038,
                "message": "latency 0.0038 <= 0.25",
                "measuredAt": "2026-03-02T10:04:30Z",
            },
            {
                "metric": "accuracy",
                "phase": "Failed",
                "value": 0.5833,
                "message": "accuracy 0.5833 < 0.8",
                "measuredAt": "2026-03-02T10:04:30Z",
            },
        ],
        "history": [
            {
                "version": "iris-guess",
                "outcome": "RolledBack",
                "reason": "AnalysisFailed: accuracy 0.5833 < 0.8",
                "at": "2026-03-02T10:04:30Z",
            },
            {"version": "iris-logreg", "outcome": "Promoted", "reason": "after 6 steps", "at": "2026-03-02T09:30:00Z"},
            {
                "version": "iris-tampered",
                "outcome": "Aborted",
                "reason": "Aborted: aborted by the user",
                "at": "2026-03-02T09:10:00Z",
            },
        ],
    },
}

FRESH = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud", "namespace": "ml", "generation": 1},
    "spec": {"model": {"trainingRun": "fraud-gbm-7"}},
}

SAMPLES = {"mid-canary": MID_CANARY, "manual-gate": MANUAL_GATE, "rolled-back": ROLLED_BACK, "fresh": FRESH}


# ------------------------------------------------------------------------------------------- status


def test_mid_canary_shows_both_versions_the_step_and_the_analysis() -> None:
    text = plugin.render_status(MID_CANARY, now=NOW)
    shown = status_fields(text)
    assert shown["Model"] == "iris (follows its champion)"
    assert shown["Phase"] == "Progressing"
    assert shown["Ready"] == "False, RolloutInProgress: rolling out iris-logreg"
    assert shown["Stable"] == "iris-baseline   weight 75%   pods 3/3 ready"
    assert shown["Canary"] == "iris-logreg     weight 25% (desired 25%)   pods 1/1 ready"
    assert shown["Step"] == "3/6 analysis: waiting for a passing measurement; next in 3s"
    assert shown["Measurements"] == "2 successful, 1 failed (rollback at 2), 0 inconclusive in a row (pause at 4)"
    assert shown["Started"] == "2026-03-02T10:05:00Z (1m2s ago)"
    assert shown["Routing"] == "replica ratio behind Service iris: 3 stable, 1 canary"
    assert "Degraded" not in shown and "Server upgrade" not in shown
    waiting = "waiting to roll the servers onto the operator's new pod template: 3 ModelDeployments roll at once"
    upgrading = {**MID_CANARY, "status": {**MID_CANARY["status"], "serverUpgrade": waiting}}
    assert status_fields(plugin.render_status(upgrading, now=NOW))["Server upgrade"] == waiting
    steps = text.split("Steps:\n")[1].split("\n\n")[0].splitlines()
    assert [s.split() for s in steps] == [
        ["1", "setWeight", "25%", "done"],
        ["2", "pause", "30s", "done"],
        ["->", "3", "analysis", "current"],
        ["4", "setWeight", "50%"],
        ["5", "pause", "30s"],
        ["6", "analysis"],
    ]
    analysis = text.split("Last analysis:\n")[1].splitlines()
    assert analysis[0].split() == ["METRIC", "PHASE", "VALUE", "MEASURED", "MESSAGE"]
    assert analysis[3].split()[:3] == ["accuracy", "Failed", "0.6111"]
    assert "(12s ago)" in analysis[3] and analysis[3].endswith("accuracy 0.6111 < 0.8")
    assert analysis[1].split()[:3] == ["errors", "Successful", "0"]


def test_status_shows_what_each_version_was_trained_with_and_whether_the_libraries_differ() -> None:
    md = copy.deepcopy(MID_CANARY)
    words = "iris-baseline: scikitLearn 1.3.2 (trained) != 1.9.1 (served) (its servers predicted …)"
    md["status"]["conditions"].append(
        {"type": "EnvironmentDiffers", "status": "True", "reason": "EnvironmentDiffers", "message": words}
        | {"lastTransitionTime": "2026-03-02T10:00:00Z"}
    )
    environments = {
        "iris-baseline": {"python": "3.11.2", "scikitLearn": "1.3.2", "numpy": "1.26.4", "image": "mlops:old"},
    }
    text = plugin.render_status(md, now=NOW, environments=environments)
    shown = status_fields(text)
    assert shown["Libraries"] == words
    assert shown["Trained with"] == "iris-baseline: scikit-learn 1.3.2, numpy 1.26.4, Python 3.11.2 (image mlops:old)"
    md["status"]["conditions"][-1] |= {"status": "False", "reason": "SameEnvironment"}
    shown = status_fields(plugin.render_status(md, now=NOW))
    assert shown["Libraries"] == "every version served runs on the libraries that trained it"
    assert "Trained with" not in shown, "no TrainingRun read: nothing said"


def test_achieved_weight_differs_from_the_desired_one_with_few_replicas() -> None:
    md = copy.deepcopy(MID_CANARY)
    md["spec"] = {**EXAMPLE_SPEC, "replicas": 2}
    md["status"]["canary"].update(weight=50, stepIndex=0, readyReplicas=0, stepStartedAt="2026-03-02T10:05:00Z")
    shown = status_fields(plugin.render_status(md, now=NOW))
    assert shown["Canary"] == "iris-logreg     weight 50% (desired 25%)   pods 0/1 ready"
    assert shown["Step"] == "1/6 setWeight 25%: waiting for canary pods (0/1 ready); rolled back in 3m58s unless ready"


def test_a_timed_pause_shows_the_time_left() -> None:
    md = copy.deepcopy(MID_CANARY)
    md["status"]["canary"].update(stepIndex=1, pauseStartedAt="2026-03-02T10:05:44Z")
    assert status_fields(plugin.render_status(md, now=NOW))["Step"] == "2/6 pause 30s: 12s left"


def test_paused_at_a_manual_gate_says_how_to_promote() -> None:
    text = plugin.render_status(MANUAL_GATE, now=NOW)
    assert text == "\n".join(
        [
            "Name:             iris",
            "Namespace:        ml",
            "Model:            iris (follows its champion)",
            "Phase:            Paused",
            "Ready:            False, RolloutInProgress: rolling out iris-forest",
            "Stable:           iris-logreg   weight 50%   pods 1/1 ready",
            "Canary:           iris-forest   weight 50% (desired 50%)   pods 1/1 ready",
            "Step:             2/2 pause until promoted: waiting for `kubectl mlops promote iris -n ml`",
            "Measurements:     0 successful, 0 failed (rollback at 2), 0 inconclusive in a row (pause at 3)",
            "Started:          2026-03-02T10:01:02Z (5m ago)",
            "Routing:          replica ratio behind Service iris: 1 stable, 1 canary",
            "",
            "Steps:",
            "       1   setWeight 50%          done",
            "  ->   2   pause until promoted   current",
        ]
    )


def test_paused_on_inconclusive_analysis_says_how_to_resume() -> None:
    md = copy.deepcopy(MID_CANARY)
    md["status"].update(pauseReason="InconclusiveAnalysis", phase="Paused")
    md["status"]["canary"]["inconclusives"] = 4
    step = status_fields(plugin.render_status(md, now=NOW))["Step"]
    assert step.startswith("3/6 analysis: paused: 4 inconclusive measurements in a row (no data)")
    assert "`kubectl mlops resume iris -n ml`" in step


def test_rolled_back_shows_why_and_the_failed_version() -> None:
    text = plugin.render_status(ROLLED_BACK, now=NOW)
    shown = status_fields(text)
    assert shown["Phase"] == "Degraded"
    assert shown["Ready"] == "False, AnalysisFailed: accuracy 0.5833 < 0.8"
    assert shown["Stable"] == "iris-logreg   weight 100%   pods 4/4 ready"
    assert shown["Canary"] == "none: no rollout in progress"
    assert shown["Degraded"] == "AnalysisFailed: accuracy 0.5833 < 0.8"
    assert shown["Failed versions"] == "iris-guess (not retried automatically)"
    assert "Steps:" not in text and "accuracy   Failed" in text


def test_the_post_promotion_guard_is_shown_during_its_window() -> None:
    md = copy.deepcopy(ROLLED_BACK)
    md["status"].update(promotedAt="2026-03-02T10:00:02Z", degraded=None, guardFailures=1, phase="Healthy")
    shown = status_fields(plugin.render_status(md, now=NOW))
    assert shown["Guard"] == "judging iris-logreg for 4m more; 1/2 failed measurements roll back to iris-baseline"
    md["status"]["promotedAt"] = "2026-03-02T09:50:00Z"
    assert "Guard" not in status_fields(plugin.render_status(md, now=NOW))


def test_a_fresh_object_without_status() -> None:
    assert plugin.render_status(FRESH, now=NOW) == "\n".join(
        [
            "Name:             fraud",
            "Namespace:        ml",
            "Model:            TrainingRun fraud-gbm-7 (pinned)",
            "Phase:            no status yet: the operator has not reconciled it (is it running?)",
        ]
    )


def test_a_spec_ahead_of_status_and_an_invalid_spec_still_render() -> None:
    md = copy.deepcopy(MID_CANARY)
    md["metadata"]["generation"] = 2
    assert "status is of generation 1, the spec is at 2" in status_fields(plugin.render_status(md, now=NOW))["Note"]
    md["spec"] = {"model": {"name": "iris"}, "replicas": 0}  # slipped past the schema
    shown = status_fields(plugin.render_status(md, now=NOW))
    assert shown["Canary"] == "iris-logreg     weight 25%   pods 1/1 ready"
    assert shown["Step"] == "3: unknown: the spec is invalid"


def test_the_state_machines_own_status_renders() -> None:
    """A status produced by the canary state machine itself, not written by hand."""
    spec_body = MANUAL_GATE["spec"]
    spec = ModelDeploymentSpec.model_validate(spec_body)
    t0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    v1, v2 = Target("iris-logreg", URI + "iris-logreg", "b" * 64), Target("iris-forest", URI + "iris-forest", "c" * 64)
    status = next_rollout(spec, ModelDeploymentStatus(), Observation(now=t0, target=v1)).status
    status = next_rollout(spec, status, Observation(now=t0 + dt.timedelta(seconds=60), target=v2)).status
    status = next_rollout(
        spec, status, Observation(now=t0 + dt.timedelta(seconds=70), target=v2, canary_ready_replicas=1)
    ).status
    md = {
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": spec_body,
        "status": status.model_dump(by_alias=True, mode="json"),
    }
    shown = status_fields(plugin.render_status(md, now=NOW))
    assert shown["Stable"].startswith("iris-logreg") and shown["Canary"].startswith("iris-forest")
    assert shown["Step"] == "2/2 pause until promoted: waiting for `kubectl mlops promote iris -n ml`"
    assert plugin.command_effect("promote", md)[0] and not plugin.command_effect("resume", md)[0]


# ------------------------------------------------------------------------------------------ history


def test_history_lists_decisions_newest_first() -> None:
    assert plugin.render_history(ROLLED_BACK).splitlines() == [
        "TIME                   VERSION         EVENT        REASON",
        "2026-03-02T10:04:30Z   iris-guess      RolledBack   AnalysisFailed: accuracy 0.5833 < 0.8",
        "2026-03-02T09:30:00Z   iris-logreg     Promoted     after 6 steps",
        "2026-03-02T09:10:00Z   iris-tampered   Aborted      Aborted: aborted by the user",
    ]


def test_history_puts_the_rollout_in_progress_on_top() -> None:
    rows = plugin.render_history(MID_CANARY).splitlines()
    assert rows[1].split() == ["2026-03-02T10:05:00Z", "iris-logreg", "InProgress", "step", "3/6,", "weight", "25%"]
    assert rows[2].split()[:3] == ["2026-03-02T09:00:00Z", "iris-baseline", "Promoted"]


def test_history_without_rollouts() -> None:
    assert plugin.render_history(FRESH) == "No rollouts yet."
    served = {**FRESH, "status": {"stable": {"version": "fraud-gbm-7"}}}
    assert plugin.render_history(served) == "No rollouts yet: fraud-gbm-7 has served since the start."


# ----------------------------------------------------------------------------------------- commands


@pytest.mark.parametrize("command", ["promote", "abort", "resume"])
def test_each_command_sets_its_annotation_to_the_token(command: str) -> None:
    assert plugin.command_patch(command, "t-1") == {"metadata": {"annotations": {f"mlops.dev/{command}": "t-1"}}}


class _Read(Exception):
    """Stops a reconcile once it has read what the test looks at."""


def _observed(name: str, metadata: dict) -> Any:
    from mlops_operator.controllers.contract import Observed

    body = {"metadata": {"name": name, "namespace": "ml", "uid": "u", "generation": 1, "labels": {}, **metadata}}
    return Observed(body=body, status={}, generation=1, now="2026-03-02T10:06:02.000Z")


@pytest.mark.parametrize("command", ["promote", "abort", "resume"])
def test_the_annotation_each_command_writes_is_the_one_the_controller_reads(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_operator.controllers import modeldeployment as controller
    from mlops_operator.controllers.cache import ObjectCache

    read: dict[str, str] = {}

    def next_rollout(spec, status, obs):  # what the controller hands the state machine
        read.update(obs.commands)
        raise _Read

    monkeypatch.setattr(controller, "CACHE", ObjectCache())
    monkeypatch.setattr(controller, "next_rollout", next_rollout)
    annotations = {"unrelated.example.com/note": "x"} | plugin.command_patch(command, "t-1")["metadata"]["annotations"]
    with pytest.raises(_Read):
        controller.reconcile_modeldeployment(
            ModelDeploymentSpec.model_validate({"model": {"name": "iris"}}),
            _observed("iris", {"annotations": annotations}),
            logger=None,
        )
    assert read == {command: "t-1"}


def test_the_approval_the_plugin_writes_is_the_one_the_trainingrun_controller_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_operator.api.trainingrun import TrainingRunSpec, TrainingRunStatus
    from mlops_operator.controllers import trainingrun as controller

    read: list[bool] = []

    def decide_promotion(**kwargs):
        read.append(kwargs["approved"])
        raise _Read

    monkeypatch.setattr(controller, "decide_promotion", decide_promotion)
    monkeypatch.setattr(controller.champions, "current_champion", lambda *args, **kwargs: None)
    spec = TrainingRunSpec.model_validate(
        {
            "datasetRef": {"name": "iris"},
            "promotion": {"policy": "manual"},
            "model": {"name": "iris", "estimator": "sklearn.svm.SVC"},
        }
    )
    status = TrainingRunStatus.model_validate({"phase": "Succeeded", "metrics": {"accuracy": 0.9}})
    # Approved only by exactly what `kubectl mlops approve` writes.
    for metadata in (plugin.approval_patch()["metadata"], {"annotations": {APPROVED_ANNOTATION: "yes"}}, {}):
        with pytest.raises(_Read):
            controller.reconcile_promotion(spec, _observed("iris-logreg", metadata), status, controller.Events())
    assert read == [True, False, False]


def test_tokens_are_fresh_and_say_when() -> None:
    assert plugin.new_token(NOW, "abc123") == "20260302T100602Z-abc123"
    tokens = {plugin.new_token(NOW) for _ in range(50)}
    assert len(tokens) == 50 and all(t.startswith("20260302T100602Z-") for t in tokens)


@pytest.mark.parametrize(
    ("sample", "command", "acts", "words"),
    [
        (MID_CANARY, "promote", True, "step 3/6 (analysis) is skipped; the rollout goes on with step 4"),
        (MANUAL_GATE, "promote", True, "completes the rollout: iris-forest becomes stable at 100%"),
        (MANUAL_GATE, "abort", True, "iris-forest is rolled back: iris-logreg takes all traffic"),
        (MANUAL_GATE, "resume", False, "waits at a manual pause step, which resume does not move: use promote"),
        (MID_CANARY, "resume", False, "the rollout of iris-logreg is not paused"),
        (ROLLED_BACK, "promote", False, "iris has no rollout in progress (serving iris-logreg): nothing to promote"),
        (ROLLED_BACK, "abort", False, "nothing to abort"),
        (FRESH, "promote", False, "fraud has no rollout in progress: nothing to promote"),
    ],
)
def test_what_a_command_would_do(sample: dict, command: str, acts: bool, words: str) -> None:
    assert plugin.command_effect(command, sample)[0] is acts
    assert words in plugin.command_effect(command, sample)[1]


def test_resume_and_promote_on_paused_rollouts() -> None:
    inconclusive = copy.deepcopy(MID_CANARY)
    inconclusive["status"]["pauseReason"] = "InconclusiveAnalysis"
    assert plugin.command_effect("resume", inconclusive) == (
        True,
        "the rollout of iris-logreg continues after its inconclusive measurements",
    )
    assert plugin.command_effect("promote", inconclusive)[0]
    frozen = copy.deepcopy(MID_CANARY)
    frozen["status"]["pauseReason"] = "SpecPaused"
    for command in ("promote", "resume"):
        assert "spec.paused" in plugin.command_effect(command, frozen)[1]
    assert plugin.command_effect("abort", frozen)[0], "abort works on a frozen rollout"


def test_a_request_names_the_token_and_how_to_watch() -> None:
    text = plugin.render_request("promote", MANUAL_GATE, "20260302T100602Z-abc123", effect="it is skipped")
    assert text.splitlines() == [
        "promote requested for ModelDeployment iris in namespace ml (mlops.dev/promote=20260302T100602Z-abc123).",
        "The operator acts on it once: it is skipped.",
        "Watch with: kubectl mlops status iris -n ml",
    ]
    waiting = copy.deepcopy(MANUAL_GATE)
    waiting["metadata"]["annotations"]["mlops.dev/promote"] = "20260302T100500Z-000000"
    assert "An earlier promote (20260302T100500Z-000000) was not acted on yet" in plugin.render_request(
        "promote", waiting, "t", effect="x"
    )


def run_body(*, policy: str = "manual", phase: str | None = "Succeeded", decision: str | None = None) -> dict:
    status: dict = {"phase": phase} if phase else {}
    if phase == "Failed":
        status.update(reason="JobFailed", message="after 1 attempt(s): boom")
    if decision:
        status["promotion"] = {
            "decision": decision,
            "reason": {
                "PendingApproval": "AwaitingApproval",
                "Rejected": "GateFailed",
                "Promoted": "Approved",
                "Superseded": "Superseded",
            }[decision],
            "message": "accuracy 0.7 is below the gate's min 0.8" if decision == "Rejected" else "",
        }
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "wine-forest", "namespace": "ml", "labels": {"mlops.dev/model": "wine"}},
        "spec": {
            "datasetRef": {"name": "wine"},
            "model": {"name": "wine", "estimator": "x"},
            "promotion": {"policy": policy},
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("run", "patches", "ok", "words"),
    [
        (run_body(decision="PendingApproval"), True, True, "it becomes the champion of model wine"),
        (run_body(phase="Running"), True, True, "in advance"),
        (run_body(phase=None), True, True, "in advance"),
        (run_body(decision="Promoted"), False, True, "already the champion of model wine"),
        (run_body(decision="Rejected"), False, False, "rejected (GateFailed: accuracy 0.7 is below the gate's min"),
        (run_body(decision="Superseded"), False, False, "superseded"),
        (run_body(policy="auto"), False, False, "promotion policy auto: it needs no approval"),
        (run_body(phase="Failed"), False, False, "failed (JobFailed: after 1 attempt(s): boom)"),
    ],
)
def test_approval_plans(run: dict, patches: bool, ok: bool, words: str) -> None:
    plan = plugin.plan_approval(run)
    assert plan.ok is ok and words in plan.message
    assert plan.patch == (plugin.approval_patch() if patches else None)


# -------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "iris"], {"command": "status", "name": "iris"}),
        (["-n", "ml", "status", "iris"], {"namespace": "ml"}),
        (["status", "iris", "-n", "ml"], {"namespace": "ml"}),
        (["--kubeconfig", "/k", "--context", "c", "history", "md/iris"], {"kubeconfig": "/k", "context": "c"}),
        (["history", "iris", "--namespace=ml", "--context=c"], {"namespace": "ml", "context": "c"}),
        (["promote", "iris"], {"command": "promote", "force": False}),
        (["abort", "iris", "--force"], {"command": "abort", "force": True}),
        (["resume", "-n", "ml", "iris"], {"command": "resume", "namespace": "ml"}),
        (["approve", "tr/wine-forest"], {"command": "approve", "name": "tr/wine-forest"}),
    ],
)
def test_arguments(argv: list[str], expected: dict) -> None:
    args = vars(plugin.build_parser().parse_args(argv))
    assert {k: args.get(k) for k in expected} == expected


@pytest.mark.parametrize("argv", [[], ["status"], ["explode", "iris"], ["status", "iris", "--force"]])
def test_bad_arguments_are_usage_errors(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        plugin.build_parser().parse_args(argv)
    assert exited.value.code == 2 and "usage: kubectl mlops" in capsys.readouterr().err


def test_object_names() -> None:
    md = plugin.MODEL_DEPLOYMENT
    assert [
        plugin.object_name(a, md)
        for a in ("iris", "md/iris", "modeldeployment/iris", "modeldeployments.mlops.dev/iris")
    ] == ["iris"] * 4
    with pytest.raises(plugin.PluginError, match="tr/iris is not a ModelDeployment"):
        plugin.object_name("tr/iris", md)
    assert plugin.object_name("trainingrun/wine-forest", plugin.TRAINING_RUN) == "wine-forest"


# ----------------------------------------------------------------------- kubeconfig and the API server


def write_kubeconfig(path, server: str) -> None:
    cluster = {"server": server}
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [
                    {"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                    {"name": "plain", "context": {"cluster": "c", "user": "u"}},
                ],
                "current-context": "dev",
            }
        )
    )


def test_the_namespace_comes_from_the_flag_the_context_or_default(tmp_path, monkeypatch) -> None:
    config = tmp_path / "config"
    write_kubeconfig(config, "http://127.0.0.1:1")
    connect = plugin.connect
    assert connect(kubeconfig=str(config), context=None, namespace=None).namespace == "team-a"
    assert connect(kubeconfig=str(config), context="plain", namespace=None).namespace == "default"
    assert connect(kubeconfig=str(config), context="plain", namespace="ml").namespace == "ml"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{config}")
    assert connect(kubeconfig=None, context=None, namespace=None).namespace == "team-a"
    with pytest.raises(plugin.PluginError, match="context nope is not in the kubeconfig"):
        connect(kubeconfig=str(config), context="nope", namespace=None)
    with pytest.raises(plugin.PluginError, match="does not exist"):
        connect(kubeconfig=str(tmp_path / "missing"), context=None, namespace=None)


class FakeApiServer(http.server.ThreadingHTTPServer):
    """Answers GET and PATCH of custom objects from a table; records what was patched."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeApiHandler)
        self.objects: dict[str, dict] = {}  # path → object
        self.forbidden = False
        self.patches: list[tuple[str, str, dict]] = []


class FakeApiHandler(http.server.BaseHTTPRequestHandler):
    server: FakeApiServer

    def log_message(self, *args) -> None:
        pass

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str, name: str) -> None:
        self._answer(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "reason": reason,
                "details": {"name": name},
                "code": code,
            },
        )

    def do_GET(self) -> None:
        plural, name = self.path.split("/")[-2:]
        if self.server.forbidden:
            self._status(
                403,
                "Forbidden",
                f'{plural}.mlops.dev "{name}" is forbidden: User "system:serviceaccount:'
                f'ml:nobody" cannot get resource "{plural}" in API group "mlops.dev"',
                name,
            )
        elif self.path in self.server.objects:
            self._answer(200, self.server.objects[self.path])
        else:
            self._status(404, "NotFound", f'{plural}.mlops.dev "{name}" not found', name)

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.patches.append((self.path, self.headers["Content-Type"], body))
        self._answer(200, self.server.objects[self.path])


@pytest.fixture
def api(tmp_path, monkeypatch) -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    write_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    yield server
    server.shutdown()


def path(plural: str, name: str, namespace: str = "ml") -> str:
    return f"/apis/mlops.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}"


def test_status_and_history_through_the_client(api: FakeApiServer, capsys) -> None:
    api.objects[path("modeldeployments", "iris")] = ROLLED_BACK
    assert plugin.main(["status", "iris", "-n", "ml"]) == 0
    assert "Degraded:" in capsys.readouterr().out
    assert plugin.main(["history", "md/iris", "-n", "ml"]) == 0
    assert capsys.readouterr().out == plugin.render_history(ROLLED_BACK) + "\n"


def test_promote_patches_only_the_annotation(api: FakeApiServer, capsys) -> None:
    api.objects[path("modeldeployments", "iris")] = MANUAL_GATE
    assert plugin.main(["promote", "iris", "-n", "ml"]) == 0
    [(where, content_type, body)] = api.patches
    assert (where, content_type) == (path("modeldeployments", "iris"), "application/merge-patch+json")
    token = body["metadata"]["annotations"]["mlops.dev/promote"]
    assert body == plugin.command_patch("promote", token) and token != "20260302T095000Z-4f2a9c"
    out = capsys.readouterr().out
    assert f"mlops.dev/promote={token}" in out and "kubectl mlops status iris -n ml" in out


def test_a_command_that_would_do_nothing_is_refused_unless_forced(api: FakeApiServer, capsys) -> None:
    api.objects[path("modeldeployments", "iris", "team-a")] = ROLLED_BACK
    assert plugin.main(["abort", "iris"]) == 1, "the namespace comes from the kubeconfig context"
    assert capsys.readouterr().err == (
        "error: iris has no rollout in progress (serving iris-logreg): nothing to abort "
        "(--force sets the annotation anyway)\n"
    )
    assert api.patches == []
    assert plugin.main(["abort", "iris", "--force"]) == 0 and len(api.patches) == 1


def test_approve_sets_the_approval_annotation(api: FakeApiServer, capsys) -> None:
    api.objects[path("trainingruns", "wine-forest")] = run_body(decision="PendingApproval")
    assert plugin.main(["approve", "wine-forest", "-n", "ml"]) == 0
    assert api.patches == [
        (
            path("trainingruns", "wine-forest"),
            "application/merge-patch+json",
            {"metadata": {"annotations": {"mlops.dev/approved": "true"}}},
        )
    ]
    assert "Watch with: kubectl get tr -n ml -l mlops.dev/model=wine" in capsys.readouterr().out
    api.objects[path("trainingruns", "wine-forest")] = run_body(decision="Rejected")
    assert plugin.main(["approve", "wine-forest", "-n", "ml"]) == 1
    assert "approval does not override its gates" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "setup", "message"),
    [
        (["status", "nope", "-n", "ml"], {}, "error: ModelDeployment nope not found in namespace ml"),
        (
            ["status", "wine-forest", "-n", "ml"],
            {path("trainingruns", "wine-forest"): run_body()},
            "error: ModelDeployment wine-forest not found in namespace ml (wine-forest is a TrainingRun, "
            "not a ModelDeployment)",
        ),
        (
            ["approve", "iris", "-n", "ml"],
            {path("modeldeployments", "iris"): MID_CANARY},
            "error: TrainingRun iris not found in namespace ml (iris is a ModelDeployment, not a TrainingRun)",
        ),
        (["status", "tr/iris", "-n", "ml"], {}, "error: tr/iris is not a ModelDeployment (expected NAME or md/NAME)"),
        (
            ["status", "iris", "-n", "ml"],
            "forbidden",
            'error: no permission to get modeldeployments.mlops.dev in namespace ml: modeldeployments.mlops.dev "iris" '
            'is forbidden: User "system:serviceaccount:ml:nobody" cannot get resource "modeldeployments" in API group '
            '"mlops.dev"',
        ),
        (["status", "iris", "--context", "nope"], {}, "error: context nope is not in the kubeconfig"),
    ],
)
def test_errors_are_one_line_and_exit_1(api: FakeApiServer, capsys, argv, setup, message) -> None:
    if setup == "forbidden":
        api.forbidden = True
    else:
        api.objects.update(setup)
    assert plugin.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err == message + "\n" and captured.out == ""


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_api_server_is_one_line(tmp_path, capsys) -> None:
    port = closed_port()
    write_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{port}")
    assert plugin.main(["--kubeconfig", str(tmp_path / "config"), "status", "iris"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the API server at http://127.0.0.1:{port}: ") and err.count("\n") == 1


def test_no_kubeconfig_at_all(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert plugin.main(["status", "iris"]) == 1
    expected = f"error: no kubeconfig found at {tmp_path / 'none'}: pass --kubeconfig or set KUBECONFIG\n"
    assert capsys.readouterr().err == expected


def test_an_unexpected_failure_is_one_line_too(monkeypatch, capsys) -> None:
    def broken(**_):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(plugin.commands, "connect", broken)
    assert plugin.main(["status", "iris"]) == 1
    assert capsys.readouterr().err == "error: RuntimeError: something broke\n"


def test_describe_api_errors() -> None:
    class Error:
        def __init__(self, status: int, body: str, reason: str = "") -> None:
            self.status, self.body, self.reason = status, body, reason

    md = plugin.MODEL_DEPLOYMENT
    describe = plugin.describe_api_error
    no_crd = describe(Error(404, "404 page not found\n"), verb="get", kind=md, name="iris", namespace="ml")
    assert no_crd == "the API server does not serve modeldeployments.mlops.dev: are the mlops.dev CRDs installed?"
    unauthorized = describe(
        Error(401, json.dumps({"message": "Unauthorized"})), verb="get", kind=md, name="i", namespace="ml"
    )
    assert unauthorized.startswith("the API server refused the credentials (401 Unauthorized)")
    conflict = describe(
        Error(500, json.dumps({"message": "etcdserver:\n  timeout"})),
        verb="patch",
        kind=md,
        name="iris",
        namespace="ml",
    )
    assert conflict == "patch ModelDeployment iris: 500 etcdserver: timeout"


def test_a_held_step_says_it_waits_for_data() -> None:
    import datetime as dt

    from mlops_operator.plugin.views import Deployment, step_activity

    steps = [{"setWeight": 50}, {"pause": {"duration": "5s"}}]
    canary = {
        "version": "b",
        "stepIndex": 1,
        "pauseStartedAt": "2026-01-01T00:00:00.000Z",
        "inconclusives": 1,
        "replicas": 1,
        "readyReplicas": 1,
    }
    body = {
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"model": {"name": "iris"}, "strategy": {"canary": {"steps": steps}}},
        "status": {"stable": {"version": "a"}, "canary": canary},
    }
    now = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    md = Deployment.parse(body)
    assert step_activity(md, md.status.canary, now) == "pause over: waiting for a measurement with data"
    md.status.canary.inconclusives = 0
    assert step_activity(md, md.status.canary, now) == "pause over"


def test_the_autoscaler_is_shown_when_there_is_one() -> None:
    md = copy.deepcopy(ROLLED_BACK)
    assert "Autoscaler" not in status_fields(plugin.render_status(md, now=NOW))
    md["status"]["autoscaler"] = "HorizontalPodAutoscaler iris: 4 replicas, wants 6 (2 to 8)"
    assert status_fields(plugin.render_status(md, now=NOW))["Autoscaler"] == md["status"]["autoscaler"]


def test_the_retraining_history_and_what_holds_it_are_shown() -> None:
    md = copy.deepcopy(ROLLED_BACK)
    md["status"]["retraining"] = {
        "created": 1,
        "waiting": "drift fired, but the cooldown lasts until 2026-03-02T11:00:00Z",
        "history": [
            {
                "at": "2026-03-02T10:00:00Z",
                "trigger": "drift",
                "metric": "retraining-drift",
                "value": 0.41,
                "bound": 0.2,
                "window": "10m",
                "message": "retraining-drift 0.41 (fails result <= 0.2)",
                "decision": "Created",
                "run": "iris-retrain-1",
            }
        ],
    }
    text = plugin.render_status(md, now=NOW)
    assert status_fields(text)["Retraining"] == "drift fired, but the cooldown lasts until 2026-03-02T11:00:00Z"
    table = text.split("Retraining:\n", 1)[1].splitlines()
    assert table[0].split() == ["WHEN", "DECISION", "RUN", "TRIGGER", "EVIDENCE"]
    assert table[1].split()[3:7] == ["Created", "iris-retrain-1", "drift", "retraining-drift"], table[1]
