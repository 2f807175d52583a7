"""The Dataset kind: where the data is, its schema and checks; status holds its content versions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .common import (
    Condition,
    DatasetName,
    ObjectName,
    Sha256Hex,
    Sha256Version,
    SpecModel,
    StatusModel,
    Timestamp,
    at_most_bytes,
    bounded_duration,
    exactly_one_rule,
    http_url_rule,
)
from .names import REFRESH_ANNOTATION  # noqa: F401 (a Dataset's; defined with every key)
from .reasons import DatasetPhase

BUILTIN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
# The schema goes to every check Job with the rest of the spec (common.JOB_ENV_VALUE_MAX_BYTES): it may
# take 120 KiB of the 128; the rest of a spec (one source, the target, ...) takes at most 4 KiB.
SCHEMA_MAX_BYTES = 120 * 1024
# Re-reading a source starts a Job: not more often than once a minute; at least once a week.
RefreshInterval = bounded_duration("1m", "168h")
DEFAULT_FORMAT = "csv"
DEFAULT_REFRESH_INTERVAL = "10m"
# The sources that are files (read as spec.format); builtin and capture are tables already.
FILE_SOURCES = ("url", "configMap", "pvc", "s3")
# Options that apply to some sources only. The API server fills in each option's default before it checks,
# so only a value other than the default can be told apart (and refused): an explicit default is harmless.
FORMAT_RULE = {
    "rule": f"!has(self.format) || self.format == '{DEFAULT_FORMAT}' || "
    + " || ".join(f"has(self.source.{name})" for name in FILE_SOURCES),
    "fieldPath": ".format",
    "message": "format applies only to url, configMap, pvc and s3 sources: builtin and capture sources are "
    "tables, not files",
}
REFRESH_RULE = {
    "rule": f"!has(self.source.builtin) || !has(self.refreshInterval) || "
    f"self.refreshInterval == '{DEFAULT_REFRESH_INTERVAL}'",
    "fieldPath": ".refreshInterval",
    "message": "refreshInterval does not apply to a builtin source: bundled data never changes, it is read once",
}


class BuiltinSource(SpecModel):
    """One of scikit-learn's bundled datasets: no network needed."""

    name: Literal[BUILTIN_DATASETS] = Field(  # type: ignore[valid-type]
        description="Name of the bundled dataset: iris, wine, breast_cancer, digits or diabetes."
    )


class UrlSource(SpecModel):
    """A CSV or Parquet file fetched over HTTP(S)."""

    url: str = Field(
        max_length=2048,
        description="http:// or https:// address of the CSV or Parquet file.",
        json_schema_extra=http_url_rule("url"),
    )
    sha256: Sha256Hex | None = Field(
        default=None, description="Expected sha256 of the downloaded bytes (64 hex digits); a mismatch is refused."
    )


class ConfigMapSource(SpecModel):
    """CSV text, or Parquet in binaryData, held in a key of a ConfigMap in the Dataset's namespace."""

    name: ObjectName = Field(description="Name of the ConfigMap.")
    key: str = Field(min_length=1, max_length=253, description="Key of the ConfigMap holding the CSV or Parquet.")


class PvcSource(SpecModel):
    """A CSV or Parquet file on a PersistentVolumeClaim in the Dataset's namespace."""

    claim_name: ObjectName = Field(description="Name of the PersistentVolumeClaim.")
    path: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[^/]",
        description="Path of the file relative to the volume's root (no leading slash).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!self.split('/').exists(p, p == '..')", "message": "path must not contain '..'"}
            ]
        },
    )


class S3Source(SpecModel):
    """A CSV or Parquet object in S3-compatible object storage, read by the check Job."""

    uri: str = Field(
        max_length=1024,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s]*[^/\s]$",
        description="s3://bucket/key of the object.",
    )
    secret_name: ObjectName | None = Field(
        default=None,
        description="A Secret in the Dataset's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for this "
        "bucket; default: the identity the operator's pods have for the artifact store.",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        description="The S3 API endpoint of the bucket; default: the artifact store's.",
        json_schema_extra=http_url_rule("endpoint"),
    )
    sha256: Sha256Hex | None = Field(
        default=None, description="Expected sha256 of the object's bytes (64 hex digits); a mismatch is refused."
    )


class CaptureSource(SpecModel):
    """A base Dataset's current version plus the production rows a ModelDeployment captured that got a label
    (joined by request id; the label is the target), as one table checked against this Dataset's schema."""

    base: DatasetName = Field(description="The Dataset (same namespace) whose current version the rows are added to.")
    model_deployment: ObjectName = Field(description="The ModelDeployment (same namespace) whose servers captured.")


