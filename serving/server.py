"""The model server: TF Serving's REST API (uvicorn) and gRPC API over one data plane and one set of
models, with the drawing page beside them.

REST runs in uvicorn's event loop on a thread of its own, gRPC on its own thread pool; both call the
same data plane. Stopping is graceful: the listeners close, requests in flight finish (up to
`GRACE_SECONDS`), then the model threads end.
"""

import asyncio
import json
import logging
import os
import socket
import threading
from typing import List, Optional

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from models import features
from serving import grpc_service, rest
from serving.config import ServerOptions
from serving.dataplane import DataPlane, ModelRef
from serving.errors import ServingError
from serving.metrics import Metrics
from serving.model_store import ServerCore, load_servable

log = logging.getLogger(__name__)

STATIC_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "index.html")
GRACE_SECONDS = 10.0


def _read_timeout_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol with a deadline for receiving each request (headers and body): a client
    that opens a connection and trickles bytes (or none) is disconnected instead of held forever.
    Idle keep-alive connections are uvicorn's own `timeout_keep_alive`."""

    class ReadTimeoutProtocol(HttpToolsProtocol):
        _deadline: Optional[asyncio.TimerHandle] = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            if not self.transport.is_closing():
                log.info("Closed a connection from %s: no complete request within %g s", self.client, seconds)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # Idle from now on: uvicorn's keep-alive timer takes over.

    return ReadTimeoutProtocol


def _script_json(value: object) -> bytes:
    """A value as JSON that is safe inside a <script> element (no `</script>` can end it early)."""
    return json.dumps(value).replace("<", "\\u003c").encode()


class ModelServer:
    """Serves the configured models as TF Serving would; binds to loopback unless told otherwise."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.metrics = Metrics()
        self.core = ServerCore(options, load_servable(options))
        self.dataplane = DataPlane(self.core, options, self.metrics.request_log_dropped)
        self._http: Optional[uvicorn.Server] = None
        self._sockets: List[socket.socket] = []
        self._thread: Optional[threading.Thread] = None
        if options.rest_api_port is not None:
            self._sockets = [socket.create_server((options.host, options.rest_api_port))]
        self.grpc: Optional[grpc_service.GrpcServer] = None
        self.grpc_port: Optional[int] = None
        if options.port is not None:
            self.grpc = grpc_service.make_server(self.dataplane, self.metrics, options)
            self.grpc_port = self.grpc.port

    @property
    def rest_port(self) -> Optional[int]:
        return self._sockets[0].getsockname()[1] if self._sockets else None

    @property
    def rest_url(self) -> str:
        return f"http://{self.options.host}:{self.rest_port}"

    def _page(self) -> bytes:
        """The drawing page for the first model, labelled with the class names of its newest version
        (read at each visit: a new version may name its classes differently); it asks for the digit a
        person meant when the server keeps feedback."""
        with open(STATIC_PAGE, "rb") as f:
            page = f.read()
        names = self.core.model_names
        model = names[0] if names else ""
        try:
            classes = self.dataplane.servable(ModelRef(model)).class_names
        except ServingError:
            classes = None
        return (
            page.replace(b"__MODEL_NAME__", _script_json(model))
            .replace(b"__CLASS_NAMES__", _script_json(list(classes or features.CLASS_LABELS)))
            .replace(b"__FEEDBACK__", _script_json(bool(self.options.feedback_dir)))
        )

    def start(self) -> "ModelServer":
        """Loads the models (raises if the configuration is wrong), then serves."""
        try:
            self.core.start()
        except Exception:
            self.stop()
            raise
        if self._sockets:
            config = uvicorn.Config(
                rest.make_app(
                    self.dataplane, self.metrics, self.options, self._page if self.options.static_page else None
                ),
                http=_read_timeout_protocol(self.options.request_read_timeout_seconds),
                timeout_keep_alive=int(self.options.keep_alive_seconds),
                timeout_graceful_shutdown=int(GRACE_SECONDS),
                lifespan="off",
                log_config=None,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                date_header=False,
            )
            self._http = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=self._http.run, kwargs={"sockets": self._sockets}, name="rest", daemon=True
            )
            self._thread.start()
            for _ in range(int(30 / 0.01)):  # uvicorn sets `started` once its loop serves the socket.
                if self._http.started or not self._thread.is_alive():
                    break
                threading.Event().wait(0.01)
            if not self._http.started:
                raise RuntimeError("the REST server did not start; see the log above")
        if self.grpc:
            self.grpc.start()
        log.info(
            "Serving %s: REST %s, gRPC port %s",
            ", ".join(self.core.model_names) or "no models",
            self.rest_url if self._sockets else "off",
            self.grpc_port if self.grpc else "off",
        )
        return self

    def stop(self) -> None:
        """Stops taking requests (the gRPC health service, if on, answers NOT_SERVING from here on), lets
        those in flight finish, then unloads everything."""
        if self._http is not None:
            self._http.should_exit = True
        if self.grpc:
            self.grpc.stop(grace=GRACE_SECONDS).wait()
        if self._thread:
            self._thread.join(timeout=GRACE_SECONDS + 5)
        for sock in self._sockets:
            sock.close()
        self.dataplane.stop()
        self.core.stop()
