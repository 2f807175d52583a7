"""Prediction receipts: proof that a prediction was made by this ModelDeployment's servers.

Live quality drives automatic decisions (a canary promoted or rolled back, a retraining started, a
captured row trained on), so a label may only score a prediction the servers themselves made. Every
infer response carries a receipt, `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))`,
with the payload a compact JSON object:

    {"m": model, "v": version, "id": random id (128 bits), "t": issue time (unix seconds), "p": predictions}

The key is per ModelDeployment, shared by all its server pods (stable and canary, every version) and by
nothing else, so any pod can verify a receipt and score it under the version that made the prediction,
and a receipt of another ModelDeployment is forged here. A receipt proves the prediction, not the label:
whoever holds a receipt can still post a wrong label for it, once per pod (docs/serving.md).

Everything here is pure but `SeenReceipts`, a bounded per-pod memory of the receipts already scored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import math
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from ..data.capture import FEEDBACK_MAX_AGE_SECONDS

__all__ = ["FEEDBACK_MAX_AGE_SECONDS", "Receipt", "Refusal", "SeenReceipts", "issue_receipt", "open_receipt"]

RECEIPT_KEY_ENV = "MLOPS_RECEIPT_KEY_FILE"
MIN_KEY_BYTES = 16
ID_BYTES = 16  # 128 random bits: no client can guess another client's receipt id
MAX_RECEIPT_CHARS = 4 * 1024 * 1024  # half the body limit: a receipt of many rows is long, never unbounded
CLOCK_SKEW_SECONDS = 60.0  # pods' clocks may differ a little; a receipt from further in the future is refused

# Why feedback is refused: the `reason` label of mlops_feedback_refused_total.
MALFORMED = "malformed"  # not a feedback body, or a receipt that does not decode
FORGED = "forged"  # the signature does not match (altered, made up, or another ModelDeployment's)
EXPIRED = "expired"  # older than the maximum age (or than what this pod can still tell apart from a replay)
REPLAYED = "replayed"  # this pod has already scored that receipt
OTHER_MODEL = "other_model"  # a valid receipt of another model
LABEL_COUNT = "label_count"  # not one label per predicted row
INVALID_LABELS = "invalid_labels"  # labels that cannot be scored (a regressor's label that is no number)
DISABLED = "disabled"  # this server has no receipt key: it accepts no feedback
ECHOED_FORM = "echoed_form"  # the old form where the client sent the predictions itself
ID_FORM = "id_form"  # the old form keyed by a request id the client chose
REASONS = (
    MALFORMED,
    FORGED,
    EXPIRED,
    REPLAYED,
    OTHER_MODEL,
    LABEL_COUNT,
    INVALID_LABELS,
    DISABLED,
    ECHOED_FORM,
    ID_FORM,
)


class Refusal(Exception):
    """Feedback that is not scored: `reason` (one of REASONS) is counted, the message goes to the client."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Receipt:
    """What a receipt vouches for: this model's `version` predicted `predictions` at `issued`."""

    model: str
    version: str
    id: str
    issued: float
    predictions: list


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """base64url without padding; ValueError for anything else (binascii.Error is one)."""
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()


def new_receipt_id() -> str:
    return _b64encode(secrets.token_bytes(ID_BYTES))


def issue_receipt(key: bytes, receipt: Receipt) -> str:
    """The signed token of `receipt`."""
    body = {"m": receipt.model, "v": receipt.version, "id": receipt.id, "t": receipt.issued, "p": receipt.predictions}
    payload = _b64encode(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_b64encode(_signature(key, payload))}"


