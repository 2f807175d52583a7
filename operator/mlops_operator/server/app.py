"""The HTTP side of the model server: Open Inference Protocol v2 REST, feedback, /metrics (aiohttp).

aiohttp comes with kopf already; it gives an asyncio server fast enough that one predict call per
micro-batch, not the HTTP layer, is what a request costs.

Whatever a client sends is answered 200 or 4xx with a message: 400 for anything that does not decode
or fit (codec), 404 for another model or version, 413 above the size limit, 422 for rows the model
refuses while it predicts others (batching). A 5xx means the server's own fault: a model that predicts
nothing. tests/unit/test_server_fuzz.py holds the routes to that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .batching import MicroBatcher, RowsRefused
from .codec import (
    MAX_ID_LENGTH,
    CodecError,
    decode_request,
    encode_response,
    parse_header_length,
    parse_json,
    split_binary_request,
)
from .monitoring import AccuracyWindow, DriftWindow, ServerMetrics

MAX_BODY_BYTES = 8 * 1024 * 1024
METRICS = web.AppKey("metrics", ServerMetrics)


@dataclass
class LoadedModel:
    name: str
    version: str
    model: Any
    features: list[str]
    classify: bool


class _NotServed(CodecError):
    """Feedback for a model version this server does not serve."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def build_app(
    loaded: LoadedModel,
    *,
    profile: dict | None,
    max_batch_size: int = 64,
    max_batch_delay: float = 0.002,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> web.Application:
    drift = DriftWindow(profile, loaded.features)
    accuracy = AccuracyWindow()
    metrics = ServerMetrics(model=loaded.name, version=loaded.version, drift=drift, accuracy=accuracy)
    batcher = MicroBatcher(
        loaded.model.predict,
        max_batch_size=max_batch_size,
        max_delay=max_batch_delay,
        reference=np.zeros((1, len(loaded.features))),  # until a request predicts: rows any model takes
    )
    batcher.on_batch = metrics.batch_rows.observe
    routes = web.RouteTableDef()
    model_metadata = {
        "name": loaded.name,
        "versions": [loaded.version],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(loaded.features)]}],
        "outputs": [{"name": "predict", "datatype": "INT64" if loaded.classify else "FP64", "shape": [-1]}],
        "parameters": {"features": loaded.features},
    }

    def check_model(request: web.Request) -> web.Response | None:
        name, version = request.match_info["name"], request.match_info.get("version")
        if name != loaded.name or (version and version != loaded.version):
            return _error(404, f"model {name!r}{f' version {version!r}' if version else ''} is not served here; "
                               f"this server serves {loaded.name!r} version {loaded.version!r}")  # fmt: skip
        return None

    @routes.get("/v2/health/live")
    async def live(_: web.Request) -> web.Response:
        return web.json_response({"live": True})

    @routes.get("/v2/health/ready")
    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    @routes.get("/v2")
    async def server_metadata(_: web.Request) -> web.Response:
        return web.json_response(
            {"name": "mlops-operator", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    @routes.get("/v2/models/{name}")
    @routes.get("/v2/models/{name}/versions/{version}")
    async def metadata(request: web.Request) -> web.Response:
        return check_model(request) or web.json_response(model_metadata)

    @routes.get("/v2/models/{name}/ready")
    @routes.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: web.Request) -> web.Response:
        return check_model(request) or web.json_response({"name": loaded.name, "ready": True})

    @routes.post("/v2/models/{name}/infer")
    @routes.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = check_model(request)
        if response is None:
            response = await _infer(request)
        metrics.request(response.status)
        metrics.latency.observe(time.perf_counter() - started)
        return response

    async def _infer(request: web.Request) -> web.Response:
        try:
            raw = await request.read()
            header = request.headers.get("Inference-Header-Content-Length")
            body = parse_json(raw) if header is None else split_binary_request(raw, parse_header_length(header))
            rows, request_id = decode_request(body, features=len(loaded.features))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the request body is larger than {max_body_bytes} bytes")
        except CodecError as error:
            return _error(400, str(error))
        except Exception as error:  # decoding reads nothing but the request: whatever fails, the request is why
            return _error(400, f"the request cannot be decoded: {type(error).__name__}")
        try:
            predictions = await batcher.predict(rows)
        except RowsRefused as refused:  # these rows alone fail, other requests' rows predict
            return _error(422, f"the model cannot predict these rows: {refused}")
        except Exception as error:  # the model fails on everything: a server fault
            return _error(500, f"prediction failed: {type(error).__name__}: {str(error)[:500]}")
        drift.add(rows)
        metrics.predicted(predictions, classify=loaded.classify)
        if request_id is not None:
            accuracy.remember(request_id, predictions)
        return web.json_response(
            encode_response(model=loaded.name, version=loaded.version, request_id=request_id, predictions=predictions)
        )

    @routes.post("/v2/models/{name}/feedback")
    async def feedback(request: web.Request) -> web.Response:
        """Ground truth for earlier predictions of the version this server serves, in one of two forms:

        - `{"id": "<request id>", "labels": [...]}`: this pod remembers what it predicted for that id;
        - `{"model_version": "...", "predictions": [...], "labels": [...]}`: the client echoes the response
          it got, so any pod of that version behind the Service can score it.

        Feedback for a version this server does not serve is refused (404): a client cannot create metric
        series for made-up versions or move another version's accuracy.
        """
        problem = check_model(request)
        if problem:
            return problem
        try:
            body = parse_json(await request.read())
            predicted, labels = _feedback_request(body)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the request body is larger than {max_body_bytes} bytes")
        except _NotServed as error:
            return _error(404, str(error))
        except CodecError as error:
            return _error(400, str(error))
        try:
            if predicted is None:
                correct, labelled = accuracy.score(body["id"], labels)
            else:
                correct, labelled = accuracy.score_predictions(predicted, labels)
        except KeyError:
            return _error(404, f"no remembered prediction for request id {body['id']!r} (unknown, or already scored)")
        except ValueError as error:
            return _error(400, str(error))
        metrics.feedback(correct=correct, labelled=labelled)
        return web.json_response({"model_version": loaded.version, "labelled": labelled, "correct": correct})

    def _feedback_request(body: Any) -> tuple[list | None, list]:
        """(echoed predictions or None for the id form, labels); CodecError names what is wrong."""
        usage = 'feedback needs "labels" (one per row) and either "id" or "model_version" + "predictions"'
        if not isinstance(body, dict) or not isinstance(body.get("labels"), list) or not body["labels"]:
            raise CodecError(usage)
        labels = body["labels"]
        if not all(isinstance(label, str | int | float) for label in labels):
            raise CodecError('"labels" must be a list of numbers or strings (class labels or target values)')
        request_id = body.get("id")
        if isinstance(request_id, str):
            if len(request_id) > MAX_ID_LENGTH:
                raise CodecError(f'"id" is {len(request_id)} characters long; at most {MAX_ID_LENGTH} are accepted')
            return None, labels
        version, predicted = body.get("model_version"), body.get("predictions")
        if not isinstance(version, str) or not isinstance(predicted, list):
            raise CodecError(usage)
        if version != loaded.version:
            raise _NotServed(
                f"feedback for model_version {version[:MAX_ID_LENGTH]!r} is not accepted here: this server "
                f"serves {loaded.name!r} version {loaded.version!r} and scores only its own predictions"
            )
        if not all(isinstance(value, str | int | float) for value in predicted):
            raise CodecError('"predictions" must be a list of numbers or strings, as the infer response gave them')
        return predicted, labels

    @routes.get("/metrics")
    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status == 413:
                return _error(413, f"the request body is larger than {max_body_bytes} bytes")
            return _error(error.status, error.reason)

    app = web.Application(client_max_size=max_body_bytes, middlewares=[json_errors])
    app.add_routes(routes)

    async def start_batcher(_: web.Application) -> None:
        batcher.start()

    async def stop_batcher(_: web.Application) -> None:
        await batcher.stop()

    app.on_startup.append(start_batcher)
    app.on_cleanup.append(stop_batcher)
    app[METRICS] = metrics
    return app
