"""What a Job's container tells the operator: a small JSON envelope in its termination message.

The termination message is the one channel from a Job's pod to the operator that needs neither to
reach the other: the kubelet copies the file at terminationMessagePath into the pod's status, and the
operator reads it with the pods it already watches. It is small: the kubelet keeps the first 4 KiB
per container and drops the rest, which leaves text that is no longer JSON. A Dataset of ~200 columns
whose result listed every column name was therefore never Ready.

The operator cannot read the artifact store instead: it holds no store credentials (each namespace's
Secret is given to that namespace's pods and never read by the operator, docs/operations.md) and
mounts no namespace's claim. So the envelope carries every fact the status needs, each bounded, and the
parts that grow with the data stay in the store, named by URI and digest:

- a dataset check (`CheckResult`) reports the version, the rows, the snapshot's and the profile's
  URIs, the sha256 of the profile as stored and the number of feature columns. The profile names every
  feature column in order (its `features`), so the whole column list of a Dataset of any width is
  behind `status.profileRef`, checked by `status.profileSha256`, counted by `status.columnCount`. The
  names also travel inline (`columns`, then `status.columns`) while the whole envelope still fits:
  they are the part dropped first.
- a training (`TrainingResult`) reports its metrics (a fixed set of names), the model's URI and sha256
  and a few scalars: nothing grows with the columns (the model's features are in its metadata.json, in
  the store).

`termination_message` is the one writer (cli.py runs it for every Job): whatever it is given, the
text is a JSON object of at most TERMINATION_MESSAGE_MAX_BYTES. Optional parts are dropped, then the
message is shortened; a result that still does not fit becomes a failure that says so
(ResultTooLarge), never cut-off text. `parse_termination_message` is the one reader of the text
(resources.jobs.termination_result), `read_check_result` the one reader of a check's envelope and
`read_training_result` of a training's.

What the operator asks of a training Job travels the other way, in its environment: `TrainingRequest`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, Strict, ValidationError, model_validator

from ..api.common import Sha256Hex, Sha256Version, StatusModel
from ..api.reasons import Reason
from ..api.trainingrun import ChampionScores, DatasetPin, TrainingEnvironment, TrainingRunSpec

# The kubelet keeps this much of a container's termination message (MaxContainerTerminationMessageLength).
TERMINATION_MESSAGE_MAX_BYTES = 4 * 1024
# Parts of a result that may be left out when it does not fit: the reader finds them elsewhere.
OPTIONAL_PARTS = ("columns",)
ELLIPSIS = "…"


class JobResult(StatusModel):
    """The envelope every Job reports: whether it did its work, and if not, why in a reason and words."""

    ok: bool = Field(default=False, description="Whether the Job did its work.")
    reason: str | None = Field(default=None, description="CamelCase reason of a failure.")
    message: str = Field(default="", description="What went wrong, in words.")
    permanent: bool = Field(default=False, description="A failure that retrying cannot fix.")

    def wire(self) -> dict[str, Any]:
        """The envelope as JSON-ready data, camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True) | {"ok": self.ok}


class CheckResult(JobResult):
    """What a dataset check reports (data.check.run_check): a failure with its reason, or the version."""

    version: Sha256Version | None = Field(default=None, description="Content version of the data.")
    rows: int | None = Field(default=None, ge=0, description="Rows of the data.")
    column_count: int | None = Field(default=None, ge=0, description="Feature columns (all but the target).")
    columns: list[str] | None = Field(
        default=None, description="The feature columns in order; left out when they do not fit (see the profile)."
    )
    snapshot_uri: str | None = Field(default=None, description="The stored canonical CSV.")
    profile_uri: str | None = Field(default=None, description="The stored profile, which names every feature.")
    profile_sha256: Sha256Hex | None = Field(default=None, description="sha256 of the stored profile's bytes.")

    @model_validator(mode="after")
    def _a_passed_check_is_complete(self) -> CheckResult:
        if self.ok and (self.version is None or self.rows is None or not self.snapshot_uri):
            raise ValueError("a passed check must name its version, rows and snapshotUri")
        if self.columns is not None:
            if self.column_count is None:  # a check Job of a release before columnCount
                self.column_count = len(self.columns)
            elif self.column_count != len(self.columns):
                raise ValueError(f"columnCount is {self.column_count} but columns lists {len(self.columns)}")
        return self


