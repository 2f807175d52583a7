"""The model server's data plane: metadata, readiness, inference and feedback, whatever the protocol.

The REST routes (server/app.py) only turn HTTP into these calls and the calls' answers (or their
`ServingError`) back into HTTP, as MLServer and KServe layer theirs. Everything the server knows and
measures about its model — the micro-batcher, drift, live quality, the metrics — lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from .batching import MicroBatcher, RowsRefused
from .capture import CaptureWriter
from .codec import MAX_ID_LENGTH, CodecError, decode_request, encode_response
from .monitoring import AccuracyWindow, DriftWindow, EstimateWindow, ServerMetrics, score


@dataclass
class LoadedModel:
    name: str
    version: str
    model: Any
    features: list[str]
    classify: bool
    classes: list = field(default_factory=list)  # a classifier's classes, as its training target had them
    calibration: dict | None = None  # the confidence calibration stored with a classifier (calibration.json)


class ServingError(Exception):
    """Why a call is refused: `kind` says whose fault it is, and each protocol maps it to its own code."""

    INVALID, NOT_FOUND, REFUSED, INTERNAL = "invalid", "not-found", "refused", "internal"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class DataPlane:
    """One served model version: what a client can ask of it, and what the server measures about it."""

    def __init__(self, loaded: LoadedModel, *, profile: dict | None, max_batch_size: int = 64,
                 max_batch_delay: float = 0.002, capture: CaptureWriter | None = None) -> None:  # fmt: skip
        self.loaded = loaded
        self.capture = capture
        self.drift = DriftWindow(profile, loaded.features)
        self.remembered = AccuracyWindow()
        self.estimate = EstimateWindow(loaded.model, loaded.calibration) if loaded.calibration else None
        self.metrics = ServerMetrics(model=loaded.name, version=loaded.version, drift=self.drift,
                                     accuracy=self.remembered, classes=loaded.classes,
                                     estimate=self.estimate)  # fmt: skip
        self.batcher = MicroBatcher(
            loaded.model.predict,
            max_batch_size=max_batch_size,
            max_delay=max_batch_delay,
            reference=np.zeros((1, len(loaded.features))),  # until a request predicts: rows any model takes
        )
        self.batcher.on_batch = self.metrics.batch_rows.observe

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
            raise ServingError(ServingError.NOT_FOUND, f"{asked} is not served here; this server serves "
                               f"{self.loaded.name!r} version {self.loaded.version!r}")  # fmt: skip

    # ------------------------------------------------------------------------------------- inference

    async def infer(self, body: Any) -> dict[str, Any]:
        """A decoded V2 infer request (a parsed JSON object, binary tensors already in place) → its response."""
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
            raise ServingError(ServingError.INTERNAL,
                               f"prediction failed: {type(error).__name__}: {str(error)[:500]}") from None  # fmt: skip
        self.drift.add(rows, predictions)
        if self.estimate is not None:
            self.estimate.add(rows)
        if self.capture is not None:
            self.capture.predicted(request_id, rows, predictions)
        self.metrics.predicted(predictions, classify=self.loaded.classify)
        if request_id is not None:
            self.remembered.remember(request_id, predictions)
        return encode_response(model=self.loaded.name, version=self.loaded.version, request_id=request_id,
                               predictions=predictions)  # fmt: skip

    # -------------------------------------------------------------------------------------- feedback

    def feedback(self, body: Any) -> dict[str, Any]:
        """Ground truth for earlier predictions of the version this server serves, in one of two forms:

        - `{"id": "<request id>", "labels": [...]}`: this pod remembers what it predicted for that id;
        - `{"model_version": "...", "predictions": [...], "labels": [...]}`: the client echoes the response
          it got, so any pod of that version behind the Service can score it.

        Feedback for a version this server does not serve is refused (not-found): a client cannot create
        metric series for made-up versions or move another version's quality.
        """
        predicted, labels = self._feedback_request(body)
        if predicted is None and self.capture is not None:  # joined with the captured rows by id, on any pod
            self.capture.labelled(body["id"], labels)
        try:
            if predicted is None:
                predicted = self.remembered.take(body["id"], labels)
            scores = score(predicted, labels, classify=self.loaded.classify)
        except KeyError:
            captured = "; the labels are captured for training" if self.capture is not None else ""
            raise ServingError(ServingError.NOT_FOUND, f"no remembered prediction for request id {body['id']!r} "
                               f"(unknown, or already scored){captured}") from None  # fmt: skip
        except ValueError as error:
            raise ServingError(ServingError.INVALID, str(error)) from None
        self.metrics.feedback(scores, classify=self.loaded.classify)
        answer = {"model_version": self.loaded.version, "labelled": scores.labelled}
        if self.loaded.classify:
            self.remembered.record(scores)
            return {**answer, "correct": scores.correct}
        return {**answer, "absolute_error": scores.absolute_error, "squared_error": scores.squared_error}

    def _feedback_request(self, body: Any) -> tuple[list | None, list]:
        """(echoed predictions or None for the id form, labels); ServingError names what is wrong."""
        usage = 'feedback needs "labels" (one per row) and either "id" or "model_version" + "predictions"'
        if not isinstance(body, dict) or not isinstance(body.get("labels"), list) or not body["labels"]:
            raise ServingError(ServingError.INVALID, usage)
        labels = body["labels"]
        if not all(isinstance(label, str | int | float) for label in labels):
            words = '"labels" must be a list of numbers or strings (class labels or target values)'
            raise ServingError(ServingError.INVALID, words)
        request_id = body.get("id")
        if isinstance(request_id, str):
            if len(request_id) > MAX_ID_LENGTH:
                raise ServingError(ServingError.INVALID, f'"id" is {len(request_id)} characters long; at most '
                                   f"{MAX_ID_LENGTH} are accepted")  # fmt: skip
            return None, labels
        version, predicted = body.get("model_version"), body.get("predictions")
        if not isinstance(version, str) or not isinstance(predicted, list):
            raise ServingError(ServingError.INVALID, usage)
        if version != self.loaded.version:
            raise ServingError(ServingError.NOT_FOUND, f"feedback for model_version {version[:MAX_ID_LENGTH]!r} is "
                               f"not accepted here: this server serves {self.loaded.name!r} version "
                               f"{self.loaded.version!r} and scores only its own predictions")  # fmt: skip
        if not all(isinstance(value, str | int | float) for value in predicted):
            words = '"predictions" must be a list of numbers or strings, as the infer response gave them'
            raise ServingError(ServingError.INVALID, words)
        return predicted, labels
