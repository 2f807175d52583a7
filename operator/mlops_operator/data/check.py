"""The dataset check that runs in a Job: read, validate, version, snapshot and profile one source.

The result is a small JSON document written to the container's termination message, where the
operator reads it; a failed check is a result (ok=false with a reason), not a crash. The snapshot is
always `data.csv`, the canonical CSV the version is the sha256 of, whatever the source's format.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from ..api import conditions as c
from ..api.dataset import DatasetSpec
from ..storage import ArtifactStore, dataset_prefix
from .profile import MAX_CLASSES, build_profile
from .sources import SourceError, read_source
from .table import TableError
from .validate import schema_problems

MAX_MESSAGE = 1500


def run_check(
    spec: DatasetSpec, *, namespace: str, name: str, store: ArtifactStore, input_dir: pathlib.Path,
    capture: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    try:
        table = read_source(spec, input_dir=input_dir, capture=capture, store=store)
    except SourceError as error:
        return {"ok": False, "reason": error.reason, "message": error.message[:MAX_MESSAGE]}
    problems = schema_problems(table, spec)
    if problems:
        return {"ok": False, "reason": c.SCHEMA_VIOLATION, "message": "; ".join(problems)[:MAX_MESSAGE]}
    try:
        profile = build_profile(table, spec.target)
    except TableError as error:  # a target of more than MAX_CLASSES texts: neither classes nor numbers
        message = f"the target column {spec.target!r} has more than {MAX_CLASSES} classes and is not numeric: {error}"
        return {"ok": False, "reason": c.SCHEMA_VIOLATION, "message": message[:MAX_MESSAGE]}
    version = table.version
    prefix = dataset_prefix(namespace, name, version)
    files = {
        "data.csv": table.canonical_bytes(),
        "profile.json": json.dumps(profile, indent=1).encode(),
    }
    uri = store.write_version(prefix, files)
    return {
        "ok": True,
        "version": version,
        "rows": table.num_rows,
        "columns": [h for h in table.header if h != spec.target],
        "snapshotUri": f"{uri}/data.csv",
        "profileUri": f"{uri}/profile.json",
    }
