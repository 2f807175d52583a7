"""The HTTP side of the model server: Open Inference Protocol v2 REST, feedback, /metrics (aiohttp).

aiohttp comes with kopf already; it gives an asyncio server fast enough that one predict call per
micro-batch, not the HTTP layer, is what a request costs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .batching import MicroBatcher
from .codec import CodecError, decode_request, encode_response, split_binary_request
from .monitoring import AccuracyWindow, DriftWindow, ServerMetrics

MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class LoadedModel:
    name: str
    version: str
    model: Any
    features: list[str]
    classify: bool


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
    batcher = MicroBatcher(loaded.model.predict, max_batch_size=max_batch_size, max_delay=max_batch_delay)
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
            if header is not None:
                body = split_binary_request(raw, int(header))
            else:
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    raise CodecError(f"the body is not valid JSON: {error}") from None
            rows, request_id = decode_request(body, features=len(loaded.features))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the request body is larger than {max_body_bytes} bytes")
        except (CodecError, ValueError) as error:
            return _error(400, str(error))
        try:
            predictions = await batcher.predict(rows)
        except Exception as error:  # the model itself failed on valid input
            return _error(500, f"prediction failed: {type(error).__name__}: {error}")
        drift.add(rows)
        metrics.predicted(predictions, classify=loaded.classify)
        if request_id is not None:
            accuracy.remember(request_id, predictions.tolist())
        return web.json_response(
            encode_response(model=loaded.name, version=loaded.version, request_id=request_id, predictions=predictions)
        )

    @routes.post("/v2/models/{name}/feedback")
    async def feedback(request: web.Request) -> web.Response:
        """Ground truth for earlier predictions, in one of two forms:

        - `{"id": "<request id>", "labels": [...]}`: this pod remembers what it predicted for that id;
        - `{"model_version": "...", "predictions": [...], "labels": [...]}`: the client echoes the response
          it got, so any pod behind the Service can score it (under the version that predicted).
        """
        problem = check_model(request)
        if problem:
            return problem
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
            return _error(
                400, 'feedback needs "labels" (one per row) and either "id" or "model_version" + "predictions"'
            )
        version = loaded.version
        try:
            if isinstance(body.get("id"), str):
                correct, labelled = accuracy.score(body["id"], body["labels"])
            elif isinstance(body.get("model_version"), str) and isinstance(body.get("predictions"), list):
                version = body["model_version"]
                correct, labelled = accuracy.score_predictions(body["predictions"], body["labels"])
            else:
                return _error(400, 'feedback needs either "id", or "model_version" and "predictions"')
        except KeyError:
            return _error(404, f"no remembered prediction for request id {body['id']!r} (unknown, or already scored)")
        except ValueError as error:
            return _error(400, str(error))
        metrics.feedback(version=version, correct=correct, labelled=labelled)
        return web.json_response({"model_version": version, "labelled": labelled, "correct": correct})

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
    app["metrics"] = metrics
    return app
