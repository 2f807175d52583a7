"""The Open Inference Protocol (V2) REST codec: JSON tensors in, a 2-D float matrix out, and back.

Accepted: one input of shape [rows, features], or one input per feature of shape [rows] or [rows, 1]
(concatenated in order). Datatypes FP16/FP32/FP64, INT8..INT64, UINT8..UINT64, BOOL. Every client
mistake raises CodecError with a message naming the problem (the server answers 400 with it).

Rows are checked here, before they join a micro-batch with other clients' rows: every value must be
finite and within ±FEATURE_LIMIT (float32's range — tree models convert their input to float32, and a
value beyond it would make the whole shared predict call fail). One vectorised abs/max per request.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

NUMERIC_DATATYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
FEATURE_LIMIT = float(np.finfo(np.float32).max)  # ≈ 3.4e38
MAX_DIMENSION = 2**31 - 1  # a shape entry beyond this cannot fit in a request body anyway
MAX_ID_LENGTH = 128  # request ids are echoed: bounded


class CodecError(ValueError):
    """A request that does not follow the protocol or does not fit the model."""


def parse_json(raw: bytes, what: str = "the body") -> Any:
    """`raw` as JSON; any way it is not (bad syntax or encoding, nesting deeper than the parser's
    recursion limit, integers of more than 4,300 digits) is a CodecError."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        if isinstance(error, RecursionError):
            raise CodecError(f"{what} is nested too deeply") from None
        raise CodecError(f"{what} is not valid JSON: {error}") from None


def decode_input(tensor: Any, index: int) -> np.ndarray:
    if not isinstance(tensor, dict):
        raise CodecError(f"inputs[{index}] must be an object with name, shape, datatype and data")
    for field in ("name", "shape", "datatype", "data"):
        if field not in tensor:
            raise CodecError(f"inputs[{index}] has no {field!r}")
    shape, datatype = tensor["shape"], tensor["datatype"]
    if not isinstance(shape, list) or not shape or not all(type(d) is int and 0 <= d <= MAX_DIMENSION for d in shape):
        raise CodecError(f"inputs[{index}].shape must be a list of non-negative integers, got {_short(shape)}")
    if len(shape) > 2:
        raise CodecError(f"inputs[{index}].shape {_short(shape)} must have 1 or 2 dimensions")
    if not isinstance(datatype, str) or datatype not in NUMERIC_DATATYPES:
        raise CodecError(
            f"inputs[{index}].datatype {_short(datatype)} is not supported; use one of FP32, FP64, INT64, ..."
        )
    try:  # nested lists of any depth, or a flat list; numpy refuses ragged ones
        array = np.asarray(tensor["data"], dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as error:
        detail = "an integer too large for a float" if isinstance(error, OverflowError) else "something that is not"
        raise CodecError(
            f"inputs[{index}].data must hold only numbers for datatype {datatype} (a flat list, or nested lists "
            f"of equal length); it holds {detail}"
        ) from None
    expected = math.prod(shape)
    if array.size != expected:
        raise CodecError(f"inputs[{index}] has {array.size} values but shape {shape} needs {expected}")
    return array.reshape(shape[0], 1 if len(shape) == 1 else shape[1])


def decode_request(body: Any, *, features: int) -> tuple[np.ndarray, str | None]:
    """(rows × features matrix, request id) from a parsed V2 infer request."""
    if not isinstance(body, dict):
        raise CodecError("the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise CodecError("the request needs a non-empty 'inputs' list")
    columns = [decode_input(tensor, i) for i, tensor in enumerate(inputs)]
    rows = {c.shape[0] for c in columns}
    if len(rows) != 1:
        raise CodecError(f"inputs disagree on the number of rows: {sorted(rows)}")
    matrix = columns[0] if len(columns) == 1 else np.hstack(columns)
    if matrix.shape[1] != features:
        raise CodecError(f"the model takes {features} features per row, the request has {matrix.shape[1]}")
    if matrix.shape[0] == 0:
        raise CodecError("the request has no rows")
    if not np.abs(matrix).max() <= FEATURE_LIMIT:  # NaN fails the comparison too; ~1.5 µs for a few rows
        raise CodecError(_out_of_range(matrix))
    request_id = body.get("id")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise CodecError("'id' must be a string")
        if len(request_id) > MAX_ID_LENGTH:
            raise CodecError(f"'id' is {len(request_id)} characters long; at most {MAX_ID_LENGTH} are accepted")
    return matrix, request_id


def _out_of_range(matrix: np.ndarray) -> str:
    rows, columns = np.nonzero(~(np.abs(matrix) <= FEATURE_LIMIT))
    return (
        f"{len(rows)} value(s) cannot be features (NaN, infinite, or beyond float32's ±{FEATURE_LIMIT:.4g}): "
        f"row {rows[0]}, feature {columns[0]} is {float(matrix[rows[0], columns[0]])!r}"
    )


def _short(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters: messages quote client input without echoing all of it."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deeply nested, or an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_response(
    *, model: str, version: str, request_id: str | None, predictions: np.ndarray, receipt: str | None = None
) -> dict:
    """The V2 response; a receipt for feedback (server/receipts.py) goes in its `parameters`."""
    integer = np.issubdtype(predictions.dtype, np.integer)
    output = {
        "name": "predict",
        "shape": [int(predictions.shape[0])],
        "datatype": "INT64" if integer else "FP64",
        "data": predictions.tolist(),
    }
    response = {"model_name": model, "model_version": version, "outputs": [output]}
    if request_id is not None:
        response["id"] = request_id
    if receipt is not None:
        response["parameters"] = {"receipt": receipt}
    return response


_BINARY_DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def parse_header_length(value: str) -> int:
    """The Inference-Header-Content-Length header: a decimal number of bytes, nothing else."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise CodecError(f"Inference-Header-Content-Length must be a number of bytes, got {_short(value)}")
    return int(text)


def split_binary_request(raw: bytes, header_length: int) -> dict:
    """The binary tensor extension (as tritonclient sends it): a JSON header, then raw little-endian tensors.

    Inputs that carry `parameters.binary_data_size` get their `data` from the bytes after the header.
    """
    if header_length < 0 or header_length > len(raw):
        raise CodecError(f"Inference-Header-Content-Length {header_length} does not fit a {len(raw)}-byte body")
    body = parse_json(raw[:header_length], "the JSON header of the binary request")
    if not isinstance(body, dict):
        raise CodecError("the JSON header of the binary request must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        return body  # decode_request names the problem
    offset = header_length
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            continue  # decode_request names the problem
        parameters = tensor.get("parameters")
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        if type(size) is not int or size < 0:
            raise CodecError(f"inputs[{index}].parameters.binary_data_size must be a byte count, got {_short(size)}")
        datatype = tensor.get("datatype")
        dtype = _BINARY_DTYPES.get(datatype) if isinstance(datatype, str) else None
        if dtype is None:
            raise CodecError(f"inputs[{index}].datatype {_short(datatype)} cannot be sent as binary data")
        chunk = raw[offset : offset + size]
        if len(chunk) != size or size % np.dtype(dtype).itemsize:
            raise CodecError(f"inputs[{index}] announces {size} bytes of binary data that are not there")
        tensor["data"] = np.frombuffer(chunk, dtype=dtype)
        offset += size
    return body