class TrainingResult(JobResult):
    """What a training Job reports (trainer.train.run_training): where it stored the model, and the evidence
    the promotion decides on. A passed training names its model; the figures are numbers, never text."""

    metrics: dict[str, Annotated[float, Strict()]] = Field(default_factory=dict, description="Held-out metrics.")
    model_uri: str | None = Field(default=None, description="Where the version is stored.")
    sha256: Sha256Hex | None = Field(default=None, description="sha256 of its MANIFEST.json.")
    fit_seconds: float | None = Field(default=None, ge=0, description="How long the fit took.")
    calibrated: bool = Field(default=False, description="Whether it stored a calibration of its estimate.")
    primary_metric: str | None = Field(default=None, description="The metric that names the model's quality.")
    signature_sha256: str | None = Field(default=None, description="Digest of its input signature.")
    feature_count: int | None = Field(default=None, ge=0, description="Feature columns it takes.")
    test_rows: int | None = Field(default=None, ge=0, description="Held-out rows it was scored on.")
    champion: ChampionScores | None = Field(default=None, description="The champion scored on the same rows.")
    environment: TrainingEnvironment | None = Field(default=None, description="What it was trained with.")
    golden_sha256: Sha256Hex | None = Field(default=None, description="sha256 of its golden.json, if it has one.")

    @model_validator(mode="after")
    def _a_passed_training_names_its_model(self) -> TrainingResult:
        if self.ok and (not self.model_uri or self.sha256 is None):
            raise ValueError("a passed training must name its modelUri and sha256")
        return self


class ChampionRef(StatusModel):
    """The champion a training also scores on its held-out rows (beatChampion compares on the same rows)."""

    name: str = Field(description="The champion's TrainingRun.")
    model_uri: str = Field(description="Where its version is stored.")
    sha256: str = Field(description="sha256 of its MANIFEST.json, checked before it is loaded.")


