"""Dataset content: canonical versions, schema problems that name columns and rows, profiles, PSI; and the
controller's decisions on DatasetStatus, and a reconcile that changes nothing writing nothing."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest

from mlops_operator.api.clock import parse_duration
from mlops_operator.api.dataset import DatasetCheck, DatasetSpec, DatasetStatus, DatasetVersion
from mlops_operator.api.reasons import DatasetPhase
from mlops_operator.config import OperatorConfig
from mlops_operator.controllers import dataset as controller
from mlops_operator.controllers.cache import ObjectCache
from mlops_operator.controllers.contract import Observed, apply_merge_patch, status_patch
from mlops_operator.controllers.dataset import (
    CHECK_RETRY_SECONDS,
    apply_check_result,
    artifact_store_missing,
    check_due,
    dataset_conditions,
    reconcile_dataset,
    wire,
)
from mlops_operator.data.check import run_check
from mlops_operator.data.profile import bin_shares, build_profile, psi
from mlops_operator.data.table import TableError, parse_csv
from mlops_operator.data.validate import schema_problems
from mlops_operator.resources.jobs import termination_result
from mlops_operator.resources.results import TERMINATION_MESSAGE_MAX_BYTES, read_check_result, termination_message
from mlops_operator.storage import ArtifactStore, StoreError, dataset_prefix


def test_version_ignores_line_endings_and_quoting() -> None:
    a = parse_csv(b"x,y,target\n1,2,0\n3,4,1\n")
    b = parse_csv(b'"x","y","target"\r\n1,2,0\r\n3,4,1\r\n\r\n')
    assert a.version == b.version
    assert parse_csv(b"x,y,target\n1,2,0\n3,4,0\n").version != a.version


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"a,a\n1,2\n", "repeats"),
        (b"a,b\n1\n", "row 1 has 1 cells"),
        (b"\xff\xfe", "not UTF-8"),
        (b"a,b\n1\r2,3\n", "line 2: new-line character seen in unquoted field"),  # was an uncaught csv.Error
        (b"a,b\n" + b"1,2\n" * 70_000 + b"3\n", "row 70001 has 1 cells"),  # past pyarrow's first blocks
    ],
)
def test_malformed_csv(data: bytes, words: str) -> None:
    with pytest.raises(TableError, match=words):
        parse_csv(data)


def _spec(**schema) -> DatasetSpec:
    return DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}, "schema": schema})


def test_schema_problems_name_column_and_first_rows() -> None:
    table = parse_csv(b"a,b,target\n1,x,0\n2,,1\n99,y,1\n-5,z,0\n")
    spec = _spec(
        minRows=10,
        columns=[
            {"name": "a", "type": "integer", "min": 0, "max": 10},
            {"name": "b", "type": "category", "allowedValues": ["x", "y"]},
            {"name": "c", "type": "float"},
        ],
    )
    problems = schema_problems(table, spec)
    assert problems[0] == "the data has 4 rows, fewer than minRows 10"
    assert "column 'a': row 3: 99 is above the maximum 10; row 4: -5 is below the minimum 0" in problems
    assert (
        "column 'b': row 2: is empty but the column is not nullable; row 4: 'z' is not one of the allowed values"
        in (problems)
    )
    assert "column 'c' is missing from the header" in problems


def test_missing_target_is_a_problem() -> None:
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}, "target": "label"})
    assert schema_problems(parse_csv(b"a,b\n1,2\n"), spec) == [
        "the target column 'label' is not in the header ['a', 'b']"
    ]


def test_profile_and_psi() -> None:
    table = parse_csv(b"x,target\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(100)))
    profile = build_profile(table, "target")
    x = profile["features"]["x"]
    assert len(x["edges"]) == 9 and abs(sum(x["shares"]) - 1) < 1e-9
    assert profile["target"]["shares"] == {"0": 0.5, "1": 0.5}
    import numpy as np

    same = bin_shares(np.arange(100, dtype=float), x["edges"])
    shifted = bin_shares(np.arange(100, dtype=float) + 60, x["edges"])
    assert psi(x["shares"], same) < 0.01 < 0.2 < psi(x["shares"], shifted)


def test_snapshot_is_content_addressed_and_never_overwritten(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri(f"file://{tmp_path}")
    spec = DatasetSpec.model_validate({"source": {"builtin": {"name": "wine"}}})
    first = run_check(spec, namespace="ns", name="wine", store=store, input_dir=tmp_path)
    path = store.path(first["snapshotUri"])
    stamp = path.stat().st_mtime_ns
    again = run_check(spec, namespace="ns", name="wine", store=store, input_dir=tmp_path)
    assert again["version"] == first["version"] and path.stat().st_mtime_ns == stamp
    assert first["snapshotUri"].endswith(f"datasets/ns/wine/{first['version'][7:]}/data.csv")


def test_store_refuses_foreign_and_escaping_uris(tmp_path: pathlib.Path) -> None:
    store = ArtifactStore.from_uri("pvc://artifacts", str(tmp_path))
    assert store.path("pvc://artifacts/models/a") == tmp_path / "models/a"
    for uri in ("pvc://other/models/a", "pvc://artifacts/../etc/passwd", "file:///etc/passwd"):
        with pytest.raises(StoreError):
            store.path(uri)
    for root in ("gs://bucket", "s3://", "pvc://"):
        with pytest.raises(StoreError, match="s3://<bucket>"):
            ArtifactStore.from_uri(root)


NOW = "2026-01-01T00:10:00Z"
VERSION_A, VERSION_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
URL = {"url": {"url": "https://e.org/x.csv"}}
IRIS = {"builtin": {"name": "iris"}}


def _status(**fields) -> DatasetStatus:
    return DatasetStatus.model_validate(fields)


STUCK = 'pod d-check-1-x cannot start: CreateContainerConfigError: secret "mlops-s3" not found'


def _blocked(*, ended_jobs: int = 0, at: str | None = None) -> dict:
    fields = {"reason": "PodCannotStart", "message": STUCK, "job": "d-check-1", "since": NOW}
    return {**fields, "endedJobs": ended_jobs, "endedAt": at}


def _stored(version: str, file: str) -> str:
    """Where the check of Dataset ml/d stores `file` of `version` (a result naming anything else is refused)."""
    return f"s3://b/{dataset_prefix('ml', 'd', version)}/{file}"


def _ok(version: str = VERSION_A, rows: int = 3) -> dict:
    return {
        "ok": True,
        "version": version,
        "rows": rows,
        "snapshotUri": _stored(version, "data.csv"),
        "columns": ["x"],
        "profileUri": _stored(version, "profile.json"),
    }


@pytest.mark.parametrize(
    ("source", "status", "due"),
    [
        (IRIS, _status(), True),
        (IRIS, _status(checkedGeneration=1, lastCheckedAt="2020-01-01T00:00:00Z"), False),
        (IRIS, _status(checkedGeneration=0, lastCheckedAt="2020-01-01T00:00:00Z"), True),  # a new generation
        (URL, _status(checkedGeneration=1, lastCheckedAt="2026-01-01T00:09:00Z"), False),
        (URL, _status(checkedGeneration=1, lastCheckedAt="2026-01-01T00:00:00Z"), True),
        (URL, _status(checkedGeneration=1), False),  # its check is still running
        # a check Job that ended before its pod started: the next after the backoff, builtin sources too
        (IRIS, _status(checkedGeneration=1, blockedCheck=_blocked(ended_jobs=1, at="2026-01-01T00:09:51Z")), False),
        (IRIS, _status(checkedGeneration=1, blockedCheck=_blocked(ended_jobs=1, at="2026-01-01T00:09:50Z")), True),
        (
            URL,
            _status(
                checkedGeneration=1,
                lastCheckedAt="2026-01-01T00:09:00Z",
                blockedCheck=_blocked(ended_jobs=2, at="2026-01-01T00:09:30Z"),
            ),
            True,
        ),
        (URL, _status(checkedGeneration=1, blockedCheck=_blocked(ended_jobs=9, at="2026-01-01T00:05:01Z")), False),
        (URL, _status(checkedGeneration=1, blockedCheck=_blocked(ended_jobs=9, at="2026-01-01T00:05:00Z")), True),
        # a check whose pod cannot start, still waiting: no other check meanwhile
        (IRIS, _status(checkedGeneration=1, blockedCheck=_blocked()), False),
    ],
)
def test_check_due(source: dict, status: DatasetStatus, due: bool) -> None:
    spec = DatasetSpec.model_validate({"source": source})
    assert check_due(spec, status, generation=1, now=NOW) is due


def test_failed_check_keeps_the_last_good_version() -> None:
    spec = DatasetSpec.model_validate({"source": URL, "historyLimit": 2})
    status = apply_check_result(DatasetStatus(), _ok(), spec=spec, now=NOW)
    status = apply_check_result(
        status, {"ok": False, "reason": "SchemaViolation", "message": "bad"}, spec=spec, now=NOW
    )
    assert status.version == VERSION_A and len(status.history) == 1
    assert status.last_check == DatasetCheck(succeeded=False, reason="SchemaViolation", message="bad", at=NOW)
    conditions, phase = dataset_conditions(status, generation=1, now=NOW)
    ready = next(cond for cond in conditions if cond.type == "Ready")
    assert (ready.status, ready.reason, phase) == ("False", "SchemaViolation", "Failed")
    assert "the last good version sha256:aaaa" in ready.message
    for letter in "bc":
        status = apply_check_result(status, _ok("sha256:" + letter * 64), spec=spec, now=NOW)
    assert [h.version[7] for h in status.history] == ["c", "b"], "newest first, at most historyLimit"


def test_a_version_seen_before_keeps_its_history_entry() -> None:
    spec = DatasetSpec.model_validate({"source": URL})
    first = apply_check_result(DatasetStatus(checkedGeneration=1), _ok(), spec=spec, now="2026-01-01T00:00:00Z")
    second = apply_check_result(first, _ok(VERSION_B), spec=spec, now="2026-01-01T00:01:00Z")
    kept = second.model_copy(deep=True)
    back = apply_check_result(second, _ok(), spec=spec, now="2026-01-01T00:02:00Z")
    assert second == kept, "the input is never modified"
    assert [h.version for h in back.history] == [VERSION_A, VERSION_B]
    assert back.history[0] == DatasetVersion(
        version=VERSION_A, rows=3, snapshotUri=_stored(VERSION_A, "data.csv"), createdAt="2026-01-01T00:00:00Z"
    )
    assert (back.version, back.snapshot_uri, back.profile_ref, back.columns) == (
        VERSION_A,
        _stored(VERSION_A, "data.csv"),
        _stored(VERSION_A, "profile.json"),
        ["x"],
    )
    assert back.last_check == DatasetCheck(
        succeeded=True,
        reason="ValidationSucceeded",
        at="2026-01-01T00:02:00Z",
        message=f"version {VERSION_A} with 3 rows",
        generation=1,
    )


def test_a_failure_without_a_reason_is_an_unavailable_source() -> None:
    spec = DatasetSpec.model_validate({"source": URL})
    status = apply_check_result(DatasetStatus(), {"ok": False}, spec=spec, now=NOW)
    assert (status.last_check.reason, status.last_check.message, status.last_checked_at) == (
        "SourceUnavailable",
        "",
        NOW,
    )


GOOD = _status(
    version=VERSION_A,
    rows=3,
    lastCheck={"succeeded": True, "reason": "ValidationSucceeded", "message": "fine", "at": NOW, "generation": 1},
)
BAD = {"succeeded": False, "reason": "ChecksumMismatch", "message": "sha differs", "at": NOW, "generation": 1}


@pytest.mark.parametrize(
    ("status", "generation", "validated", "ready", "phase", "words"),
    [
        (
            _status(),
            1,
            ("Unknown", "ValidationPending"),
            ("False", "ValidationPending"),
            "Pending",
            "waiting for the first validated version",
        ),
        (
            GOOD,
            1,
            ("True", "ValidationSucceeded"),
            ("True", "ValidationSucceeded"),
            "Ready",
            f"version {VERSION_A} is available",
        ),
        (
            GOOD,
            2,
            ("Unknown", "ValidationPending"),
            ("False", "ValidationPending"),
            "Pending",
            f"checking the source against generation 2; version {VERSION_A} (checked against generation 1) stays",
        ),
        (
            _status(lastCheck=BAD),
            1,
            ("False", "ChecksumMismatch"),
            ("False", "ChecksumMismatch"),
            "Failed",
            "sha differs; no version is available",
        ),
        (
            _status(version=VERSION_A, lastCheck=BAD),
            1,
            ("False", "ChecksumMismatch"),
            ("False", "ChecksumMismatch"),
            "Failed",
            f"sha differs; the last good version {VERSION_A} stays available",
        ),
        # a check whose pod cannot start waits for the cause: Pending, not Failed; the last version kept
        (
            _status(version=VERSION_A, lastCheck=GOOD.last_check, activeCheck="d-check-1", blockedCheck=_blocked()),
            1,
            ("Unknown", "PodCannotStart"),
            ("False", "PodCannotStart"),
            "Pending",
            'secret "mlops-s3" not found; check Job d-check-1 waits for that and goes on once it is fixed; the last '
            f"good version {VERSION_A} stays available",
        ),
        (
            _status(blockedCheck=_blocked(ended_jobs=2, at=NOW)),
            1,
            ("Unknown", "PodCannotStart"),
            ("False", "PodCannotStart"),
            "Pending",
            "not found; 2 check Job(s) ended before their pod started, the next starts at 2026-01-01T00:10:30.000Z",
        ),
        # a missing artifact store is reported for no generation: it is never stale
        (
            _status(lastCheck={"succeeded": False, "reason": "ArtifactStoreMissing", "message": "no claim", "at": NOW}),
            7,
            ("False", "ArtifactStoreMissing"),
            ("False", "ArtifactStoreMissing"),
            "Failed",
            "no claim",
        ),
    ],
)
def test_dataset_conditions(status, generation, validated, ready, phase, words) -> None:
    conditions, got_phase = dataset_conditions(status, generation=generation, now=NOW)
    assert [cond.type for cond in conditions] == ["Validated", "Ready"]
    assert (conditions[0].status, conditions[0].reason) == validated
    assert (conditions[1].status, conditions[1].reason) == ready
    assert words in conditions[1].message
    assert got_phase == phase and isinstance(got_phase, DatasetPhase)
    assert all(cond.observed_generation == generation and cond.last_transition_time == NOW for cond in conditions)


def test_a_missing_artifact_store_is_reported_once_and_consumes_no_check() -> None:
    status = _status(checkedGeneration=1, lastCheckedAt="2025-12-31T00:00:00Z")
    reported = artifact_store_missing(status, problem="no claim", now=NOW)
    assert reported.last_check == DatasetCheck(
        succeeded=False, reason="ArtifactStoreMissing", message="no claim", at=NOW
    )
    assert (reported.checked_generation, reported.last_checked_at) == (1, "2025-12-31T00:00:00Z")
    assert artifact_store_missing(reported, problem="no claim", now=NOW) is None


# --- the reconcile, in a world of fakes: what it writes, and that the next one writes nothing ---------------


class DatasetWorld:
    """The reads and writes reconcile_dataset makes, answered from memory; status stored as the API would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, spec: dict) -> None:
        self.spec = DatasetSpec.model_validate(spec)
        self.status: dict = {}
        self.generation = 1
        self.jobs: dict[str, dict] = {}
        self.pods: list[dict] = []
        self.store_problem: str | None = None
        self.events: list[tuple[str, str]] = []
        self.patches: list[dict] = []
        monkeypatch.setattr(controller, "CACHE", ObjectCache())
        monkeypatch.setattr(controller, "read_child", lambda plural, namespace, name, *, uid: self.jobs.get(name))
        monkeypatch.setattr(controller, "job_pods", lambda namespace, job: self.pods)
        monkeypatch.setattr(controller, "artifact_store_problem", lambda namespace: self.store_problem)
        monkeypatch.setattr(controller, "namespace_config", lambda namespace: (OperatorConfig.from_env(), None))
        monkeypatch.setattr(controller, "create_job", self._create_job)

    def _create_job(self, namespace: str, job: dict, *, uid: str) -> dict:
        self.jobs[job["metadata"]["name"]] = job
        return job

    def finish(self, name: str, result: dict, *, complete: bool = True) -> None:
        kind = "Complete" if complete else "Failed"
        self.jobs[name] = {**self.jobs[name], "status": {"conditions": [{"type": kind, "status": "True"}]}}
        message = json.dumps(result)
        self.pods = [
            {
                "metadata": {"name": "p", "creationTimestamp": NOW},
                "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]},
            }
        ]

    def pod_of(self, job: str, *, state: dict, created: str = NOW) -> None:
        """The Job's pod, its container in `state` (waiting, running or terminated)."""
        container = {"name": "main", "state": state}
        metadata = {"name": f"{job}-x", "creationTimestamp": created}
        self.pods = [{"metadata": metadata, "status": {"containerStatuses": [container]}}]

    def fail(self, name: str, reason: str, *, pods: list[dict] | None = None) -> None:
        """The Job failed (its deadline, say): the Job controller deleted its active pod."""
        failed = {"type": "Failed", "status": "True", "reason": reason}
        self.jobs[name] = {**self.jobs[name], "status": {"conditions": [failed]}}
        self.pods = pods or []

    def reconcile(self, now: str = NOW):
        body = {
            "metadata": {"name": "d", "namespace": "ml", "uid": "u", "generation": self.generation},
            "status": self.status,
        }
        observed = Observed(body=body, status=json.loads(json.dumps(self.status)), generation=self.generation, now=now)
        outcome = reconcile_dataset(self.spec, observed, logger=None)
        self.events += [(event.reason, event.message) for event in outcome.events]
        patch = status_patch(observed.status, outcome.status)
        self.patches.append(patch)
        # A JSON merge patch, stored as JSON: None removes a key.
        self.status = apply_merge_patch(self.status, json.loads(json.dumps(patch)))
        return outcome


