"""The golden set and its replay (modelformat/replay.py): a version's held-out rows with what the fitted model
predicted, compared again when a server loads it — labels exactly, values and probabilities within a
tolerance — and the verdict each reproducibility policy gives; then the server's load end to end."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from mlops_operator.modelformat.files import GOLDEN_FILE, MANIFEST, ModelIntegrityError, manifest_bytes
from mlops_operator.modelformat.replay import (
    Replay,
    environment_differences,
    golden_set,
    replay,
    served_on_other_libraries,
    verdict,
)


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(x, y), x


class Shifted:
    """A classifier that predicts as `model` but with its probabilities moved by `by` (relative)."""

    def __init__(self, model, by: float) -> None:
        self.model, self.by, self.classes_ = model, by, model.classes_

    def predict(self, x):
        return self.model.predict(x)

    def predict_proba(self, x):
        return self.model.predict_proba(x) * (1 + self.by)


def test_the_same_model_replays_its_golden_rows_exactly(iris) -> None:
    model, x = iris
    golden = json.loads(golden_set(model, x, max_rows=50))
    assert len(golden["rows"]) == 50 and golden["classes"] == [0, 1, 2]
    assert np.array_equal(np.asarray(golden["rows"]), x[:50]), "rows are written exactly"
    result = replay(golden, model)
    assert result == Replay(rows=50, equal=True, difference="", largest_probability_difference=0.0)


def test_the_golden_set_keeps_fewer_rows_rather_than_grow_past_its_bound(iris) -> None:
    model, x = iris
    text = golden_set(model, x, max_rows=150, max_bytes=8 * 1024)
    assert len(text) <= 8 * 1024 and 0 < len(json.loads(text)["rows"]) < 150


def test_probabilities_are_compared_within_the_tolerance_and_labels_exactly(iris) -> None:
    model, x = iris
    golden = json.loads(golden_set(model, x, max_rows=30))
    assert replay(golden, Shifted(model, 1e-12)).equal, "a difference of 1e-12 relative is within 1e-9"
    moved = replay(golden, Shifted(model, 1e-6))
    assert not moved.equal and moved.difference.startswith("row 0: probabilities ")
    assert moved.largest_probability_difference > 1e-9
    changed = {
        **golden,
        "predictions": [*golden["predictions"][:7], 2 - golden["predictions"][7], *golden["predictions"][8:]],
    }
    found = replay(changed, model)
    assert not found.equal and found.difference.startswith("row 7: predicted ")
    reordered = {**golden, "classes": [2, 1, 0]}
    assert "classes [0, 1, 2] where training had [2, 1, 0]" in replay(reordered, model).difference


def test_a_regressors_values_are_compared_within_the_tolerance() -> None:
    x, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(x, y)
    golden = json.loads(golden_set(model, x, max_rows=20))
    assert "probabilities" not in golden and replay(golden, model).equal
    nudged = {**golden, "predictions": [v * (1 + 1e-12) for v in golden["predictions"]]}
    assert replay(nudged, model).equal
    off = {**golden, "predictions": [golden["predictions"][0] + 1e-3, *golden["predictions"][1:]]}
    assert replay(off, model).difference.startswith("row 0: predicted ")


def test_only_the_deciding_libraries_recorded_are_compared() -> None:
    trained = {"python": "3.11.2", "scikitLearn": "1.9.1", "numpy": "2.4.6", "pyarrow": "20.0.0", "image": "a"}
    here = {"python": "3.11.2", "scikitLearn": "1.8.0", "numpy": "2.4.6", "pyarrow": "26.0.1", "image": "b"}
    assert environment_differences(trained, here) == {"scikitLearn": ("1.9.1", "1.8.0")}
    assert environment_differences({"scikitLearn": "1.9.1"}, {"scikitLearn": "1.9.1", "numpy": "2"}) == {}


SAME, OTHER = {}, {"scikitLearn": ("1.9.1", "1.8.0")}
EQUAL, DIFFERENT = Replay(200, True), Replay(200, False, "row 3: predicted 1 where training predicted 2")


@pytest.mark.parametrize(
    ("policy", "differences", "result", "serve", "reason"),
    [
        ("replay", SAME, EQUAL, True, "Reproduced"),
        ("replay", OTHER, EQUAL, True, "EnvironmentDiffers"),
        ("replay", OTHER, DIFFERENT, False, "ModelNotReproducible"),
        ("replay", SAME, DIFFERENT, False, "ModelNotReproducible"),  # same versions, other predictions: refused too
        ("replay", OTHER, None, True, "EnvironmentDiffers"),  # trained before golden sets: nothing to replay
        ("strict", SAME, EQUAL, True, "Reproduced"),
        ("strict", OTHER, EQUAL, False, "ModelNotReproducible"),
        ("strict", OTHER, None, False, "ModelNotReproducible"),
        ("off", OTHER, DIFFERENT, True, "ReplaySkipped"),
    ],
)
def test_each_policy_decides_from_the_libraries_and_the_replay(policy, differences, result, serve, reason) -> None:
    decided = verdict(policy, differences, result)
    assert (decided.serve, decided.reason) == (serve, reason), decided
    if reason == "ModelNotReproducible" and result is DIFFERENT:
        assert "row 3: predicted 1 where training predicted 2" in decided.message
    if differences and policy != "off":
        assert "scikitLearn 1.9.1 (trained) != 1.8.0 (here)" in decided.message


# ------------------------------------------------------------------------------ the server's load, end to end


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[pathlib.Path, str]:
    """An iris version trained and stored by the trainer, and the sha256 its TrainingRun records."""
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data.check import run_check
    from mlops_operator.storage import ArtifactStore
    from support import run_training_of

    store = ArtifactStore.from_uri(f"file://{tmp_path_factory.mktemp('store')}")
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}})
    check = run_check(spec, namespace="ns", name="iris", store=store, input_dir=pathlib.Path("/nonexistent"))
    dataset = {"name": "iris", "version": check["version"], "snapshotUri": check["snapshotUri"], "target": "target"}
    request = {
        "namespace": "ns",
        "run": "iris-a",
        "dataset": dataset,
        "spec": {
            "datasetRef": {"name": "iris"},
            "model": {"name": "iris", "estimator": "sklearn.linear_model.LogisticRegression"},
        },
    }
    result = run_training_of(request, store)
    return store.path(result.model_uri), result.sha256


def test_a_server_serves_a_version_whose_golden_rows_it_predicts_as_in_training(stored) -> None:
    from mlops_operator.server.runtime import load

    directory, sha256 = stored
    golden = json.loads((directory / GOLDEN_FILE).read_text())
    assert len(golden["rows"]) == 30, "iris holds out 30 rows, all kept (200 by default)"
    assert GOLDEN_FILE in json.loads((directory / MANIFEST).read_text())["files"]
    loaded, _ = load(f"file://{directory}", expected_sha256=sha256)
    assert loaded.reproducibility == "Reproduced"


def test_on_other_libraries_replay_serves_and_says_so_and_strict_refuses(stored, monkeypatch) -> None:
    from mlops_operator.server import runtime

    directory, sha256 = stored
    elsewhere = {**runtime.current_environment(), "scikitLearn": "0.0.1"}
    monkeypatch.setattr(runtime, "current_environment", lambda: elsewhere)
    loaded, _ = runtime.load(f"file://{directory}", expected_sha256=sha256)
    assert loaded.reproducibility == "EnvironmentDiffers"
    with pytest.raises(runtime.ModelNotReproducible, match="strict and the libraries differ: scikitLearn .* != 0.0.1"):
        runtime.load(f"file://{directory}", expected_sha256=sha256, reproducibility="strict")


def test_a_tampered_golden_set_is_caught_by_the_manifest_and_other_predictions_are_refused(
    stored, tmp_path: pathlib.Path
) -> None:
    from mlops_operator.server.runtime import ModelNotReproducible, load

    directory, sha256 = stored
    tampered = pathlib.Path(shutil.copytree(directory, tmp_path / "tampered"))
    golden = json.loads((tampered / GOLDEN_FILE).read_text())
    golden["predictions"][0] = (golden["predictions"][0] + 1) % 3
    (tampered / GOLDEN_FILE).write_text(json.dumps(golden))
    with pytest.raises(ModelIntegrityError, match="golden.json has sha256 .* changed after training"):
        load(f"file://{tampered}", expected_sha256=sha256)
    # With a manifest made to match (served by hand, no recorded sha256), the replay itself refuses it.
    names = json.loads((tampered / MANIFEST).read_text())["files"]
    (tampered / MANIFEST).write_bytes(manifest_bytes({n: (tampered / n).read_bytes() for n in names}))
    with pytest.raises(
        ModelNotReproducible, match="ModelNotReproducible: the golden rows are predicted differently: row 0"
    ):
        load(f"file://{tampered}", expected_sha256=None)
    assert load(f"file://{tampered}", expected_sha256=None, reproducibility="off")[0].reproducibility == "ReplaySkipped"


def test_the_versions_served_on_other_libraries_are_named_with_the_versions_that_differ() -> None:
    here = {"python": "3.11.2", "scikitLearn": "1.7.2", "numpy": "2.3.4", "image": "mlops-operator:b"}
    same = {"python": "3.11.2", "scikitLearn": "1.7.2", "numpy": "2.3.4", "image": "mlops-operator:a"}
    older = {"python": "3.11.2", "scikitLearn": "1.5.2", "numpy": "2.3.4"}
    assert served_on_other_libraries({"v1": same}, here) == "", "another image with the same libraries is the same"
    assert served_on_other_libraries({"v1": same, "v2": older}, here) == (
        "v2: scikitLearn 1.5.2 (trained) != 1.7.2 (served)"
    )
    assert served_on_other_libraries({"v0": {"scikitLearn": "1.7.2"}}, here) == "", "only what was recorded"