def open_receipt(key: bytes, token: Any) -> Receipt:
    """The receipt a token carries, once its signature is checked; Refusal(MALFORMED or FORGED) otherwise.
    Nothing of the payload is parsed before its signature matched."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_RECEIPT_CHARS or token.count(".") != 1:
        raise Refusal(MALFORMED, '"receipt" must be the string the infer response gave in parameters.receipt')
    payload, signature = token.split(".")
    try:
        given = _b64decode(signature)
    except (ValueError, binascii.Error):
        given = None
    if given is None or _b64encode(given) != signature:  # only the canonical text: a token has one spelling
        raise Refusal(MALFORMED, "the receipt's signature is not base64url")
    if not hmac.compare_digest(given, _signature(key, payload)):
        raise Refusal(
            FORGED,
            "the receipt's signature does not match: it was not issued by this model's servers, or it was altered",
        )
    try:
        body = json.loads(_b64decode(payload))
    except (ValueError, binascii.Error, RecursionError):
        raise Refusal(MALFORMED, "the receipt's payload does not decode") from None
    return _receipt_of(body)


def _receipt_of(body: Any) -> Receipt:
    """The fields of a signed payload, checked: signed by a key of ours, but not necessarily by this release."""
    fields = body if isinstance(body, dict) else {}
    model, version, rid, issued, predictions = (fields.get(k) for k in ("m", "v", "id", "t", "p"))
    texts = all(isinstance(value, str) for value in (model, version, rid))
    when = isinstance(issued, int | float) and not isinstance(issued, bool) and math.isfinite(issued)
    if not (texts and when and isinstance(predictions, list)):
        raise Refusal(MALFORMED, "the receipt's payload lacks a field this server needs")
    return Receipt(model=model, version=version, id=rid, issued=float(issued), predictions=predictions)


def check_age(receipt: Receipt, *, now: float, max_age: float) -> None:
    """Refusal(EXPIRED) for a receipt older than `max_age`, or issued further in the future than clocks differ."""
    age = now - receipt.issued
    if age > max_age:
        raise Refusal(
            EXPIRED, f"the receipt is {age:.0f}s old; feedback is accepted for {max_age:.0f}s after the prediction"
        )
    if age < -CLOCK_SKEW_SECONDS:
        raise Refusal(EXPIRED, f"the receipt was issued {-age:.0f}s in the future (a server's clock is wrong)")


def check_labels(receipt: Receipt, labels: list) -> None:
    """Refusal(LABEL_COUNT) unless there is one label per predicted row."""
    if len(labels) != len(receipt.predictions):
        raise Refusal(
            LABEL_COUNT,
            f"the receipt is for {len(receipt.predictions)} predicted rows, but "
            f"{len(labels)} labels were sent: one label per row, in order",
        )


class SeenReceipts:
    """The receipt ids this pod has scored, so that a replayed receipt is never scored twice here.

    Bounded: an id is kept until its receipt is past the maximum age (then the age refuses it anyway);
    when `capacity` ids are kept, the one issued first is forgotten. Whatever leaves the memory raises the
    `watermark` to its issue time, and a receipt issued at or before the watermark is refused as expired:
    memory stays bounded and a forgotten id can never be scored again. Under a sustained flood of
    feedback, the effective maximum age shrinks to the time the last `capacity` receipts span.
    """

    def __init__(self, *, max_age: float, capacity: int = 100_000) -> None:
        self.max_age, self.capacity = max_age, capacity
        self.watermark = -math.inf
        self._ids: set[str] = set()
        self._by_issue: list[tuple[float, str]] = []  # a heap: the first issued on top
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def admit(self, receipt: Receipt, *, now: float) -> None:
        """Record `receipt` as scored by this pod; Refusal(EXPIRED or REPLAYED) if it must not be."""
        with self._lock:
            self._forget(lambda issued: now - issued > self.max_age)
            if receipt.issued <= self.watermark:
                raise Refusal(
                    EXPIRED,
                    "the receipt is older than the receipts this server still remembers; "
                    "post feedback sooner after the prediction",
                )
            if receipt.id in self._ids:
                raise Refusal(REPLAYED, "this receipt has already been scored: one feedback per prediction")
            self._ids.add(receipt.id)
            heapq.heappush(self._by_issue, (receipt.issued, receipt.id))
            self._forget(lambda _: len(self._ids) > self.capacity)

    def _forget(self, condition: Any) -> None:
        """Forget the first-issued ids while `condition(issue time)` holds, raising the watermark."""
        while self._by_issue and condition(self._by_issue[0][0]):
            issued, rid = heapq.heappop(self._by_issue)
            self._ids.discard(rid)
            self.watermark = max(self.watermark, issued)
