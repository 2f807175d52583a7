"""The dataset check that runs in a Job: read, validate, version, snapshot and profile one source.

The result is a CheckResult (resources/results.py), written as a small JSON envelope to the container's
termination message, where the operator reads it; a failed check is a result (ok=false with a reason),
not a crash. The snapshot is always `data.csv`, the canonical CSV the version is the sha256 of, whatever
the source's format. What grows with the data stays in the store: the profile names every feature
column, and the result carries the profile's sha256 as stored, so the column list of a Dataset of any
width reaches the status as a URI, a digest and a count (the names themselves only while they fit).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

from ..api import conditions as c
from ..api.dataset import DatasetSpec
from ..resources.results import CheckResult
from ..storage import ArtifactStore, dataset_prefix
from .profile import MAX_CLASSES, build_profile
from .sources import SourceError, read_source
from .table import TableError
from .validate import schema_problems

MAX_MESSAGE = 1500


def run_check(
    spec: DatasetSpec,
    *,
    namespace: str,
    name: str,
    store: ArtifactStore,
    input_dir: pathlib.Path,
    capture: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The check's result: a CheckResult (resources/results.py) in its wire form, what the Job reports."""
    return _check(spec, namespace=namespace, name=name, store=store, input_dir=input_dir, capture=capture).wire()


def _check(
    spec: DatasetSpec,
    *,
    namespace: str,
    name: str,
    store: ArtifactStore,
    input_dir: pathlib.Path,
    capture: dict[str, Any] | None,
) -> CheckResult:
    try:
        table = read_source(spec, input_dir=input_dir, capture=capture, store=store)
    except SourceError as error:
        return CheckResult(ok=False, reason=error.reason, message=error.message[:MAX_MESSAGE])
    problems = schema_problems(table, spec)
    if problems:
        return CheckResult(ok=False, reason=c.SCHEMA_VIOLATION, message="; ".join(problems)[:MAX_MESSAGE])
    try:
        profile = build_profile(table, spec.target)
    except TableError as error:  # a target of more than MAX_CLASSES texts: neither classes nor numbers
        message = f"the target column {spec.target!r} has more than {MAX_CLASSES} classes and is not numeric: {error}"
        return CheckResult(ok=False, reason=c.SCHEMA_VIOLATION, message=message[:MAX_MESSAGE])
    version = table.version
    prefix = dataset_prefix(namespace, name, version)
    files = {
        "data.csv": table.canonical_bytes(),
        "profile.json": json.dumps(profile, indent=1).encode(),
    }
    uri = store.write_version(prefix, files)
    columns = [h for h in table.header if h != spec.target]
    profile_uri = f"{uri}/profile.json"
    # The digest of what is stored, read back: a version written before (by another check, an older
    # release) keeps its own files.
    stored_profile = hashlib.sha256(store.read(profile_uri)).hexdigest()
    return CheckResult(
        ok=True,
        version=version,
        rows=table.num_rows,
        column_count=len(columns),
        columns=columns,
        snapshot_uri=f"{uri}/data.csv",
        profile_uri=profile_uri,
        profile_sha256=stored_profile,
    )