def test_a_check_runs_and_reconciles_that_change_nothing_write_nothing(monkeypatch) -> None:
    world = DatasetWorld(monkeypatch, {"source": URL, "refreshInterval": "5m"})
    first = world.reconcile()
    assert world.status["activeCheck"] == "d-check-1" and world.status["checks"] == 1
    assert world.events == [("CheckStarted", "Job d-check-1 checks the source")]
    assert first.wake_at is None, "the running Job's events wake it"
    world.reconcile("2026-01-01T00:10:05Z")
    assert world.patches[-1] == {}, "the check still runs: nothing to write"

    world.finish("d-check-1", _ok())
    done = world.reconcile("2026-01-01T00:10:30Z")
    assert world.status["version"] == VERSION_A and "activeCheck" not in world.status
    assert world.events[-1] == ("NewVersion", f"{VERSION_A}: 3 rows")
    assert world.status["phase"] == "Ready" and world.status["lastCheckedAt"] == "2026-01-01T00:10:30Z"
    assert done.wake_at == controller.parse_time("2026-01-01T00:15:30Z"), "the refresh is the next deadline"
    events = len(world.events)
    for now in ("2026-01-01T00:11:00Z", "2026-01-01T00:12:00Z"):
        world.reconcile(now)
        assert world.patches[-1] == {}, f"nothing changed at {now}, yet the reconcile wrote"
    assert len(world.events) == events
    assert wire(DatasetStatus.model_validate(world.status)) == world.status, "the status round-trips the model"


