"""What a Job reports in its termination message (resources/results.py): always a JSON object within the
kubelet's 4 KiB, whatever the result holds, and text that is not one read as an unreadable result, never as
a failure of the source."""

from __future__ import annotations

import json

import pytest

from mlops_operator.resources.jobs import pod_started, termination_result
from mlops_operator.resources.results import (
    TERMINATION_MESSAGE_MAX_BYTES,
    CheckResult,
    parse_termination_message,
    read_check_result,
    termination_message,
)

VERSION = "sha256:" + "a" * 64
ROOT = "s3://bucket/prefix/datasets/ml/wide/" + "a" * 64


def _check(**fields) -> dict:
    passed = {
        "ok": True,
        "version": VERSION,
        "rows": 150,
        "columnCount": 4,
        "columns": ["a", "b", "c", "d"],
        "snapshotUri": f"{ROOT}/data.csv",
        "profileUri": f"{ROOT}/profile.json",
        "profileSha256": "b" * 64,
    }
    return {**passed, **fields}


WIDE = [f"feature_{i:04d}" for i in range(1000)]
TRAINED = {
    "ok": True,
    "metrics": {m: 0.91234 for m in ("accuracy", "f1", "precision", "recall", "roc_auc")},
    "modelUri": "s3://bucket/models/ml/iris/iris-a-" + "0" * 36,
    "sha256": "c" * 64,
    "fitSeconds": 0.2,
    "calibrated": True,
    "primaryMetric": "accuracy",
}


@pytest.mark.parametrize(
    ("result", "kept", "dropped"),
    [
        (_check(), _check(), ()),
        (TRAINED, TRAINED, ()),
        # 1,000 column names take ~16 KB: left out, the rest (the pointer and the digest) kept whole.
        (
            _check(columnCount=1000, columns=WIDE),
            {k: v for k, v in _check(columnCount=1000).items() if k != "columns"},
            ("columns",),
        ),
        (
            {"ok": False, "reason": "SchemaViolation", "message": "column 'x': row 3 is bad; " * 400},
            {"ok": False, "reason": "SchemaViolation"},
            (),
        ),
        # 1,500 characters of 3 bytes each: bounded in bytes, not characters.
        (
            {"ok": False, "reason": "SchemaViolation", "message": "列" * 1500},
            {"ok": False, "reason": "SchemaViolation"},
            (),
        ),
        ({"ok": False, "permanent": True, "message": "x" * 10_000}, {"ok": False, "permanent": True}, ()),
    ],
)
def test_a_result_of_any_size_is_a_json_object_within_4_kib(result: dict, kept: dict, dropped: tuple) -> None:
    text = termination_message(result)
    assert len(text.encode()) <= TERMINATION_MESSAGE_MAX_BYTES
    back = json.loads(text)
    assert {k: back.get(k) for k in kept} == kept
    assert not set(dropped) & set(back)
    if len(result.get("message", "")) > 4000:
        assert back["message"].endswith("…") and result["message"].startswith(back["message"][:-1])


def test_a_result_that_cannot_be_shrunk_becomes_a_failure_saying_so() -> None:
    huge = _check(snapshotUri="s3://bucket/" + "k" * 5000)
    back = json.loads(termination_message(huge))
    assert (back["ok"], back["reason"]) == (False, "ResultTooLarge")
    assert "snapshotUri (5" in back["message"] and "4096" in back["message"]


def test_the_check_envelope_is_what_is_written_and_read() -> None:
    typed = CheckResult.model_validate(_check(columnCount=1000, columns=WIDE))
    back = read_check_result(json.loads(termination_message(typed)))
    assert back == typed.model_copy(update={"columns": None})


def _pod(message: str) -> dict:
    return {
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]},
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (json.dumps(_check(columnCount=1000, columns=WIDE))[:4096], "(4096 bytes, the kubelet keeps 4096: cut off?)"),
        ("[1, 2]", "is not a JSON object (6 bytes)"),
        ("Traceback (most recent call last):", "'Traceback (most recent call last):'"),
    ],
)
def test_text_that_is_no_json_object_is_an_unreadable_result_not_an_unavailable_source(text: str, words: str) -> None:
    result = termination_result(_pod(text))
    assert (result["ok"], result["reason"]) == (False, "ResultUnreadable")
    assert words in result["message"]
    assert parse_termination_message(text) == result
    typed = read_check_result(result)
    assert (typed.ok, typed.reason) == (False, "ResultUnreadable")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        # a check Job of the release before: its columns, no count and no digest
        (
            {k: v for k, v in _check().items() if k not in ("columnCount", "profileSha256")},
            {"ok": True, "column_count": 4, "columns": ["a", "b", "c", "d"], "profile_sha256": None},
        ),
        (_check(columnCount=1000, columns=None), {"ok": True, "column_count": 1000, "columns": None}),
        ({"ok": False, "reason": "SchemaViolation", "message": "m"}, {"ok": False, "reason": "SchemaViolation"}),
        ({"ok": False}, {"ok": False, "reason": None}),
        ({"ok": True, "rows": 3}, {"ok": False, "reason": "ResultUnreadable"}),
        (_check(columnCount=3), {"ok": False, "reason": "ResultUnreadable"}),
        (_check(version="sha256:nope"), {"ok": False, "reason": "ResultUnreadable"}),
    ],
)
def test_a_check_result_is_read_into_its_envelope(raw: dict | None, expected: dict | None) -> None:
    typed = read_check_result(raw)
    if expected is None:
        assert typed is None
        return
    assert {k: getattr(typed, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("state", "last_state", "started"),
    [
        ({"waiting": {"reason": "CreateContainerConfigError"}}, {}, False),
        ({"waiting": {"reason": "ContainerCreating"}}, {}, False),
        ({"running": {"startedAt": "2026-01-01T00:00:00Z"}}, {}, True),
        ({"terminated": {"exitCode": 0, "startedAt": "2026-01-01T00:00:00Z"}}, {}, True),
        # a pod deleted while it waited (the Job's deadline): terminated, but it never ran
        ({"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}, {}, False),
        ({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"exitCode": 1, "startedAt": "x"}}, True),
    ],
)
def test_whether_a_jobs_pod_ever_started(state: dict, last_state: dict, started: bool) -> None:
    status = {"name": "main", "state": state, "lastState": last_state}
    assert pod_started([{"metadata": {"name": "p"}, "status": {"containerStatuses": [status]}}]) is started
    assert pod_started([]) is False
