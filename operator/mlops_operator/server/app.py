"""The HTTP side of the model server: Open Inference Protocol v2 REST, feedback, /metrics (aiohttp).

aiohttp comes with kopf already; it gives an asyncio server fast enough that one predict call per
micro-batch, not the HTTP layer, is what a request costs.

Whatever a client sends is answered 200 or 4xx with a message: 400 for anything that does not decode
or fit (codec), 403 for feedback whose receipt is not accepted here, 404 for another model or version,
409 for a receipt already scored, 413 above the size limit, 422 for rows the model refuses while it
predicts others (batching). A 5xx means the server's own fault: a model that predicts
nothing. tests/unit/test_server_fuzz.py holds the routes to that.

The routes are thin: what each call does is the data plane's (server/dataplane.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .capture import CaptureWriter
from .codec import CodecError, parse_header_length, parse_json, split_binary_request
from .dataplane import DataPlane, LoadedModel, ServingError
from .monitoring import ServerMetrics
from .receipts import FEEDBACK_MAX_AGE_SECONDS, MALFORMED

__all__ = ["LoadedModel", "build_app"]

MAX_BODY_BYTES = 8 * 1024 * 1024
METRICS = web.AppKey("metrics", ServerMetrics)
DATA_PLANE = web.AppKey("data_plane", DataPlane)
STATUS = {
    ServingError.INVALID: 400,
    ServingError.FORBIDDEN: 403,
    ServingError.NOT_FOUND: 404,
    ServingError.CONFLICT: 409,
    ServingError.REFUSED: 422,
    ServingError.INTERNAL: 500,
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _too_large(max_body_bytes: int) -> web.Response:
    return _error(413, f"the request body is larger than {max_body_bytes} bytes")


def build_app(
    loaded: LoadedModel,
    *,
    profile: dict | None,
    max_batch_size: int = 64,
    max_batch_delay: float = 0.002,
    max_body_bytes: int = MAX_BODY_BYTES,
    capture: CaptureWriter | None = None,
    receipt_key: bytes | None = None,
    feedback_max_age: float = FEEDBACK_MAX_AGE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The V2 REST routes over one DataPlane: each reads the request, makes one call, writes its answer."""
    plane = DataPlane(
        loaded,
        profile=profile,
        max_batch_size=max_batch_size,
        max_batch_delay=max_batch_delay,
        capture=capture,
        receipt_key=receipt_key,
        feedback_max_age=feedback_max_age,
        clock=clock,
    )
    routes = web.RouteTableDef()

    def model_of(request: web.Request) -> None:
        plane.check_model(request.match_info["name"], request.match_info.get("version"))

    async def body_of(request: web.Request) -> Any:
        """The JSON body; with Inference-Header-Content-Length, the binary tensor extension's JSON header
        with its tensors in place."""
        raw = await request.read()
        header = request.headers.get("Inference-Header-Content-Length")
        try:
            return parse_json(raw) if header is None else split_binary_request(raw, parse_header_length(header))
        except CodecError as error:
            raise ServingError(ServingError.INVALID, str(error)) from None

    async def answer(call: Any) -> web.Response:
        """The call's answer as JSON, or its refusal with the protocol's code."""
        try:
            return web.json_response(await call())
        except ServingError as error:
            return _error(STATUS[error.kind], str(error))
        except web.HTTPRequestEntityTooLarge:
            return _too_large(max_body_bytes)

    @routes.get("/v2/health/live")
    async def live(_: web.Request) -> web.Response:
        return web.json_response({"live": True})

    @routes.get("/v2/health/ready")
    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    @routes.get("/v2")
    async def server_metadata(_: web.Request) -> web.Response:
        return web.json_response(plane.server_metadata())

    @routes.get("/v2/models/{name}")
    @routes.get("/v2/models/{name}/versions/{version}")
    async def metadata(request: web.Request) -> web.Response:
        async def call() -> dict:
            model_of(request)
            return plane.model_metadata()

        return await answer(call)

    @routes.get("/v2/models/{name}/ready")
    @routes.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: web.Request) -> web.Response:
        async def call() -> dict:
            model_of(request)
            return {"name": loaded.name, "ready": True}

        return await answer(call)

    @routes.post("/v2/models/{name}/infer")
    @routes.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: web.Request) -> web.Response:
        started = time.perf_counter()

        async def call() -> dict:
            model_of(request)
            return await plane.infer(await body_of(request))

        response = await answer(call)
        plane.metrics.request(response.status)
        plane.metrics.latency.observe(time.perf_counter() - started)
        return response

    @routes.post("/v2/models/{name}/feedback")
    async def feedback(request: web.Request) -> web.Response:
        async def call() -> dict:
            model_of(request)
            try:
                body = await body_of(request)
            except ServingError:
                plane.metrics.refused(MALFORMED)  # counted with the other refusals
                raise
            return plane.feedback(body)

        return await answer(call)

    @routes.get("/metrics")
    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(plane.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status == 413:
                return _too_large(max_body_bytes)
            return _error(error.status, error.reason)

    app = web.Application(client_max_size=max_body_bytes, middlewares=[json_errors])
    app.add_routes(routes)

    async def start(_: web.Application) -> None:
        plane.start()

    async def stop(_: web.Application) -> None:
        await plane.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app[METRICS] = plane.metrics
    app[DATA_PLANE] = plane
    return app