def test_a_failed_check_and_a_missing_store_are_written_once(monkeypatch) -> None:
    world = DatasetWorld(monkeypatch, {"source": IRIS})
    world.reconcile()
    world.finish("d-check-1", {"ok": False, "reason": "SchemaViolation", "message": "column 'x' is missing"})
    world.reconcile()
    assert world.status["lastCheck"]["reason"] == "SchemaViolation" and world.status["phase"] == "Failed"
    assert world.events[-1] == ("SchemaViolation", "column 'x' is missing")
    world.reconcile()
    assert world.patches[-1] == {}

    world.generation, world.store_problem = 2, "the artifact store PersistentVolumeClaim is missing"
    world.reconcile()
    assert world.status["lastCheck"] == {
        "succeeded": False,
        "reason": "ArtifactStoreMissing",
        "message": world.store_problem,
        "at": NOW,
    }
    assert world.status["checkedGeneration"] == 1, "no check was consumed"
    assert world.events[-1] == ("ArtifactStoreMissing", world.store_problem)
    events = len(world.events)
    world.reconcile("2026-01-01T00:20:00Z")
    assert world.patches[-1] == {} and len(world.events) == events, "reported once"

    world.store_problem = None
    world.reconcile("2026-01-01T00:30:00Z")
    assert world.status["activeCheck"] == "d-check-2" and world.status["checkedGeneration"] == 2


