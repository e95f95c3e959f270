"""TF Serving's REST API (v1) over a ModelStore, on Python's threading HTTP server.

    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]            version status
    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict    {"instances": ...} or {"inputs": ...}

Errors are `{"error": "..."}` with 400/404/411/413 for client mistakes; an unexpected failure is a 500
with a generic message (the details go to the server log, never to the client).
"""

import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving import predict
from serving.model_store import ModelStore, NotFoundError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body: 1,024 images of 784 pixels as JSON need about 3.5 MB."""

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[A-Za-z0-9_.-]+)"
    r"(?:/versions/(?P<version>\d{1,19})|/labels/(?P<label>[A-Za-z0-9_.-]+))?"
    r"(?P<action>/metadata|:predict)?$"
)


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def status_json(store: ModelStore, version: Optional[int]) -> Dict[str, Any]:
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in store.status(version):
        entry = response.model_version_status.add(version=status.version)
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.SetInParent()  # TF Serving always reports a status, "OK" included.
        if status.error:
            entry.status.error_code = 13  # INTERNAL, as TF Serving reports a failed load.
            entry.status.error_message = status.error
    return json_format.MessageToDict(response, preserving_proto_field_name=True, including_default_value_fields=True)


def signature_def_map(store: ModelStore, version: Optional[int], label: Optional[str]):
    model = store.get(version, label)
    return model, get_model_metadata_pb2.SignatureDefMap(signature_def=model.signature_defs)


def metadata_json(store: ModelStore, version: Optional[int], label: Optional[str]) -> Dict[str, Any]:
    model, signatures = signature_def_map(store, version, label)
    return {
        "model_spec": {"name": store.model_name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": json_format.MessageToDict(signatures, preserving_proto_field_name=True)},
    }


class Handler(BaseHTTPRequestHandler):
    """One request; the server sets `store` (and `static_page`, the drawing page's HTML)."""

    store: ModelStore
    static_page: Optional[bytes] = None
    server_version = "digits-serving"
    protocol_version = "HTTP/1.1"
    _body_read = False

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.command == "POST" and not self._body_read:
            # The unread body would be parsed as the next request on this connection: close it.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode())

    def _route(self) -> Tuple[Optional[int], Optional[str], str]:
        match = _ROUTE.match(self.path.split("?", 1)[0])
        if not match:
            raise HttpError(HTTPStatus.NOT_FOUND, f"Malformed request: {self.command} {self.path[:200]}")
        if match["name"] != self.store.model_name:
            raise HttpError(HTTPStatus.NOT_FOUND, f"Servable not found for request: Latest({match['name']})")
        version = int(match["version"]) if match["version"] else None
        return version, match["label"], match["action"] or ""

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if not length.isdigit():
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length must be a number")
        if int(length) > MAX_BODY_BYTES:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Request body over {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(int(length))
        self._body_read = True
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"JSON Parse error: {e}") from None

    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            if method == "GET" and self.path in ("/", "/index.html") and self.static_page:
                self._send(HTTPStatus.OK, self.static_page, "text/html; charset=utf-8")
                return
            version, label, action = self._route()
            if method == "GET" and action == "":
                if label is not None:
                    version = self.store.get(label=label).version
                self._json(HTTPStatus.OK, status_json(self.store, version))
            elif method == "GET" and action == "/metadata":
                self._json(HTTPStatus.OK, metadata_json(self.store, version, label))
            elif method == "POST" and action == ":predict":
                body = self._body()
                self._json(HTTPStatus.OK, predict.predict_json(self.store.get(version, label), body))
            else:
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not supported on {self.path[:200]}")
        except HttpError as e:
            self._json(e.status, {"error": str(e)})
        except NotFoundError as e:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(e)})
        except predict.BadRequestError as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except Exception:  # pylint: disable=broad-except
            log.exception("Internal error on %s %s", method, self.path[:200])
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "Internal error; see the server log"})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


def make_server(store: ModelStore, host: str, port: int, static_page: Optional[bytes] = None) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"store": store, "static_page": static_page})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