class TrainingRequest(StatusModel):
    """What the operator asks of a training Job (resources.jobs.desired_training_job, in MLOPS_REQUEST)."""

    namespace: str = Field(description="The TrainingRun's namespace.")
    run: str = Field(description="The TrainingRun: the version's name.")
    run_uid: str | None = Field(default=None, description="Its uid: the store key of what it trains.")
    spec: TrainingRunSpec = Field(description="The TrainingRun's spec.")
    dataset: DatasetPin = Field(description="The dataset version pinned, and where its snapshot is.")
    champion: ChampionRef | None = Field(default=None, description="The champion to score beside it.")

    def wire(self) -> dict[str, Any]:
        """JSON-ready, camelCase, unset optional fields left out (the Job parses it with this model)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _encoded(wire: dict[str, Any]) -> bytes:
    """Compact JSON in UTF-8 (a non-ASCII name takes its 2-4 bytes, not a 6-byte escape each)."""
    try:
        return json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped, still valid JSON
        return json.dumps(wire, separators=(",", ":")).encode()


def _with_short_message(wire: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """`wire` with its message cut (ending in an ellipsis) so that the whole fits; None if no cut does."""
    message = str(wire.get("message") or "")
    if not message:
        return None
    low, high, best = 0, len(message) - 1, None
    while low <= high:  # the longest prefix that fits
        middle = (low + high) // 2
        shorter = {**wire, "message": message[:middle] + ELLIPSIS}
        if len(_encoded(shorter)) <= limit:
            best, low = shorter, middle + 1
        else:
            high = middle - 1
    return best


def termination_message(result: JobResult | dict[str, Any], *, limit: int = TERMINATION_MESSAGE_MAX_BYTES) -> str:
    """The result as the text of a termination message: a JSON object of at most `limit` UTF-8 bytes.

    Too large, it loses its optional parts (OPTIONAL_PARTS), then the end of its message; if it still
    does not fit, it becomes a failure (ResultTooLarge) naming its largest fields.
    """
    wire = result.wire() if isinstance(result, JobResult) else dict(result)
    full = len(_encoded(wire))
    if full <= limit:
        return _encoded(wire).decode()
    wire = {k: v for k, v in wire.items() if k not in OPTIONAL_PARTS}
    if len(_encoded(wire)) <= limit:
        return _encoded(wire).decode()
    shortened = _with_short_message(wire, limit)
    if shortened is not None:
        return _encoded(shortened).decode()
    sizes = sorted(((len(_encoded({k: v})), k) for k, v in wire.items()), reverse=True)[:3]
    largest = ", ".join(f"{k} ({size} bytes)" for size, k in sizes)
    failure = {
        "ok": False,
        "reason": Reason.RESULT_TOO_LARGE.value,
        "message": f"the Job's result takes {full} bytes, more than the {limit} of a termination message even "
        f"without its optional parts; largest fields: {largest}"[: limit // 2],
    }
    return _encoded(failure).decode()


def parse_termination_message(text: str) -> dict[str, Any]:
    """The JSON object a Job's container left; text that is not one is a failure (ResultUnreadable) that
    says so, never read as a failure of the work itself."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    size = len(text.encode(errors="replace"))
    cut = (
        f", the kubelet keeps {TERMINATION_MESSAGE_MAX_BYTES}: cut off?"
        if size >= TERMINATION_MESSAGE_MAX_BYTES
        else ""
    )
    return {
        "ok": False,
        "reason": Reason.RESULT_UNREADABLE.value,
        "message": f"the Job's result is not a JSON object ({size} bytes{cut}): {text[:200]!r}",
    }


def read_check_result(raw: dict[str, Any] | None) -> CheckResult | None:
    """A check Job's result as the typed envelope (None: it left none); one that does not fit the
    envelope is a failure (ResultUnreadable) naming what is wrong."""
    if raw is None:
        return None
    try:
        return CheckResult.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'result'}: {p['msg']}" for p in error.errors())
        return CheckResult(ok=False, reason=Reason.RESULT_UNREADABLE, message=f"the check's result: {problems}"[:1500])


def read_training_result(raw: dict[str, Any] | None) -> TrainingResult | None:
    """A training Job's result as the typed envelope (None: it left none). A result that claims success
    but does not fit the envelope (a checksum that is no sha256, figures that are not numbers) is no
    evidence of this run: a failure, UnattributedResult, saying what was reported. Anything else that
    does not fit is a failure, ResultUnreadable."""
    if raw is None:
        return None
    try:
        return TrainingResult.model_validate(raw)
    except ValidationError as error:
        wrong = {str(p["loc"][0]) for p in error.errors() if p["loc"]}
        if raw.get("ok") is True and "sha256" in wrong:
            said = (
                f"the Job reported {str(raw.get('sha256'))[:80]!r} as the model's sha256, which is not a sha256 digest"
            )
            return TrainingResult(ok=False, reason=Reason.UNATTRIBUTED_RESULT, message=said)
        if raw.get("ok") is True and "metrics" in wrong:
            said = "the Job reported metrics that are not numbers"
            return TrainingResult(ok=False, reason=Reason.UNATTRIBUTED_RESULT, message=said)
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'result'}: {p['msg']}" for p in error.errors())
        return TrainingResult(
            ok=False, reason=Reason.RESULT_UNREADABLE, message=f"the training's result: {problems}"[:1500]
        )