def test_a_missing_source_object_fails_the_check_without_a_job(monkeypatch) -> None:
    world = DatasetWorld(monkeypatch, {"source": {"configMap": {"name": "cm", "key": "data.csv"}}})
    monkeypatch.setattr(controller.kube, "read_config_map", lambda namespace, name: None)
    world.reconcile()
    assert world.jobs == {} and world.status["checks"] == 0
    assert world.status["lastCheck"]["reason"] == "SourceUnavailable"
    assert world.status["lastCheck"]["message"] == "ConfigMap cm does not exist"
    assert world.status["checkedGeneration"] == 1


SECRET_MISSING = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "mlops-s3" not found'}}
RUNNING = {"running": {"startedAt": "2026-01-01T00:11:00Z"}}


def _ready(world: DatasetWorld) -> tuple[str, str, str]:
    ready = next(cond for cond in world.status["conditions"] if cond["type"] == "Ready")
    return world.status["phase"], ready["reason"], ready["message"]


def test_a_check_whose_pod_cannot_start_waits_for_the_cause_and_takes_the_jobs_result(monkeypatch) -> None:
    world = DatasetWorld(monkeypatch, {"source": IRIS})
    world.reconcile()
    world.pod_of("d-check-1", state=SECRET_MISSING)
    early = world.reconcile("2026-01-01T00:10:05Z")
    assert "blockedCheck" not in world.status, "the kubelet says so for a moment on its own: not stuck yet"
    assert early.wake_at == controller.parse_time("2026-01-01T00:10:20Z"), "looked at again once it would be stuck"

    stuck = world.reconcile("2026-01-01T00:10:25Z")
    phase, reason, message = _ready(world)
    assert (phase, reason) == ("Pending", "PodCannotStart"), "waiting for the cause, not failed"
    assert 'cannot start: CreateContainerConfigError: secret "mlops-s3" not found' in message
    assert "check Job d-check-1 waits for that and goes on once it is fixed; no version is available" in message
    assert world.status["activeCheck"] == "d-check-1" and "lastCheck" not in world.status, "the Job is kept"
    assert world.status["blockedCheck"]["since"] == "2026-01-01T00:10:25Z"
    assert world.events[-1][0] == "PodCannotStart" and stuck.wake_at is None, "its pod's events wake it"
    events = len(world.events)
    world.reconcile("2026-01-01T00:11:00Z")
    assert world.patches[-1] == {} and len(world.events) == events, "said once"

    world.pod_of("d-check-1", state=RUNNING)  # the Secret was created: the kubelet starts the container
    world.reconcile("2026-01-01T00:11:05Z")
    assert "blockedCheck" not in world.status and _ready(world)[:2] == ("Pending", "ValidationPending")
    world.finish("d-check-1", _ok())
    world.reconcile("2026-01-01T00:11:20Z")
    assert _ready(world) == ("Ready", "ValidationSucceeded", f"version {VERSION_A} is available")
    assert list(world.jobs) == ["d-check-1"] and world.status["checks"] == 1, "the same Job's result, no other"
    assert world.events[-1] == ("NewVersion", f"{VERSION_A}: 3 rows")