class DatasetSource(SpecModel):
    """Where the data comes from: exactly one of builtin, url, configMap, pvc, s3, capture."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                exactly_one_rule(
                    ["builtin", "url", "configMap", "pvc", "s3", "capture"],
                    "exactly one of builtin, url, configMap, pvc, s3 or capture must be set",
                )
            ]
        }
    }

    builtin: BuiltinSource | None = Field(default=None, description="A scikit-learn bundled dataset.")
    url: UrlSource | None = Field(default=None, description="A CSV or Parquet file over HTTP(S).")
    config_map: ConfigMapSource | None = Field(default=None, description="CSV or Parquet in a ConfigMap key.")
    pvc: PvcSource | None = Field(default=None, description="A CSV or Parquet file on a PersistentVolumeClaim.")
    s3: S3Source | None = Field(default=None, description="A CSV or Parquet object in S3-compatible storage.")
    capture: CaptureSource | None = Field(
        default=None, description="A base Dataset plus the labelled rows a ModelDeployment captured in production."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSource:
        """The CRD's rule, for a spec that got past an older CRD: no source, or two, reads nothing sensible."""
        chosen = [self.builtin, self.url, self.config_map, self.pvc, self.s3, self.capture]
        if sum(source is not None for source in chosen) != 1:
            raise ValueError("exactly one of builtin, url, configMap, pvc, s3 or capture must be set")
        return self


COLUMN_RULES = [
    {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "min must not be greater than max"},
    {
        "rule": "!has(self.allowedValues) || self.type in ['category', 'string']",
        "message": "allowedValues applies only to category or string columns",
    },
    {
        "rule": "(!has(self.min) && !has(self.max)) || self.type in ['float', 'integer']",
        "message": "min and max apply only to float or integer columns",
    },
]


class ColumnSchema(SpecModel):
    """The expectations on one column."""

    model_config = SpecModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": COLUMN_RULES}}

    name: str = Field(min_length=1, max_length=253, description="Column name as in the CSV header.")
    type: Literal["float", "integer", "string", "category", "boolean"] = Field(
        description="Type every value must parse as: float, integer, string, category or boolean."
    )
    nullable: bool = Field(default=False, description="Whether empty values are allowed.")
    min: float | None = Field(default=None, description="Smallest allowed value (numeric columns).")
    max: float | None = Field(default=None, description="Largest allowed value (numeric columns).")
    allowed_values: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None, max_length=1000, description="The only values allowed (category or string columns)."
    )

    @model_validator(mode="after")
    def _as_the_crd_checks_it(self) -> ColumnSchema:
        """The CRD's rules in the same words: a bound the column's type ignores checks nothing."""
        bounded = self.min is not None or self.max is not None
        broken = [
            self.min is not None and self.max is not None and self.min > self.max,
            self.allowed_values is not None and self.type not in ("category", "string"),
            bounded and self.type not in ("float", "integer"),
        ]
        for rule, failed in zip(COLUMN_RULES, broken, strict=True):
            if failed:
                raise ValueError(rule["message"])
        return self


