"""The model server's data plane: metadata, readiness, inference and feedback, whatever the protocol.

The REST routes (server/app.py) only turn HTTP into these calls and the calls' answers (or their
`ServingError`) back into HTTP, as MLServer and KServe layer theirs. Everything the server knows and
measures about its model — the micro-batcher, drift, live quality, the metrics — lives here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from . import receipts
from .batching import MicroBatcher, RowsRefused
from .capture import CaptureWriter
from .codec import MAX_ID_LENGTH, CodecError, decode_request, encode_response
from .monitoring import AccuracyWindow, DriftWindow, EstimateWindow, Scores, ServerMetrics, score


@dataclass
class LoadedModel:
    name: str
    version: str
    model: Any
    features: list[str]
    classify: bool
    classes: list = field(default_factory=list)  # a classifier's classes, as its training target had them
    calibration: dict | None = None  # the confidence calibration stored with a classifier (calibration.json)
    # How the version passed its reproducibility check on load: Reproduced, EnvironmentDiffers, ReplaySkipped.
    reproducibility: str = "Reproduced"


class ServingError(Exception):
    """Why a call is refused: `kind` says whose fault it is, and each protocol maps it to its own code."""

    INVALID, NOT_FOUND, REFUSED, INTERNAL = "invalid", "not-found", "refused", "internal"
    FORBIDDEN, CONFLICT = "forbidden", "conflict"  # feedback: a receipt not accepted; one already scored

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# How each reason feedback is refused for reads to a client: its request is wrong (400), its receipt is not
# accepted here (403), or it was already used (409).
REFUSAL_KINDS = {
    receipts.MALFORMED: ServingError.INVALID,
    receipts.LABEL_COUNT: ServingError.INVALID,
    receipts.INVALID_LABELS: ServingError.INVALID,
    receipts.ECHOED_FORM: ServingError.INVALID,
    receipts.ID_FORM: ServingError.INVALID,
    receipts.FORGED: ServingError.FORBIDDEN,
    receipts.EXPIRED: ServingError.FORBIDDEN,
    receipts.OTHER_MODEL: ServingError.FORBIDDEN,
    receipts.DISABLED: ServingError.FORBIDDEN,
    receipts.REPLAYED: ServingError.CONFLICT,
}
RECEIPT_FORM = '{"receipt": "<parameters.receipt of the infer response>", "labels": [one label per row]}'


def feedback_request(body: Any) -> tuple[Any, list]:
    """(receipt token, labels) of a feedback body; Refusal naming what to send instead.

    The two forms of earlier releases are refused by name: in the echoed form the client supplies both the
    prediction and the label, so anyone who reaches the Service decides the model's accuracy; in the id
    form the client names a request id that other clients chose, so its labels score and capture their
    predictions."""
    if not isinstance(body, dict):
        raise receipts.Refusal(receipts.MALFORMED, f"feedback is a JSON object: {RECEIPT_FORM}")
    if "receipt" not in body:
        if "predictions" in body or "model_version" in body:
            raise receipts.Refusal(
                receipts.ECHOED_FORM,
                "feedback with model_version + predictions is no longer "
                "accepted: the client supplied both the prediction and the label. Send "
                f"{RECEIPT_FORM}",
            )
        if "id" in body:
            raise receipts.Refusal(
                receipts.ID_FORM,
                "feedback by request id is no longer accepted: ids are "
                "chosen by clients, so labels could score other clients' predictions. Send "
                f"{RECEIPT_FORM}",
            )
        raise receipts.Refusal(receipts.MALFORMED, f"feedback needs a receipt and labels: {RECEIPT_FORM}")
    labels = body.get("labels")
    if not isinstance(labels, list) or not labels:
        raise receipts.Refusal(receipts.MALFORMED, f'"labels" must be a non-empty list, one per row: {RECEIPT_FORM}')
    if not all(isinstance(label, str | int | float) for label in labels):
        raise receipts.Refusal(
            receipts.INVALID_LABELS, '"labels" must be a list of numbers or strings (class labels or target values)'
        )
    return body["receipt"], labels


class DataPlane:
    """One served model version: what a client can ask of it, and what the server measures about it.

    With a `receipt_key` every answer carries a signed receipt and feedback must present one (any pod
    sharing the key scores it, under the version that made the prediction); without one the server issues
    none and refuses all feedback."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        profile: dict | None,
        max_batch_size: int = 64,
        max_batch_delay: float = 0.002,
        capture: CaptureWriter | None = None,
        receipt_key: bytes | None = None,
        feedback_max_age: float = receipts.FEEDBACK_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.loaded = loaded
        self.capture = capture
        self.receipt_key, self.feedback_max_age, self.clock = receipt_key, feedback_max_age, clock
        self.seen = receipts.SeenReceipts(max_age=feedback_max_age)
        self.drift = DriftWindow(profile, loaded.features)
        self.estimate = EstimateWindow(loaded.model, loaded.calibration) if loaded.calibration else None
        self.metrics = ServerMetrics(
            model=loaded.name,
            version=loaded.version,
            drift=self.drift,
            accuracy=AccuracyWindow(),
            classes=loaded.classes,
            estimate=self.estimate,
        )
        self.batcher = MicroBatcher(
            loaded.model.predict,
            max_batch_size=max_batch_size,
            max_delay=max_batch_delay,
            reference=np.zeros((1, len(loaded.features))),  # until a request predicts: rows any model takes
        )
        self.batcher.on_batch = self.metrics.batch_rows.observe
        self.metrics.environment_differs.set(loaded.reproducibility == "EnvironmentDiffers")

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.batcher.start()
        if self.capture is not None:
            self.capture.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        if self.capture is not None:
            await self.capture.stop()

    # -------------------------------------------------------------------------------------- metadata

    @staticmethod
    def server_metadata() -> dict[str, Any]:
        return {"name": "mlops-operator", "version": __version__, "extensions": ["binary_tensor_data"]}

    def model_metadata(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "name": loaded.name,
            "versions": [loaded.version],
            "platform": "sklearn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(loaded.features)]}],
            "outputs": [{"name": "predict", "datatype": "INT64" if loaded.classify else "FP64", "shape": [-1]}],
            "parameters": {"features": loaded.features},
        }

    def check_model(self, name: str, version: str | None = None) -> None:
        """Refuse a call for another model, or another version of this one."""
        if name != self.loaded.name or (version and version != self.loaded.version):
            asked = f"model {name!r}{f' version {version!r}' if version else ''}"
            raise ServingError(
                ServingError.NOT_FOUND,
                f"{asked} is not served here; this server serves {self.loaded.name!r} version {self.loaded.version!r}",
            )

    # ------------------------------------------------------------------------------------- inference

    async def infer(self, body: Any) -> dict[str, Any]:
        """A decoded V2 infer request (a parsed JSON object, binary tensors already in place) → its response,
        with a receipt for its predictions when the server has a key."""
        try:
            rows, request_id = decode_request(body, features=len(self.loaded.features))
        except CodecError as error:
            raise ServingError(ServingError.INVALID, str(error)) from None
        except Exception as error:  # decoding reads nothing but the request: whatever fails, the request is why
            raise ServingError(ServingError.INVALID, f"the request cannot be decoded: {type(error).__name__}") from None
        try:
            predictions = await self.batcher.predict(rows)
        except RowsRefused as refused:  # these rows alone fail, other requests' rows predict
            raise ServingError(ServingError.REFUSED, f"the model cannot predict these rows: {refused}") from None
        except Exception as error:  # the model fails on everything: a server fault
            raise ServingError(
                ServingError.INTERNAL, f"prediction failed: {type(error).__name__}: {str(error)[:500]}"
            ) from None
        self.drift.add(rows, predictions)
        if self.estimate is not None:
            self.estimate.add(rows)
        receipt = self._receipt(predictions)
        if self.capture is not None:
            self.capture.predicted(receipt[0] if receipt else None, rows, predictions)
        self.metrics.predicted(predictions, classify=self.loaded.classify)
        return encode_response(
            model=self.loaded.name,
            version=self.loaded.version,
            request_id=request_id,
            predictions=predictions,
            receipt=receipt[1] if receipt else None,
        )

    def _receipt(self, predictions: np.ndarray) -> tuple[str, str] | None:
        """(receipt id, signed token) for these predictions; None without a key."""
        if self.receipt_key is None:
            return None
        receipt = receipts.Receipt(
            model=self.loaded.name,
            version=self.loaded.version,
            id=receipts.new_receipt_id(),
            issued=round(self.clock(), 3),
            predictions=predictions.tolist(),
        )
        return receipt.id, receipts.issue_receipt(self.receipt_key, receipt)

    # -------------------------------------------------------------------------------------- feedback

    def feedback(self, body: Any) -> dict[str, Any]:
        """Labels for the predictions of a receipt `{"receipt": "...", "labels": [...]}`, scored under the version
        the receipt names — whichever pod of the ModelDeployment made them — once per receipt on this pod.

        Whatever is refused is counted by reason (mlops_feedback_refused_total) and scores nothing."""
        try:
            receipt, labels, scores = self._accept(body)
        except receipts.Refusal as refusal:
            self.metrics.refused(refusal.reason)
            raise ServingError(REFUSAL_KINDS[refusal.reason], str(refusal)) from None
        classify = self.loaded.classify
        self.metrics.feedback(scores, classify=classify, version=receipt.version)
        if self.capture is not None:
            self.capture.labelled(
                receipt.id, labels, version=receipt.version, issued=receipt.issued, max_age=self.feedback_max_age
            )
        answer = {"model_version": receipt.version, "labelled": scores.labelled}
        if classify:
            return {**answer, "correct": scores.correct}
        return {**answer, "absolute_error": scores.absolute_error, "squared_error": scores.squared_error}

    def _accept(self, body: Any) -> tuple[receipts.Receipt, list, Scores]:
        """The verified receipt, its labels and their scores, the receipt now used on this pod; Refusal if not."""
        if self.receipt_key is None:
            raise receipts.Refusal(
                receipts.DISABLED,
                "feedback is not enabled: no receipt key (this server was "
                "started without --receipt-key-file, so its answers carry no receipt)",
            )
        token, labels = feedback_request(body)
        receipt = receipts.open_receipt(self.receipt_key, token)
        if receipt.model != self.loaded.name:
            raise receipts.Refusal(
                receipts.OTHER_MODEL,
                f"the receipt is for model {receipt.model[:MAX_ID_LENGTH]!r}; this server serves {self.loaded.name!r}",
            )
        now = self.clock()
        receipts.check_age(receipt, now=now, max_age=self.feedback_max_age)
        receipts.check_labels(receipt, labels)
        try:
            scores = score(receipt.predictions, labels, classify=self.loaded.classify)
        except ValueError as error:
            raise receipts.Refusal(receipts.INVALID_LABELS, str(error)) from None
        self.seen.admit(receipt, now=now)  # last: a receipt refused for its labels can be sent again, corrected
        return receipt, labels, scores