def test_a_check_job_that_ended_before_its_pod_started_is_followed_by_another_after_a_backoff(monkeypatch) -> None:
    world = DatasetWorld(monkeypatch, {"source": IRIS})  # bundled data: no refresh would ever check it again
    world.reconcile()
    world.pod_of("d-check-1", state=SECRET_MISSING)
    world.reconcile("2026-01-01T00:10:30Z")
    world.fail("d-check-1", "DeadlineExceeded")
    ended = world.reconcile("2026-01-01T00:20:00Z")
    assert "activeCheck" not in world.status and "lastCheck" not in world.status, "no result: nothing learned"
    assert world.status["blockedCheck"]["endedJobs"] == 1
    phase, reason, message = _ready(world)
    assert (phase, reason) == ("Pending", "PodCannotStart")
    assert "1 check Job(s) ended before their pod started, the next starts at 2026-01-01T00:20:10.000Z" in message
    assert ended.wake_at == controller.parse_time("2026-01-01T00:20:10Z")
    assert world.events[-1] == ("PodCannotStart", message.removesuffix("; no version is available"))

    world.reconcile("2026-01-01T00:20:09Z")
    assert list(world.jobs) == ["d-check-1"], "not before the backoff"
    world.reconcile("2026-01-01T00:20:10Z")
    assert world.status["activeCheck"] == "d-check-2"
    retried = "Job d-check-2 checks the source (again: Job d-check-1 ended before its pod started)"
    assert world.events[-1] == ("CheckStarted", retried)
    world.pod_of("d-check-2", state=SECRET_MISSING, created="2026-01-01T00:20:10Z")
    world.reconcile("2026-01-01T00:20:31Z")
    assert world.status["blockedCheck"]["job"] == "d-check-2" and world.events[-1][0] == "PodCannotStart"
    assert "(1 check Job(s) ended before their pod started before it)" in _ready(world)[2]
    world.fail("d-check-2", "DeadlineExceeded")
    again = world.reconcile("2026-01-01T00:30:10Z")
    assert world.status["blockedCheck"]["endedJobs"] == 2
    assert again.wake_at == controller.parse_time("2026-01-01T00:30:10Z") + controller.dt.timedelta(
        seconds=CHECK_RETRY_SECONDS[1]
    ), "a longer wait after the second"
    assert world.status["blockedCheck"]["since"] == "2026-01-01T00:10:30Z", "one series"

    world.reconcile("2026-01-01T00:30:40Z")
    world.finish("d-check-3", _ok())  # the Secret exists now: the third one ran
    world.reconcile("2026-01-01T00:31:00Z")
    assert _ready(world)[0] == "Ready" and "blockedCheck" not in world.status
    world.reconcile("2026-01-01T01:31:00Z")
    assert world.patches[-1] == {} and len(world.jobs) == 3, "bundled data, checked: nothing more to do"


