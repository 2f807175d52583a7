"""Dataset content: canonical versions, schema problems that name columns and rows, profiles, PSI."""

from __future__ import annotations

import pathlib

import pytest

from mlops_operator.api.dataset import DatasetSpec
from mlops_operator.controllers.dataset import apply_check_result, check_due, dataset_conditions, parse_duration
from mlops_operator.data.check import run_check
from mlops_operator.data.profile import bin_shares, build_profile, psi
from mlops_operator.data.table import TableError, parse_csv
from mlops_operator.data.validate import schema_problems
from mlops_operator.storage import ArtifactStore, StoreError


def test_version_ignores_line_endings_and_quoting() -> None:
    a = parse_csv(b"x,y,target\n1,2,0\n3,4,1\n")
    b = parse_csv(b'"x","y","target"\r\n1,2,0\r\n3,4,1\r\n\r\n')
    assert a.version == b.version
    assert parse_csv(b"x,y,target\n1,2,0\n3,4,0\n").version != a.version


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"", "empty"), (b"a,a\n1,2\n", "repeats"), (b"a,b\n1\n", "row 1 has 1 cells"), (b"\xff\xfe", "not UTF-8")],
)
def test_malformed_csv(data: bytes, words: str) -> None:
    with pytest.raises(TableError, match=words):
        parse_csv(data)


def _spec(**schema) -> DatasetSpec:
    return DatasetSpec.model_validate({"source": {"builtin": {"name": "iris"}}, "schema": schema})


def test_schema_problems_name_column_and_first_rows() -> None:
    table = parse_csv(b"a,b,target\n1,x,0\n2,,1\n99,y,1\n-5,z,0\n")
    spec = _spec(minRows=10, columns=[{"name": "a", "type": "integer", "min": 0, "max": 10},
                                      {"name": "b", "type": "category", "allowedValues": ["x", "y"]},
                                      {"name": "c", "type": "float"}])  # fmt: skip
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
    with pytest.raises(StoreError):
        ArtifactStore.from_uri("s3://bucket")


NOW = "2026-01-01T00:10:00Z"


@pytest.mark.parametrize(
    ("source", "status", "due"),
    [
        ({"builtin": {"name": "iris"}}, {}, True),
        ({"builtin": {"name": "iris"}}, {"checkedGeneration": 1, "lastCheckedAt": "2020-01-01T00:00:00Z"}, False),
        ({"url": {"url": "https://e.org/x.csv"}}, {"checkedGeneration": 1, "lastCheckedAt": "2026-01-01T00:09:00Z"},
         False),
        ({"url": {"url": "https://e.org/x.csv"}}, {"checkedGeneration": 1, "lastCheckedAt": "2026-01-01T00:00:00Z"},
         True),
        ({"url": {"url": "https://e.org/x.csv"}}, {"checkedGeneration": 1}, False),
    ],
)  # fmt: skip
def test_check_due(source: dict, status: dict, due: bool) -> None:
    spec = DatasetSpec.model_validate({"source": source})
    assert check_due(spec, status, generation=1, now=NOW) is due


def test_failed_check_keeps_the_last_good_version() -> None:
    spec = DatasetSpec.model_validate({"source": {"url": {"url": "https://e.org/x.csv"}}, "historyLimit": 2})
    ok = {"ok": True, "version": "sha256:" + "a" * 64, "rows": 3, "snapshotUri": "u1", "columns": ["x"]}
    status = apply_check_result({}, ok, spec=spec, now=NOW)
    status = apply_check_result(
        status, {"ok": False, "reason": "SchemaViolation", "message": "bad"}, spec=spec, now=NOW
    )
    assert status["version"] == ok["version"] and len(status["history"]) == 1
    conditions, phase = dataset_conditions(status, generation=1, now=NOW)
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], phase) == ("False", "SchemaViolation", "Failed")
    assert "the last good version sha256:aaaa" in ready["message"]
    for letter in "bc":
        status = apply_check_result(status, {**ok, "version": "sha256:" + letter * 64}, spec=spec, now=NOW)
    assert [h["version"][7] for h in status["history"]] == ["c", "b"]


def test_parse_duration() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("45s") == 45 and parse_duration("250ms") == 0.25
