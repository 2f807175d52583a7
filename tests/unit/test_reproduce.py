"""`kubectl mlops reproduce`: the TrainingRun that repeats a run, and the comparison of the two."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlops_operator.api.trainingrun import TrainingRunSpec
from mlops_operator.plugin.args import PluginError
from mlops_operator.plugin.reproduce import DIFFERS, compare_runs, reproduce, reproduction_manifest

GOLDEN = "a" * 64
ENVIRONMENT = {"python": "3.11.2", "scikitLearn": "1.7.2", "numpy": "2.3.4", "scipy": "1.16.3", "skops": "0.13.0"}


def run(name: str = "iris-baseline", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {"app.kubernetes.io/part-of": "demo", "mlops.dev/promoted": "true", "mlops.dev/model": "iris"},
        },
        "spec": {
            "datasetRef": {"name": "iris", "readAfter": "2026-01-01T00:00:00Z"},
            "model": {"name": "iris", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}},
            "evaluation": {"testSize": 0.25, "seed": 7, "goldenRows": 200},
            "promotion": {"gates": [{"metric": "accuracy", "min": 0.9}], "beatChampion": {"metric": "accuracy"}},
        },
        "status": {
            "phase": "Succeeded",
            "dataset": {"name": "iris", "version": "sha256:" + "d" * 64},
            "metrics": {"accuracy": 0.96, "f1_macro": 0.9598},
            "model": {
                "uri": "s3://b/models/ml/iris/x",
                "sha256": "e" * 64,
                "version": name,
                "goldenSha256": GOLDEN,
                "environment": ENVIRONMENT,
            },
            **status,
        },
    }


def test_the_copy_trains_on_the_pinned_version_with_the_same_seed_and_is_never_promoted() -> None:
    manifest = reproduction_manifest(run())
    spec = manifest["spec"]
    assert spec["datasetRef"] == {"name": "iris", "version": "sha256:" + "d" * 64}, "pinned, no readAfter"
    assert spec["evaluation"] == {"testSize": 0.25, "seed": 7, "goldenRows": 200}, "the same split and seed"
    assert spec["model"]["params"] == {"C": 0.5}
    assert spec["promotion"] == {"policy": "manual"}, "no gates, manual: it competes for nothing"
    assert manifest["metadata"]["generateName"] == "iris-baseline-repro-"
    labels = manifest["metadata"]["labels"]
    assert labels["mlops.dev/reproduces"] == "iris-baseline" and "mlops.dev/promoted" not in labels
    TrainingRunSpec.model_validate(spec)  # the schema's own rules take it


def test_a_long_name_leaves_room_for_the_generated_suffix() -> None:
    name = "a" * 40 + "-" + "b" * 16
    generate = reproduction_manifest(run(name))["metadata"]["generateName"]
    assert len(generate) + 5 <= 57 and not generate.removesuffix("-repro-").endswith("-")


@pytest.mark.parametrize("status", [{"phase": "Running"}, {"phase": "Failed", "model": None}, {"dataset": None}])
def test_only_a_run_that_stored_a_model_can_be_reproduced(status: dict[str, Any]) -> None:
    original = run()
    original["status"].update(status)
    original["status"] = {k: v for k, v in original["status"].items() if v is not None}
    with pytest.raises(PluginError, match="only a run that stored a model can be reproduced"):
        reproduction_manifest(original)


def test_the_same_golden_set_and_metrics_are_identical() -> None:
    compared = compare_runs(run(), run("iris-baseline-repro-x1"))
    assert compared.identical
    assert compared.lines[0] == "iris-baseline-repro-x1 reproduces iris-baseline: identical"
    assert any("the same predictions on the same rows" in line for line in compared.lines)
    assert any("the same libraries" in line for line in compared.lines)


def test_other_predictions_or_a_metric_off_by_a_bit_are_not_identical() -> None:
    other = run("copy")
    other["status"]["model"]["goldenSha256"] = "b" * 64
    compared = compare_runs(run(), other)
    assert not compared.identical and any("golden set   DIFFERS" in line for line in compared.lines)
    other = run("copy")
    other["status"]["metrics"]["accuracy"] = 0.96 + 1e-12
    compared = compare_runs(run(), other)
    assert not compared.identical and any(
        line.strip().startswith("accuracy") and "!=" in line for line in compared.lines
    )


def test_the_libraries_that_differ_are_named() -> None:
    other = run("copy")
    other["status"]["model"]["environment"] = {**ENVIRONMENT, "scikitLearn": "1.8.0"}
    compared = compare_runs(run(), other)
    assert compared.identical, "the same predictions and metrics on other libraries are still identical"
    assert any("scikitLearn 1.7.2 -> 1.8.0" in line for line in compared.lines)


def test_a_run_without_a_golden_set_or_a_failed_copy_is_not_called_identical() -> None:
    old = run()
    del old["status"]["model"]["goldenSha256"]
    assert not compare_runs(old, run("copy")).identical
    failed = run("copy", phase="Failed", reason="JobFailed", message="fit failed")
    del failed["status"]["model"]
    compared = compare_runs(run(), failed)
    assert not compared.identical and "did not reproduce" in compared.lines[0] and "fit failed" in compared.lines[0]


def test_reproduce_creates_polls_and_answers_with_its_exit_code() -> None:
    stored: dict[str, dict[str, Any]] = {"iris-baseline": run()}
    looks = []

    def create(body: dict[str, Any]) -> dict[str, Any]:
        made = copy.deepcopy(body)
        made["metadata"] |= {"name": "iris-baseline-repro-q", "namespace": "ml"}
        stored["iris-baseline-repro-q"] = made
        return made

    def fetch(name: str) -> dict[str, Any]:
        looks.append(name)
        if name != "iris-baseline" and len(looks) >= 3:  # it finishes at the second look
            stored[name] = run(name)
        return stored[name]

    said: list[str] = []
    assert reproduce(create, fetch, "iris-baseline", wait=True, timeout=60, say=said.append, poll_seconds=0) == 0
    assert "identical" in said[-1]
    stored["iris-baseline"]["status"]["metrics"]["accuracy"] = 0.5
    looks.clear()
    assert reproduce(create, fetch, "iris-baseline", wait=True, timeout=60, say=said.append, poll_seconds=0) == DIFFERS
