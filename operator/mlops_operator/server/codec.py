"""The Open Inference Protocol (V2) REST codec: JSON tensors in, a 2-D float matrix out, and back.

Accepted: one input of shape [rows, features], or one input per feature of shape [rows] or [rows, 1]
(concatenated in order). Datatypes FP16/FP32/FP64, INT8..INT64, UINT8..UINT64, BOOL. Every client
mistake raises CodecError with a message naming the problem (the server answers 400 with it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NUMERIC_DATATYPES = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
}  # fmt: skip


class CodecError(ValueError):
    """A request that does not follow the protocol or does not fit the model."""


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [x for item in data for x in _flatten(item)]
    return data


def decode_input(tensor: Any, index: int) -> np.ndarray:
    if not isinstance(tensor, dict):
        raise CodecError(f"inputs[{index}] must be an object with name, shape, datatype and data")
    for field in ("name", "shape", "datatype", "data"):
        if field not in tensor:
            raise CodecError(f"inputs[{index}] has no {field!r}")
    shape, datatype = tensor["shape"], tensor["datatype"]
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CodecError(f"inputs[{index}].shape must be a list of non-negative integers, got {shape!r}")
    if datatype not in NUMERIC_DATATYPES:
        raise CodecError(f"inputs[{index}].datatype {datatype!r} is not supported; use one of FP32, FP64, INT64, ...")
    values = _flatten(tensor["data"])
    expected = math.prod(shape)
    if len(values) != expected:
        raise CodecError(f"inputs[{index}] has {len(values)} values but shape {shape} needs {expected}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise CodecError(f"inputs[{index}].data must hold only numbers for datatype {datatype}") from None
    if not np.all(np.isfinite(array)):
        raise CodecError(f"inputs[{index}].data holds NaN or infinite values")
    if len(shape) == 1:
        return array.reshape(shape[0], 1)
    if len(shape) == 2:
        return array.reshape(shape)
    raise CodecError(f"inputs[{index}].shape {shape} must have 1 or 2 dimensions")


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
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise CodecError("'id' must be a string")
    return matrix, request_id


def encode_response(*, model: str, version: str, request_id: str | None, predictions: np.ndarray) -> dict:
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
    return response


_BINARY_DTYPES = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1", "INT16": "<i2",
    "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip


def split_binary_request(raw: bytes, header_length: int) -> dict:
    """The binary tensor extension (as tritonclient sends it): a JSON header, then raw little-endian tensors.

    Inputs that carry `parameters.binary_data_size` get their `data` from the bytes after the header.
    """
    import json

    if header_length < 0 or header_length > len(raw):
        raise CodecError(f"Inference-Header-Content-Length {header_length} does not fit a {len(raw)}-byte body")
    try:
        body = json.loads(raw[:header_length])
    except ValueError:
        raise CodecError("the JSON header of the binary request is not valid JSON") from None
    offset = header_length
    for index, tensor in enumerate(body.get("inputs") or []):
        size = ((tensor or {}).get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        dtype = _BINARY_DTYPES.get(tensor.get("datatype"))
        if dtype is None:
            raise CodecError(f"inputs[{index}].datatype {tensor.get('datatype')!r} cannot be sent as binary data")
        chunk = raw[offset : offset + size]
        if len(chunk) != size or size % np.dtype(dtype).itemsize:
            raise CodecError(f"inputs[{index}] announces {size} bytes of binary data that are not there")
        tensor["data"] = np.frombuffer(chunk, dtype=dtype).astype(np.float64).tolist()
        offset += size
    return body
