"""The Argo CD health checks in docs/argocd/health, run by Argo CD's own engine on the statuses the controllers write.

Each sample status is produced by the controllers' own pure functions (dataset check results, condition
builders, the promotion policy, the canary state machine), so a change to the status shape shows up here.
The engine is Argo CD v3.6.1's code, in a small Go program built from its module
(hack/localcluster/argocd/luahealth): a kind's health goes the application controller's way — the
settings manager reads docs/argocd/argocd-cm.yaml, gitops-engine's GetResourceHealth runs the
customization in Argo CD's Lua VM, without the standard libraries (no useOpenLibs).

`.venv/bin/python tests/unit/test_argocd_health.py` regenerates docs/argocd/argocd-cm.yaml from the scripts.
"""

from __future__ import annotations

import functools
import json
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

import pytest
import yaml

from support import bin_dir

REPO = pathlib.Path(__file__).resolve().parents[2]
ARGOCD = REPO / "docs" / "argocd"
HEALTH = ARGOCD / "health"
KINDS = ("Dataset", "TrainingRun", "ModelDeployment")
NOW = "2026-01-01T00:00:00Z"
NAMESPACE = "ml"
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


# --- argocd-cm.yaml, generated from the scripts -------------------------------------------------------------


def render_argocd_cm() -> str:
    """docs/argocd/argocd-cm.yaml: every health script inlined under its resource.customizations key."""
    lines = [
        "# Generated from health/*.lua by `.venv/bin/python tests/unit/test_argocd_health.py`; do not edit.",
        "#",
        "# The Argo CD health checks of the mlops.dev kinds. They need no Lua standard library, so no",
        "# resource.customizations.useOpenLibs key. Add these data keys to the argocd-cm ConfigMap of your",
        "# Argo CD installation: `kubectl apply -n argocd -f docs/argocd/argocd-cm.yaml`, or, when argocd-cm",
        "# is managed elsewhere (the Argo CD Helm chart: values `configs.cm`), copy the keys there.",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind in KINDS:
        lines.append(f"  resource.customizations.health.mlops.dev_{kind}: |")
        script = (HEALTH / f"{kind}.lua").read_text()
        lines += [f"    {line}" if line else "" for line in script.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def test_argocd_cm_inlines_the_scripts() -> None:
    checked_in = (ARGOCD / "argocd-cm.yaml").read_text()
    assert checked_in == render_argocd_cm(), (
        "docs/argocd/argocd-cm.yaml differs from docs/argocd/health/*.lua: "
        "run `.venv/bin/python tests/unit/test_argocd_health.py`"
    )
    data = yaml.safe_load(checked_in)["data"]
    assert data == {f"resource.customizations.health.mlops.dev_{k}": (HEALTH / f"{k}.lua").read_text() for k in KINDS}


def test_one_script_per_kind() -> None:
    from mlops_operator.api import crd

    assert sorted(p.stem for p in HEALTH.glob("*.lua")) == sorted(info.kind for info in crd.KINDS) == sorted(KINDS)


def test_application_syncs_the_examples() -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    assert source["path"] == "examples" and (REPO / source["path"]).is_dir()
    assert "CHANGE-ME" in source["repoURL"], "the repoURL is a placeholder a reader must replace"


# --- running a script ----------------------------------------------------------------------------------------


@functools.cache
def lua_health_tool() -> pathlib.Path:
    """Argo CD's own Lua health engine, built from its Go module by hack/localcluster/build.sh (`make unit` and
    `make argocd` build it): hack/localcluster/argocd/luahealth."""
    version = next(
        line.split("=", 1)[1].split()[0]
        for line in (REPO / "hack/localcluster/versions.sh").read_text().splitlines()
        if line.startswith("ARGOCD_VERSION=")
    )
    tool = bin_dir() / f"argocd-lua-health-{version}"
    if not tool.exists():
        words = "LOCALCLUSTER_COMPONENTS=argocd hack/localcluster/build.sh (make unit does)"
        pytest.fail(
            f"{tool} is missing: the health checks run in Argo CD's own Lua engine. Build it: {words}", pytrace=False
        )
    return tool


def run_argocd(args: list[str], obj: dict[str, Any]) -> dict[str, str]:
    result = subprocess.run(
        [str(lua_health_tool()), *args, "-"], input=json.dumps(obj), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"Argo CD's Lua engine: exit {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def run_lua(script: str, obj: dict[str, Any]) -> dict[str, str]:
    """A health script run by Argo CD's Lua VM (`ExecuteHealthLua`), as the application controller runs it."""
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "health.lua"
        path.write_text(script)
        return run_argocd([str(path)], obj)


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """The health Argo CD computes for the object: its settings manager reads docs/argocd/argocd-cm.yaml and
    gitops-engine's GetResourceHealth runs the customization for the object's kind (the controller's path)."""
    assert obj.get("kind") == kind, "the customization is chosen by the object's own kind"
    hs = run_argocd(["--argocd-cm", str(ARGOCD / "argocd-cm.yaml")], obj)
    assert hs.get("status") in HEALTH_STATUSES, hs
    assert set(hs) <= {"status", "message"}, hs
    return hs


def test_the_runner_is_as_bare_as_argocd() -> None:
    for script in ('return {status = ("x"):upper()}', 'return {status = string.upper("x")}', "return {m = math.pi}"):
        with pytest.raises(AssertionError, match="script error"):
            run_lua(script, {})
    assert run_lua(
        'return {status = "Healthy", message = obj.a[2] .. tostring(obj.n)}', {"a": ["x", 'y"\n'], "n": 3}
    ) == {
        "status": "Healthy",
        "message": 'y"\n3',
    }


# --- samples: what the controllers write ---------------------------------------------------------------------


def example(filename: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / filename).read_text())


def resource(manifest: dict[str, Any], *, generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    """The object as the API server returns it: the manifest, server-set metadata, and the status."""
    obj = json.loads(json.dumps(manifest))
    obj["metadata"].update(namespace=NAMESPACE, generation=generation, uid="0c6e-" + obj["metadata"]["name"])
    if status is not None:
        obj["status"] = json.loads(json.dumps(status))
    return obj


# Dataset: the check Job's result folded in by the controller (apply_check_result, then the conditions).


@pytest.fixture(scope="module")
def dataset_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from mlops_operator.api.dataset import DatasetSpec, DatasetStatus
    from mlops_operator.controllers.dataset import apply_check_result, wire, with_conditions
    from mlops_operator.data.check import run_check
    from mlops_operator.storage import ArtifactStore

    manifest = example("dataset-iris.yaml")
    spec = DatasetSpec.model_validate(manifest["spec"])
    store = ArtifactStore.from_uri("pvc://mlops-artifacts", str(tmp_path_factory.mktemp("store")))

    def written(status: DatasetStatus, generation: int) -> dict[str, Any]:
        return wire(with_conditions(status, generation=generation, now=NOW))

    checking = DatasetStatus(checks=1, active_check="iris-check-1", checked_generation=1)
    good = run_check(spec, namespace=NAMESPACE, name="iris", store=store, input_dir=tmp_path_factory.mktemp("in"))
    assert good["ok"], good
    ready = apply_check_result(checking.model_copy(update={"active_check": None}), good, spec=spec, now=NOW)
    strict = DatasetSpec.model_validate({**manifest["spec"], "schema": {**manifest["spec"]["schema"], "minRows": 1000}})
    bad = run_check(strict, namespace=NAMESPACE, name="iris", store=store, input_dir=tmp_path_factory.mktemp("in"))
    assert bad["reason"] == "SchemaViolation", bad
    failed = apply_check_result(ready.model_copy(update={"checked_generation": 2}), bad, spec=strict, now=NOW)
    rechecking = ready.model_copy(update={"checks": 2, "active_check": "iris-check-2", "checked_generation": 2})
    return {
        "rechecking": resource(manifest, generation=2, status=written(rechecking, 2)),
        "progressing": resource(manifest, generation=1, status=written(checking, 1)),
        "healthy": resource(manifest, generation=1, status=written(ready, 1)),
        "degraded": resource(manifest, generation=2, status=written(failed, 2)),
        "stale": resource(manifest, generation=2, status=written(ready, 1)),
        "no-status": resource(manifest, generation=1, status=None),
    }


@pytest.mark.parametrize(
    ("sample", "status", "words"),
    [
        ("progressing", "Progressing", "waiting for the first validated version of the data"),
        ("healthy", "Healthy", "is available (150 rows)"),
        ("degraded", "Degraded", "SchemaViolation: "),
        ("rechecking", "Progressing", "checking the source against generation 2"),
        ("stale", "Progressing", "Waiting for the operator to observe generation 2"),
        ("no-status", "Progressing", "Waiting for the operator to observe generation 1"),
    ],
)
def test_dataset_health(dataset_samples: dict[str, dict[str, Any]], sample: str, status: str, words: str) -> None:
    hs = health("Dataset", dataset_samples[sample])
    assert hs["status"] == status and words in hs["message"], hs


def test_dataset_failed_check_names_the_problem_and_the_kept_version(dataset_samples) -> None:
    hs = health("Dataset", dataset_samples["degraded"])
    assert "1000" in hs["message"] and "the last good version sha256:" in hs["message"], hs


# TrainingRun: phases as progress_training writes them, promotion as decide_promotion decides it.


def _trainingrun(
    manifest: dict[str, Any], status: dict[str, Any], *, generation: int = 1, observed: int | None = None
) -> dict[str, Any]:
    from mlops_operator.api.trainingrun import TrainingRunStatus
    from mlops_operator.controllers.trainingrun import training_conditions, wire

    observed = generation if observed is None else observed
    parsed = TrainingRunStatus.model_validate(status)
    conditions = training_conditions(parsed, generation=observed, now=NOW)
    settled = parsed.model_copy(update={"conditions": conditions, "observed_generation": observed})
    return resource(manifest, generation=generation, status=wire(settled))


def _promotion(manifest: dict[str, Any], metrics: dict[str, float], *, approved: bool = False) -> dict[str, Any]:
    """status.promotion as reconcile_promotion records it."""
    from mlops_operator.api.trainingrun import TrainingRunSpec
    from mlops_operator.registry.promotion import Champion, decide_promotion

    spec = TrainingRunSpec.model_validate(manifest["spec"])
    champion = Champion(name="iris-baseline", metrics={"accuracy": 0.3333})
    decision = decide_promotion(metrics=metrics, promotion=spec.promotion, champion=champion, approved=approved)
    return decision.as_status(decided_at=NOW).model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.fixture(scope="module")
def trainingrun_samples() -> dict[str, dict[str, Any]]:
    from mlops_operator.api.common import Condition
    from mlops_operator.api.trainingrun import TrainingRunStatus
    from mlops_operator.controllers.contract import invalid_spec_status
    from mlops_operator.resources.jobs import child_name

    manifest = example("trainingrun-iris-logreg.yaml")
    manual = json.loads(json.dumps(manifest))
    manual["spec"]["promotion"]["policy"] = "manual"
    job = child_name("iris-logreg", "train")
    pin = {
        "name": "iris",
        "version": "sha256:" + "a" * 64,
        "snapshotUri": "pvc://mlops-artifacts/datasets/x",
        "target": "target",
    }
    running = {
        "phase": "Running",
        "reason": "JobRunning",
        "message": f"Job {job} is training",
        "dataset": pin,
        "jobName": job,
        "attempts": 1,
        "startedAt": NOW,
    }
    metrics = {"accuracy": 0.9778, "f1_macro": 0.9776}
    succeeded = {
        **running,
        "phase": "Succeeded",
        "reason": "JobSucceeded",
        "message": "model stored at pvc://mlops-artifacts/models/ml/iris/iris-logreg",
        "completedAt": NOW,
        "durationSeconds": 4.2,
        "metrics": metrics,
        "primaryMetric": "accuracy",
        "primaryValue": "0.9778",
        "model": {
            "uri": "pvc://mlops-artifacts/models/ml/iris/iris-logreg",
            "sha256": "b" * 64,
            "version": "iris-logreg",
        },
    }
    failed = {
        **running,
        "phase": "Failed",
        "reason": "JobFailed",
        "completedAt": NOW,
        "attempts": 2,
        "message": "after 2 attempt(s): ValueError: C must be positive; got (C=-1)",
    }
    samples = {
        "pending": _trainingrun(
            manifest,
            {"phase": "Pending", "reason": "DatasetNotReady", "message": "Dataset iris has no validated version yet"},
        ),
        "progressing": _trainingrun(manifest, running),
        "healthy": _trainingrun(manifest, {**succeeded, "promotion": _promotion(manifest, metrics)}),
        "rejected": _trainingrun(manifest, {**succeeded, "promotion": _promotion(manifest, {"accuracy": 0.35})}),
        "suspended": _trainingrun(manual, {**succeeded, "promotion": _promotion(manual, metrics)}),
        "approved": _trainingrun(manual, {**succeeded, "promotion": _promotion(manual, metrics, approved=True)}),
        "degraded": _trainingrun(manifest, failed),
        "deadline": _trainingrun(
            manifest,
            {**failed, "reason": "DeadlineExceeded", "message": "training exceeded activeDeadlineSeconds=3600"},
        ),
        "no-store": _trainingrun(
            manifest,
            {
                "phase": "Pending",
                "reason": "ArtifactStoreMissing",
                "dataset": pin,
                "message": "the artifact store PersistentVolumeClaim mlops-artifacts does not exist in namespace ml",
            },
        ),
        "stale": _trainingrun(manifest, running, generation=3, observed=2),
        "no-status": resource(manifest, generation=1, status=None),
    }
    invalid = invalid_spec_status({}, message="spec.model.estimator: not allowed", generation=1, now=NOW)
    samples["invalid-spec"] = resource(manifest, generation=1, status=invalid)
    for sample in samples.values():  # the samples are statuses the model accepts
        TrainingRunStatus.model_validate(sample.get("status") or {})
        [Condition.model_validate(c) for c in (sample.get("status") or {}).get("conditions", [])]
    return samples


@pytest.mark.parametrize(
    ("sample", "status", "words"),
    [
        ("pending", "Progressing", "DatasetNotReady: Dataset iris has no validated version yet"),
        ("progressing", "Progressing", "JobRunning: Job iris-logreg-train is training"),
        ("healthy", "Healthy", "Succeeded; promotion Promoted: gates passed: accuracy 0.9778"),
        ("rejected", "Healthy", "Succeeded; promotion Rejected: accuracy 0.35 is below the gate's min 0.8"),
        ("suspended", "Suspended", "PendingApproval: gates passed"),
        ("approved", "Healthy", "promotion Promoted"),
        ("degraded", "Degraded", "JobFailed: after 2 attempt(s): ValueError: C must be positive"),
        ("deadline", "Degraded", "DeadlineExceeded: training exceeded activeDeadlineSeconds=3600"),
        ("no-store", "Degraded", "ArtifactStoreMissing: the artifact store PersistentVolumeClaim"),
        ("invalid-spec", "Degraded", "InvalidSpec: spec.model.estimator: not allowed"),
        ("stale", "Progressing", "Waiting for the operator to observe generation 3"),
        ("no-status", "Progressing", "Waiting for the operator to observe generation 1"),
    ],
)
def test_trainingrun_health(trainingrun_samples: dict[str, dict[str, Any]], sample: str, status: str, words: str):
    hs = health("TrainingRun", trainingrun_samples[sample])
    assert hs["status"] == status and words in hs["message"], hs


def test_pending_approval_says_how_to_approve(trainingrun_samples) -> None:
    assert "mlops.dev/approved=true" in health("TrainingRun", trainingrun_samples["suspended"])["message"]


# ModelDeployment: the canary state machine (next_rollout), the serving results apply_serving records, and
# deployment_conditions, on the spec of examples/modeldeployment-iris.yaml.

V1 = ("iris-baseline", "pvc://mlops-artifacts/models/ml/iris/iris-baseline", "1" * 64)
V2 = ("iris-logreg", "pvc://mlops-artifacts/models/ml/iris/iris-logreg", "2" * 64)
V3 = ("iris-guess", "pvc://mlops-artifacts/models/ml/iris/iris-guess", "3" * 64)


class Rollout:
    """One ModelDeployment driven like its controller drives it, reconcile after reconcile."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        import datetime as dt

        from mlops_operator.api.modeldeployment import ModelDeploymentSpec

        self.manifest = manifest
        self.spec = ModelDeploymentSpec.model_validate(manifest["spec"])
        self.status: dict[str, Any] = {}
        self.start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def reconcile(
        self,
        seconds: float,
        target: tuple[str, str, str] | None,
        *,
        ready_stable: int | None = None,
        ready_canary: int = 0,
        measurement: str | None = None,
        message: str = "",
        commands: dict[str, str] | None = None,
        why: str = "",
    ) -> Rollout:
        import datetime as dt

        from mlops_operator.api.modeldeployment import ModelDeploymentStatus
        from mlops_operator.config import OperatorConfig
        from mlops_operator.controllers.modeldeployment import deployment_conditions
        from mlops_operator.resources.serving import plan_serving
        from mlops_operator.rollout.canary import Observation, Target, next_rollout, variant_replicas

        observation = Observation(
            now=self.start + dt.timedelta(seconds=seconds),
            target=Target(*target) if target else None,
            canary_ready_replicas=ready_canary,
            measurement=measurement,
            measurement_message=message,
            commands=commands or {},
        )
        decision = next_rollout(self.spec, ModelDeploymentStatus.model_validate(self.status), observation)
        status = decision.status
        if status.stable:  # what apply_serving records after applying the plan (no pod left over to hold)
            canary, stable = status.canary, status.stable
            plan = plan_serving(
                self.spec,
                md="iris",
                uid="u",
                namespace="ml",
                model="iris",
                stable=stable,
                canary=canary,
                wanted=variant_replicas(self.spec.replicas, decision.canary_weight, gateway=False),
                deployments={"stable": None, "canary": None},
                config=OperatorConfig(),
                receipt_secret=None,
            )
            stable.replicas, stable.weight = plan.stable.replicas, 100 - plan.canary_share
            stable.ready_replicas = plan.stable.replicas if ready_stable is None else ready_stable
            if canary:
                canary.replicas, canary.weight = plan.canary.replicas, plan.canary_share
                canary.ready_replicas = ready_canary
        status.conditions, status.phase = deployment_conditions(status, why=why, generation=1, now=NOW)
        status.observed_generation = 1
        self.status = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self

    def object(self, *, generation: int = 1) -> dict[str, Any]:
        return resource(self.manifest, generation=generation, status=self.status)


def _failed_accuracy() -> str:
    from mlops_operator.api.modeldeployment import AnalysisMetric
    from mlops_operator.rollout.analysis import judge

    passed, words = judge(AnalysisMetric(name="accuracy", template="accuracy", threshold=0.8), 0.31)
    assert not passed
    return words


@pytest.fixture(scope="module")
def modeldeployment_samples() -> dict[str, dict[str, Any]]:
    from mlops_operator.api.modeldeployment import ModelDeploymentStatus

    manifest = example("modeldeployment-iris.yaml")
    manual = json.loads(json.dumps(manifest))
    manual["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]
    paused = json.loads(json.dumps(manifest))
    paused["spec"]["paused"] = True
    single_step = json.loads(json.dumps(manifest))
    scaled = json.loads(json.dumps(manifest))  # kubectl scale, or the autoscaler, took it to 6 pods
    scaled["spec"]["replicas"] = 6
    single_step["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 50}]

    def serving(spec_manifest: dict[str, Any]) -> Rollout:
        return Rollout(spec_manifest).reconcile(0, V1)

    def in_pause(spec_manifest: dict[str, Any]) -> Rollout:  # canary pods for 25 % ready: on to step 1
        return serving(spec_manifest).reconcile(10, V2).reconcile(11, V2, ready_canary=1)

    failed = _failed_accuracy()
    rolled_back = serving(manifest).reconcile(10, V3).reconcile(11, V3, ready_canary=1)
    for seconds in (20, 40):
        rolled_back.reconcile(seconds, V3, ready_canary=1, measurement="Failed", message=failed)
    inconclusive = in_pause(manifest)
    for seconds in (20, 40, 60, 80):
        inconclusive.reconcile(seconds, V2, ready_canary=1, measurement="Inconclusive", message="accuracy: no data yet")
    guarded = serving(single_step).reconcile(10, V2).reconcile(11, V2, ready_canary=2)
    guarded.reconcile(12, V2, ready_canary=2, measurement="Successful")  # promoted on a passing measurement
    assert guarded.status["stable"]["version"] == "iris-logreg" and guarded.status["lastGood"], guarded.status
    for seconds in (30, 60):
        guarded.reconcile(seconds, V2, measurement="Failed", message=failed)
    samples = {
        "pending": Rollout(manifest).reconcile(0, None, why="model iris has no promoted version yet").object(),
        "starting": Rollout(manifest).reconcile(0, V1, ready_stable=0).object(),
        "healthy": serving(manifest).object(),
        "scaling": Rollout(scaled).reconcile(0, V1, ready_stable=2).object(),
        "progressing": in_pause(manifest).object(),
        "suspended": in_pause(manual).object(),
        "inconclusive": inconclusive.object(),
        "spec-paused": in_pause(paused).object(),
        "degraded": rolled_back.object(),
        "post-promotion": guarded.object(),
        "aborted": in_pause(manifest).reconcile(20, V2, ready_canary=1, commands={"abort": "1"}).object(),
        "stale": in_pause(manifest).object(generation=2),
        "no-status": resource(manifest, generation=1, status=None),
    }
    for sample in samples.values():  # the samples are statuses the model accepts
        ModelDeploymentStatus.model_validate(sample.get("status") or {})
    return samples


@pytest.mark.parametrize(
    ("sample", "status", "words"),
    [
        ("pending", "Progressing", "ModelNotFound: model iris has no promoted version yet"),
        ("starting", "Progressing", "StableNotReady: waiting for pods of iris-baseline"),
        ("healthy", "Healthy", "iris-baseline serves 100%"),
        ("scaling", "Healthy", "iris-baseline serves 100% (scaling: 2 of 6 pods ready)"),
        ("progressing", "Progressing", "Canary iris-logreg at 25%, step 1"),
        (
            "suspended",
            "Suspended",
            "iris-logreg at 25%, step 1: paused for a manual promote (annotation mlops.dev/promote)",
        ),
        ("inconclusive", "Suspended", "analysis inconclusive, resume with the annotation mlops.dev/resume"),
        ("spec-paused", "Suspended", "paused by spec.paused"),
        ("degraded", "Degraded", "Rolled back iris-guess (AnalysisFailed): accuracy 0.31 < 0.8"),
        ("post-promotion", "Degraded", "Rolled back iris-logreg (PostPromotionAnalysisFailed): iris-logreg failed"),
        ("aborted", "Degraded", "Rolled back iris-logreg (Aborted): aborted by the user"),
        ("stale", "Progressing", "Waiting for the operator to observe generation 2"),
        ("no-status", "Progressing", "Waiting for the operator to observe generation 1"),
    ],
)
def test_modeldeployment_health(
    modeldeployment_samples: dict[str, dict[str, Any]], sample: str, status: str, words: str
) -> None:
    hs = health("ModelDeployment", modeldeployment_samples[sample])
    assert hs["status"] == status and words in hs["message"], hs


def test_phase_and_health_agree(modeldeployment_samples) -> None:
    """The printer column and Argo CD tell the same story."""
    expected = {
        "Healthy": "Healthy",
        "Degraded": "Degraded",
        "Paused": "Suspended",
        "Progressing": "Progressing",
        "Pending": "Progressing",
    }
    for name, obj in modeldeployment_samples.items():
        if obj.get("status") and name != "stale":
            assert health("ModelDeployment", obj)["status"] == expected[obj["status"]["phase"]], name


# --- what every kind shares ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_numbers_given_as_strings_are_compared_as_numbers(kind: str) -> None:
    """Argo CD hands some integers to Lua as strings (json.Number): generations still compare as numbers."""
    obj = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "generation": "10"},
        "status": {"observedGeneration": "9", "conditions": []},
    }
    assert health(kind, obj) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 10",
    }
    obj["status"]["observedGeneration"] = 10
    assert health(kind, obj) == {
        "status": "Progressing",
        "message": "Waiting for the operator to report the Ready condition",
    }


if __name__ == "__main__":
    (ARGOCD / "argocd-cm.yaml").write_text(render_argocd_cm())
    sys.exit(0)
