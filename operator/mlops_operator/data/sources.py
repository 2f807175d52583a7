"""Reads a Dataset's source into a Table; failures carry the reason the Dataset's condition will show.

url, configMap and pvc sources are CSV or Parquet (`spec.format`: csv, parquet, or auto, which takes
bytes that start and end with PAR1 for Parquet); builtin sources are scikit-learn's arrays.
"""

from __future__ import annotations

import csv
import hashlib
import io
import pathlib
from typing import Any

import requests

from ..api import conditions as c
from ..api.dataset import DatasetSpec
from ..config import S3_SOURCE_ENV_PREFIX
from .capture import FEEDBACK_MAX_AGE_SECONDS
from .table import Table, TableError, from_arrays, is_parquet, parse_csv, parse_parquet

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 30


class SourceError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def builtin_table(name: str, target: str) -> Table:
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")()
    names = [str(n).replace(" ", "_").replace("(", "").replace(")", "") for n in loaded.feature_names]
    if not names or len(names) != loaded.data.shape[1]:
        names = [f"feature_{i}" for i in range(loaded.data.shape[1])]
    return from_arrays(names, loaded.data, loaded.target, target)


def fetch_url(url: str, *, sha256: str | None, max_bytes: int) -> bytes:
    try:
        with requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
            if response.status_code != 200:
                raise SourceError(c.SOURCE_UNAVAILABLE, f"GET {url} answered HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(c.SOURCE_UNAVAILABLE, f"{url} is larger than the limit of {max_bytes} bytes")
                chunks.append(chunk)
    except requests.RequestException as error:
        raise SourceError(c.SOURCE_UNAVAILABLE, f"cannot fetch {url}: {type(error).__name__}: {error}") from None
    data = b"".join(chunks)
    if sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise SourceError(c.CHECKSUM_MISMATCH, f"{url} has sha256 {actual}, but spec.source.url.sha256 is {sha256}")
    return data


def fetch_object(uri: str, *, sha256: str | None, max_bytes: int) -> bytes:
    from ..storage import StoreError
    from ..storage.s3 import client_from_env, read_object

    try:
        data = read_object(uri, client=client_from_env(prefix=S3_SOURCE_ENV_PREFIX), max_bytes=max_bytes)
    except StoreError as error:
        raise SourceError(c.SOURCE_UNAVAILABLE, f"cannot read {uri}: {error}") from None
    if sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise SourceError(c.CHECKSUM_MISMATCH, f"{uri} has sha256 {actual}, but spec.source.s3.sha256 is {sha256}")
    return data


def read_file(path: pathlib.Path, *, what: str, max_bytes: int) -> bytes:
    if not path.is_file():
        raise SourceError(c.SOURCE_UNAVAILABLE, f"{what} does not exist")
    if path.stat().st_size > max_bytes:
        raise SourceError(c.SOURCE_UNAVAILABLE, f"{what} is larger than the limit of {max_bytes} bytes")
    return path.read_bytes()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def first_labels(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first label record posted for each receipt id, by label time (records in read order break ties).

    A receipt replayed to other pods may be accepted once by each of them (each pod remembers only what it
    scored): the first label counts, a later one cannot overwrite it."""
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        receipt, when = record.get("receipt"), _number(record.get("time"))
        if record.get("kind") != "label" or not isinstance(receipt, str) or not receipt or when is None:
            continue
        if receipt not in first or when < first[receipt]["time"]:
            first[receipt] = record
    return first


def label_joins(prediction: dict[str, Any], label: dict[str, Any]) -> bool:
    """Whether `label` may label `prediction` (same receipt id already): the same version, and posted at most
    the receipt's maximum age after the prediction (the bound the labelling server applied, or the default)."""
    predicted, labelled = _number(prediction.get("time")), _number(label.get("time"))
    bound = _number(label.get("max_age"))
    bound = FEEDBACK_MAX_AGE_SECONDS if bound is None else bound
    if predicted is None or labelled is None or labelled - predicted > bound:
        return False
    return label.get("version") is None or label.get("version") == prediction.get("version")


def capture_table(base: Table, records: list[dict[str, Any]], *, target: str) -> Table:
    """The base table's rows, then every captured prediction row that got a label, its features by name and
    the label as `target`, in the order they were captured.

    A label joins only a row with the same receipt id (issued by this ModelDeployment's servers, so a client
    cannot name rows others were predicted on), of the same version, within the maximum age; the first label
    for a receipt wins. Rows without a receipt id (or a label, or a feature) are left out."""
    labels = first_labels(records)
    header = list(base.header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for record in records:
        label = labels.get(record.get("receipt")) if isinstance(record.get("receipt"), str) else None
        if record.get("kind") != "prediction" or label is None or not label_joins(record, label):
            continue
        row, features, given = record.get("row", 0), record.get("features") or {}, label.get("labels")
        if not isinstance(given, list) or not isinstance(row, int) or not 0 <= row < len(given):
            continue
        if any(name not in features for name in header if name != target):
            continue
        writer.writerow([given[row] if name == target else features[name] for name in header])
    data = base.canonical_bytes()
    return parse_csv(data + (b"" if data.endswith(b"\n") else b"\n") + out.getvalue().encode())


def read_capture(spec: DatasetSpec, capture: dict[str, Any], store: Any, *, max_bytes: int) -> Table:
    """The base Dataset's snapshot plus the labelled captured rows (the Job is given where both are); the
    captured batches are read only if they hold at most `max_bytes`."""
    from ..storage import StoreError
    from .capture import CaptureTooLarge, read_records

    try:
        base = parse_csv(store.read(capture["baseSnapshotUri"]))
        records = read_records(store, capture["capturePrefix"], max_bytes=max_bytes)
    except CaptureTooLarge as error:
        raise SourceError(c.SOURCE_UNAVAILABLE, str(error)) from None
    except StoreError as error:
        raise SourceError(c.SOURCE_UNAVAILABLE, f"the captured data cannot be read: {error}") from None
    except TableError as error:
        raise SourceError(c.SCHEMA_VIOLATION, f"the base snapshot is not a CSV table: {error}") from None
    return capture_table(base, records, target=spec.target)


def read_source(
    spec: DatasetSpec,
    *,
    input_dir: pathlib.Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    capture: dict[str, Any] | None = None,
    store: Any = None,
) -> Table:
    """The source's content as a table. configMap and pvc sources are mounted under input_dir by the Job;
    for a capture source the operator names the base snapshot and the capture prefix (`capture`)."""
    source = spec.source
    if source.builtin:
        return builtin_table(source.builtin.name, spec.target)
    if source.capture:
        if capture is None or store is None:
            raise SourceError(c.INVALID_SPEC, "a capture source is read by the check Job the operator starts")
        return read_capture(spec, capture, store, max_bytes=max_bytes)
    if source.url:
        data = fetch_url(source.url.url, sha256=source.url.sha256, max_bytes=max_bytes)
    elif source.config_map:
        what = f"key {source.config_map.key!r} of ConfigMap {source.config_map.name}"
        data = read_file(input_dir / "configmap" / "data.csv", what=what, max_bytes=max_bytes)
    elif source.pvc:
        what = f"{source.pvc.path} on PersistentVolumeClaim {source.pvc.claim_name}"
        data = read_file(input_dir / "pvc" / source.pvc.path, what=what, max_bytes=max_bytes)
    elif source.s3:
        data = fetch_object(source.s3.uri, sha256=source.s3.sha256, max_bytes=max_bytes)
    else:  # the CRD's CEL rule makes this unreachable
        raise SourceError(c.INVALID_SPEC, "spec.source has no source")
    return parse_source(data, spec.format)


def source_format(data: bytes, wanted: str) -> str:
    """csv or parquet: the spec's format, or for auto the one the bytes are (Parquet's magic bytes, else CSV)."""
    if wanted == "auto":
        return "parquet" if is_parquet(data) else "csv"
    return wanted


def parse_source(data: bytes, wanted: str) -> Table:
    """The bytes as a table in the format wanted; what is not one is a SchemaViolation that says why."""
    kind = source_format(data, wanted)
    try:
        return parse_parquet(data) if kind == "parquet" else parse_csv(data)
    except TableError as error:
        hint = ""
        if kind == "csv" and is_parquet(data):
            hint = " (the bytes are a Parquet file: set spec.format to parquet or auto)"
        name = "Parquet" if kind == "parquet" else "CSV"
        raise SourceError(c.SCHEMA_VIOLATION, f"the source is not a {name} table: {error}{hint}") from None