def test_a_check_whose_pod_ran_and_failed_without_a_result_fails_and_is_not_retried(monkeypatch) -> None:
    world = DatasetWorld(monkeypatch, {"source": URL})
    world.reconcile()
    world.pod_of("d-check-1", state=SECRET_MISSING)
    world.reconcile("2026-01-01T00:10:30Z")
    assert world.status["blockedCheck"]["job"] == "d-check-1"
    killed = {"terminated": {"reason": "OOMKilled", "exitCode": 137, "startedAt": "2026-01-01T00:11:00Z"}}
    world.fail("d-check-1", "BackoffLimitExceeded")
    world.pod_of("d-check-1", state=killed)
    world.reconcile("2026-01-01T00:11:30Z")
    assert _ready(world)[:2] == ("Failed", "SourceUnavailable") and "blockedCheck" not in world.status
    assert world.status["lastCheck"]["message"] == "the check Job failed (BackoffLimitExceeded)"


def _wide_csv(rows: int, columns: int) -> bytes:
    header = ",".join([*(f"feature_{c:04d}" for c in range(columns)), "target"])
    lines = [",".join([*(str((r * 31 + c * 17) % 97) for c in range(columns)), str(r % 3)]) for r in range(rows)]
    return ("\n".join([header, *lines]) + "\n").encode()


