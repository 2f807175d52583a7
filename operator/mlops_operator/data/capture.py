"""The production capture's format in the artifact store, as the model servers write it (server/capture.py)
and the Dataset source `capture` reads it: batches `<prefix>/<milliseconds>-<pod>-<seq>/records.jsonl`,
one JSON record per line (prediction rows and labels, see server/capture.py)."""

from __future__ import annotations

import json
from typing import Any

from ..storage import ArtifactStore

RECORDS_FILE = "records.jsonl"
# How long after a prediction its receipt is accepted as feedback (the servers' --feedback-max-age-seconds
# default); a label record carries the bound its server applied, this is for records without one.
FEEDBACK_MAX_AGE_SECONDS = 86400.0


def batch_time(path: str) -> float:
    """When a batch was written, from its name (`…/<milliseconds>-<pod>-<seq>`); 0 for a name of another shape."""
    try:
        return int(path.rsplit("/", 1)[-1].split("-", 1)[0]) / 1000
    except ValueError:
        return 0.0


def read_records(store: ArtifactStore, prefix: str) -> list[dict[str, Any]]:
    """Every record of every batch under `prefix`, batches in time order."""
    records = []
    for path, _ in sorted(store.versions_under(prefix), key=lambda item: (batch_time(item[0]), item[0])):
        text = store.read(store.uri(f"{path}/{RECORDS_FILE}")).decode()
        records += [json.loads(line) for line in text.splitlines() if line.strip()]
    return records
