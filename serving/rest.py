"""TF Serving's REST API (v1) on FastAPI, over the protocol-neutral data plane.

    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]            version status
    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict    {"instances": ...} or {"inputs": ...}
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:classify   {"examples": [...], "context": {...}}
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:regress
    GET  /monitoring/prometheus/metrics                          Prometheus, TF Serving's metric names
    GET  /docs, /openapi.json                                    this API, described (offline Swagger UI)
    GET  /                                                       the drawing page
    POST /feedback                 {"picture": {"b64": ...}, "label": 7}: a labelled drawing (--feedback_dir)

Every error is `{"error": "..."}` with TF Serving's status mapping (`serving.errors`): any other /v1/
path or method is `400 Malformed request: <METHOD> <path>`, as TF Serving answers; other paths are 404.
Bodies are read with a size limit and a time limit, and large ones are parsed off the event loop.
"""

import asyncio
import logging
import os
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import grpc
import swagger_ui_bundle
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import rest_codec
from serving.config import ServerOptions
from serving.dataplane import DataPlane, ModelRef
from serving.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServingError,
)
from serving.metrics import CONTENT_TYPE, Metrics
from serving.servable import Servable, Signature, classification_result

log = logging.getLogger(__name__)

JSON = "application/json"
OFF_LOOP_BYTES = 256 * 1024
"""Bodies larger than this are parsed in a worker thread, so one big request does not stall the rest."""
MAX_INT64 = 2**63 - 1


class _ModelName(StringConvertor):
    """TF Serving's model names and labels: anything but '/' and ':'."""

    regex = "[^/:]+"


class _Digits(StringConvertor):
    """A version number as TF Serving's path regex takes it, kept as text until checked."""

    regex = "[0-9]+"


register_url_convertor("name", _ModelName())
register_url_convertor("int_text", _Digits())


Operation = Callable[[Request, ModelRef], Awaitable[Response]]
"""What a route does, given the request and the model (version) it names."""


def error_response(error: ServingError) -> Response:
    return Response(rest_codec.dumps({"error": error.message}), status_code=error.http_status, media_type=JSON)