def test_a_1000_column_result_reaches_the_status_through_the_message_and_the_store(tmp_path) -> None:
    """The check's result of a 1,000-column Dataset, through all it travels: the Job's termination message
    (4 KiB), the kubelet's copy in the pod, the operator's reading, the status; the names in the store."""
    (tmp_path / "configmap").mkdir()
    (tmp_path / "configmap" / "data.csv").write_bytes(_wide_csv(150, 1000))
    names = [f"feature_{c:04d}" for c in range(1000)]
    schema = {"minRows": 100, "columns": [{"name": n, "type": "integer", "min": 0, "max": 96} for n in names]}
    spec = DatasetSpec.model_validate({"source": {"configMap": {"name": "wide", "key": "data.csv"}}, "schema": schema})
    store = ArtifactStore.from_uri(f"file://{tmp_path}/store")
    reported = run_check(spec, namespace="ml", name="wide", store=store, input_dir=tmp_path)
    assert reported["ok"] and reported["columns"] == names, "the Job knows every name"
    text = termination_message(reported)
    assert len(text.encode()) <= TERMINATION_MESSAGE_MAX_BYTES < len(json.dumps(reported).encode())
    pod = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"state": {"terminated": {"message": text}}}]}}
    result = read_check_result(termination_result(pod))
    status = apply_check_result(DatasetStatus(checkedGeneration=1), result, spec=spec, now=NOW)
    conditions, phase = dataset_conditions(status, generation=1, now=NOW)
    assert phase == "Ready" and (status.rows, status.column_count, status.columns) == (150, 1000, [])
    stored = store.read(status.profile_ref)
    assert hashlib.sha256(stored).hexdigest() == status.profile_sha256, "the digest names what is stored"
    assert list(json.loads(stored)["features"]) == names, "every column, in order, behind profileRef"
    assert status.snapshot_uri == f"{store.root_uri}/datasets/ml/wide/{status.version[7:]}/data.csv"

    iris_spec = DatasetSpec.model_validate({"source": IRIS})
    small = run_check(iris_spec, namespace="ml", name="iris", store=store, input_dir=tmp_path)
    read = read_check_result(json.loads(termination_message(small)))
    iris = apply_check_result(DatasetStatus(), read, spec=iris_spec, now=NOW)
    assert iris.columns == ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    assert iris.column_count == 4, "a few names still travel inline"


def test_parse_duration() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("45s") == 45 and parse_duration("250ms") == 0.25
