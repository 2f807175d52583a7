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


class CaptureTooLarge(Exception):
    """The batches under a prefix hold more bytes than a check may read into memory."""


# What a check reads of the captured batches at most: as much as of any other source (data/sources.py).
MAX_CAPTURE_BYTES = 100 * 1024 * 1024


def read_records(store: ArtifactStore, prefix: str, *, max_bytes: int = MAX_CAPTURE_BYTES) -> list[dict[str, Any]]:
    """Every record of every batch under `prefix`, batches in time order; CaptureTooLarge, before anything
    is read, when the batches hold more than `max_bytes` (their sizes are listed with them)."""
    batches = store.versions_under(prefix)
    size = sum(bytes_ for _, bytes_ in batches)
    if size > max_bytes:
        raise CaptureTooLarge(
            f"the captured data under {prefix} is {size} bytes in {len(batches)} batches, more than the "
            f"{max_bytes} bytes a check reads into memory; shorten the capture's retention "
            "(ModelDeployment spec.capture) or start a new capture prefix"
        )
    records = []
    for path, _ in sorted(batches, key=lambda item: (batch_time(item[0]), item[0])):
        text = store.read(store.uri(f"{path}/{RECORDS_FILE}")).decode()
        records += [json.loads(line) for line in text.splitlines() if line.strip()]
    return records