class DatasetSchema(SpecModel):
    """Checks the data must pass before it gets a version."""

    columns: list[ColumnSchema] = Field(
        default_factory=list,
        max_length=2000,
        description="Expected columns; columns not listed are accepted unchecked.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    min_rows: int = Field(default=1, ge=1, le=1_000_000_000, description="Fewest rows the data must have.")


class DatasetSpec(SpecModel):
    """What the user wants: a source, a format, a target column and checks."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {"x-kubernetes-validations": [FORMAT_RULE, REFRESH_RULE]}
    }

    source: DatasetSource = Field(
        description="Where the data is: exactly one of builtin, url, configMap, pvc, s3, capture."
    )
    format: Literal["csv", "parquet", "auto"] = Field(
        default=DEFAULT_FORMAT,
        description="File format of url, configMap, pvc and s3 sources: csv, parquet, or auto (Parquet if the "
        "bytes start and end with PAR1, else CSV).",
    )
    target: str = Field(
        default="target",
        min_length=1,
        max_length=253,
        description="Name of the column models learn to predict.",
    )
    schema_: Annotated[DatasetSchema | None, at_most_bytes(SCHEMA_MAX_BYTES, what="the columns")] = Field(
        default=None,
        alias="schema",
        description="Column types, ranges, nullability and minimum row count (at most 120 KiB as JSON).",
    )
    refresh_interval: RefreshInterval = Field(
        default=DEFAULT_REFRESH_INTERVAL,
        description="How often url, configMap, pvc and s3 sources are re-read for a new version (1m to 168h).",
    )
    history_limit: int = Field(default=10, ge=1, le=100, description="How many recent versions status keeps.")

    @model_validator(mode="after")
    def _options_apply_to_the_source(self) -> DatasetSpec:
        """An option the source ignores is a mistake the user would never see: refused, as the CRD does."""
        source = self.source
        if self.format != DEFAULT_FORMAT and not (source.url or source.config_map or source.pvc or source.s3):
            raise ValueError(f"format: {FORMAT_RULE['message']}")
        if source.builtin and self.refresh_interval != DEFAULT_REFRESH_INTERVAL:
            raise ValueError(f"refreshInterval: {REFRESH_RULE['message']}")
        return self


class DatasetVersion(StatusModel):
    """One validated content of the Dataset."""

    version: Sha256Version = Field(description="Content version: sha256 of the normalised data.")
    rows: int = Field(description="Number of rows.")
    snapshot_uri: str = Field(default="", description="Where the content-addressed snapshot is stored.")
    created_at: Timestamp = Field(description="When this version was first seen.")


class DatasetCheck(StatusModel):
    """The outcome of the latest read-and-validate of the source."""

    succeeded: bool = Field(description="Whether the source passed.")
    reason: str = Field(description="CamelCase reason (ValidationSucceeded, SchemaViolation, ...).")
    message: str = Field(default="", description="What was found, naming the offending columns and rows.")
    at: Timestamp = Field(description="When the check finished.")
    generation: int | None = Field(default=None, description="The .metadata.generation the check was for.")


class CheckBlocked(StatusModel):
    """A check whose pod cannot start (a missing Secret or ConfigMap, an image not pulled): nothing is
    known about the source yet, so the check waits for the cause instead of failing, and the Job's
    eventual result is taken. A check Job that ended before its pod started is followed by another after
    a backoff (controllers/dataset.py CHECK_RETRY_SECONDS, counted from endedAt)."""

    reason: str = Field(description="CamelCase reason (PodCannotStart).")
    message: str = Field(default="", description="The kubelet's words: which pod, and why it cannot start.")
    job: str = Field(description="The check Job whose pod was last seen unable to start.")
    since: Timestamp = Field(description="When a check of this series was first seen unable to start.")
    ended_jobs: int = Field(
        default=0, ge=0, description="Check Jobs of this series that ended before their pod started."
    )
    ended_at: Timestamp | None = Field(
        default=None, description="When the latest of them ended (the next starts after the backoff)."
    )


class DatasetStatus(StatusModel):
    """What is true about the Dataset, written only by the operator."""

    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    phase: DatasetPhase | None = Field(default=None, description="Summary for printer columns: Pending, Ready, Failed.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready and Validated conditions.")
    version: Sha256Version | None = Field(default=None, description="Current content version.")
    rows: int | None = Field(default=None, description="Rows in the current version.")
    columns: list[str] = Field(
        default_factory=list,
        description="Feature columns of the current version, in order, when their names fit in the check's 4 KiB "
        "result; else empty, and the profile at profileRef names them all (columnCount counts them).",
    )
    column_count: int | None = Field(default=None, description="How many feature columns the current version has.")
    snapshot_uri: str | None = Field(default=None, description="Artifact-store URI of the current snapshot.")
    profile_ref: str | None = Field(
        default=None,
        description="Artifact-store URI of the current version's profile (the drift reference); its `features` "
        "name every feature column, in order.",
    )
    profile_sha256: Sha256Hex | None = Field(
        default=None, description="sha256 of the profile at profileRef, as the check stored it."
    )
    last_checked_at: Timestamp | None = Field(default=None, description="When the source was last read.")
    check_started_at: Timestamp | None = Field(default=None, description="When the latest check Job was created.")
    source_read_at: Timestamp | None = Field(
        default=None,
        description="When the check whose version is current began reading the source: data written before it "
        "is in that version (a retraining run waits for a read after its trigger fired).",
    )
    history: list[DatasetVersion] = Field(default_factory=list, description="Recent versions, newest first.")
    last_check: DatasetCheck | None = Field(default=None, description="Outcome of the latest check of the source.")
    checks: int = Field(default=0, description="Checks started so far (numbers the check Jobs).")
    active_check: str | None = Field(default=None, description="Name of the check Job under way, if any.")
    blocked_check: CheckBlocked | None = Field(
        default=None, description="Why the check cannot run yet (its pod cannot start); cleared once a check ran."
    )
    checked_generation: int | None = Field(default=None, description="The generation the latest check is for.")