def _version(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    if int(text) > MAX_INT64:
        raise InvalidArgument(f"Failed to convert version: {text} to numeric.")
    return int(text)


async def _read_body(request: Request, options: ServerOptions) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > options.max_body_bytes:
        raise PayloadTooLarge(f"Request body of {declared} bytes is over the limit of {options.max_body_bytes}")

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > options.max_body_bytes:
                raise PayloadTooLarge(f"Request body is over the limit of {options.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        async with asyncio.timeout(options.request_read_timeout_seconds):
            return await read()
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {options.request_read_timeout_seconds:g} s"
        ) from None


async def _off_loop_if_large(size: int, work: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(work) if size > OFF_LOOP_BYTES else work()


OPENAPI_VERSION = "3.0.3"
"""The OpenAPI version `/openapi.json` declares: the newest the Swagger UI served at `/docs` renders
(swagger-ui-bundle ships Swagger UI 4.15, which reads `openapi: 3.0.x` and `swagger: 2.0` only and
says "The provided definition does not specify a valid version field" for FastAPI's default 3.1.0)."""

REQUEST_SCHEMAS: Dict[str, Dict[str, Any]] = {
    "predict": {
        "type": "object",
        "description": "TF Serving's Predict request: `instances` (row format) or `inputs` (columnar).",
        "properties": {
            "signature_name": {"type": "string", "example": "predict_images"},
            "instances": {
                "type": "array",
                "description": "One value, or one object of named inputs, per example; "
                'binary strings as {"b64": "..."}.',
            },
            "inputs": {"description": "The whole batch per input name (or the batch itself for one input)."},
        },
    },
    "classify": {
        "type": "object",
        "description": "TF Serving's Classify/Regress request: tf.Examples as JSON objects of features.",
        "properties": {
            "signature_name": {"type": "string", "example": "classification"},
            "context": {"type": "object", "description": "Features merged into every example."},
            "examples": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["examples"],
    },
}
REQUEST_SCHEMAS["regress"] = REQUEST_SCHEMAS["classify"]
ERROR_RESPONSES: Dict[int | str, Dict[str, Any]] = {
    code: {
        "description": what,
        "content": {JSON: {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}},
    }
    for code, what in (
        (400, "Invalid request (TF Serving's INVALID_ARGUMENT)"),
        (404, "Unknown model or version"),
        (413, "Body over the size limit"),
        (503, "Overloaded: the batch queue is full"),
    )
}


def make_app(
    dataplane: DataPlane, metrics: Metrics, options: ServerOptions, page: Optional[Callable[[], bytes]] = None
) -> FastAPI:
    app = FastAPI(
        title="digits model server",
        version="1",
        description="TensorFlow Serving's REST API (v1), as the real TF Serving answers it.",
        docs_url=None,
        redoc_url=None,
        # TF Serving's metrics are this server's own (`serving.metrics`); FastAPI's OpenTelemetry
        # hooks, with no provider configured, would only cost every request time.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    # The bundled Swagger UI reads OpenAPI 2.0 and 3.0 only; the description uses nothing of 3.1.
    app.openapi_version = OPENAPI_VERSION
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    def answer(body: bytes) -> Response:
        return Response(body, media_type=JSON)

    async def status(request: Request, ref: ModelRef) -> Response:
        # As TF Serving: a label in the path is not looked at, every version is listed.
        return answer(rest_codec.dumps(rest_codec.message_json(dataplane.model_status(ref.name, ref.version))))

    async def metadata(request: Request, ref: ModelRef) -> Response:
        return answer(rest_codec.metadata_response(dataplane.model_metadata(ref)))

    async def predict(request: Request, ref: ModelRef) -> Response:
        body = await _read_body(request, options)

        def decode() -> Tuple[Servable, Signature, Dict[str, Any], bool]:
            document = rest_codec.parse_body(body)
            servable = dataplane.servable(ref)
            signature = servable.signature(document.get("signature_name"))
            arrays, rows = rest_codec.predict_inputs(document, signature, options.max_batch_per_request)
            return servable, signature, arrays, rows

        servable, signature, arrays, rows = await _off_loop_if_large(len(body), decode)
        outputs = await _wait(dataplane.predict(servable, signature, arrays))
        size = next(iter(arrays.values())).shape[0]
        return answer(await _off_loop_if_large(len(body), lambda: rest_codec.predict_response(outputs, rows, size)))

    async def classify_or_regress(method: str, request: Request, ref: ModelRef) -> Response:
        body = await _read_body(request, options)

        def decode() -> Tuple[Dict[str, Any], List[bytes]]:
            document = rest_codec.parse_body(body)
            return document, rest_codec.examples(document, method, options.max_batch_per_request)

        document, examples = await _off_loop_if_large(len(body), decode)
        servable = dataplane.servable(ref)
        if method == "classify":
            outputs = await _wait(dataplane.classify(servable, document.get("signature_name"), examples))
            return answer(rest_codec.classify_response(classification_result(outputs)))
        outputs = await _wait(dataplane.regress(servable, document.get("signature_name"), examples))
        return answer(rest_codec.regress_response(outputs))

    async def classify(request: Request, ref: ModelRef) -> Response:
        return await classify_or_regress("classify", request, ref)

    async def regress(request: Request, ref: ModelRef) -> Response:
        return await classify_or_regress("regress", request, ref)

    async def _wait(future: Any) -> Dict[str, Any]:
        try:
            async with asyncio.timeout(options.rest_api_timeout_in_ms / 1000):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()
            raise DeadlineExceeded("Deadline Exceeded: the model did not answer in time") from None

    def endpoints(api: str, operation: Operation) -> Dict[str, Callable[..., Awaitable[Response]]]:
        """The operation under each way a request names its model version, with exactly the path's
        parameters (what FastAPI documents), and counted in the metrics as TF Serving counts it."""

        async def run(request: Request, ref: ModelRef) -> Response:
            started, code = time.perf_counter(), grpc.StatusCode.INTERNAL
            try:
                response = await operation(request, ref)
                code = grpc.StatusCode.OK
                return response
            except ServingError as e:
                code = e.code
                raise
            finally:
                metrics.record(ref.name, api, "REST", code, time.perf_counter() - started)

        async def latest(request: Request, model_name: str) -> Response:
            return await run(request, ModelRef(model_name))

        async def by_version(request: Request, model_name: str, version: str) -> Response:
            return await run(request, ModelRef(model_name, _version(version)))

        async def by_label(request: Request, model_name: str, label: str) -> Response:
            return await run(request, ModelRef(model_name, label=label))

        return {"": latest, "version": by_version, "label": by_label}

    models = "/v1/models/{model_name:name}"
    targets = {"": models, "version": models + "/versions/{version:int_text}", "label": models + "/labels/{label:name}"}
    routes: List[Tuple[str, str, str, str, Operation]] = [
        ("", "GET", "", "Version status", status),
        ("/metadata", "GET", "", "Signature defs", metadata),
        (":predict", "POST", "predict", "Predict", predict),
        (":classify", "POST", "classify", "Classify", classify),
        (":regress", "POST", "regress", "Regress", regress),
    ]
    for suffix, method, api, summary, operation in routes:
        schema = REQUEST_SCHEMAS.get(api)
        extra = {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}} if schema else None
        for kind, endpoint in endpoints(api, operation).items():
            app.add_api_route(
                targets[kind] + suffix,
                endpoint,
                methods=[method],
                tags=[api or suffix.strip("/") or "status"],
                responses=ERROR_RESPONSES,
                summary=summary + (f" (by {kind})" if kind else ""),
                openapi_extra=extra,
            )

    if options.prometheus_path:

        @app.get(options.prometheus_path, tags=["monitoring"], summary="Prometheus metrics", response_class=Response)
        async def prometheus() -> Response:
            return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=app.title,
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.post("/feedback", tags=["feedback"], summary="Keep a labelled drawing for training", responses=ERROR_RESPONSES)
    async def store_feedback(request: Request) -> Response:
        body = await _read_body(request, options)
        picture, label = rest_codec.feedback_request(rest_codec.parse_body(body))
        stored = await asyncio.to_thread(dataplane.store_feedback, picture, label)
        return answer(rest_codec.dumps({"stored": os.path.basename(stored), "label": label}))

    if page is not None:

        @app.get("/", include_in_schema=False)
        async def drawing_page() -> HTMLResponse:
            return HTMLResponse(page())

    @app.api_route(
        "/v1/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"], include_in_schema=False
    )
    async def malformed(request: Request, rest: str) -> Response:
        if request.method == "OPTIONS" and request.headers.get("origin", "").startswith(("http://", "https://")):
            return Response(status_code=200)  # A CORS preflight, answered as TF Serving does.
        raise InvalidArgument(f"Malformed request: {request.method} {request.url.path}")

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> Response:
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return error_response(NotFound(f"Not found: {request.method} {request.url.path}"))
        return Response(rest_codec.dumps({"error": str(error.detail)}), status_code=error.status_code, media_type=JSON)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        return error_response(InvalidArgument(f"Malformed request: {request.method} {request.url.path}"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.error("Internal error on %s %s", request.method, request.url.path[:200], exc_info=error)
        return error_response(Internal("Internal error; see the server log"))

    return app
