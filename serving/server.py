"""The model server: one ModelStore behind TF Serving's REST and gRPC APIs, and the drawing page."""

import logging
import os
import threading
from typing import Dict, Optional

from serving import grpc_service, rest
from serving.model_store import ModelStore

log = logging.getLogger(__name__)

STATIC_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "index.html")


class ModelServer:
    """Serves `<model_base_path>/<version>/` as TF Serving would; binds to loopback unless told otherwise."""

    def __init__(self, model_base_path: str, model_name: str, host: str = "127.0.0.1", rest_port: int = 8501,
                 grpc_port: Optional[int] = 8500, poll_seconds: float = 2.0, keep_versions: int = 2,
                 labels: Optional[Dict[str, int]] = None):
        self.store = ModelStore(model_base_path, model_name, keep_versions=keep_versions, labels=labels)
        self.poll_seconds = poll_seconds
        with open(STATIC_PAGE, "rb") as f:
            page = f.read().replace(b"__MODEL_NAME__", model_name.encode())
        self.http = rest.make_server(self.store, host, rest_port, static_page=page)
        self.grpc, self.grpc_port = (None, None) if grpc_port is None else grpc_service.make_server(self.store, host, grpc_port)
        self._thread: Optional[threading.Thread] = None

    @property
    def rest_url(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "ModelServer":
        self.store.start(self.poll_seconds)
        self._thread = threading.Thread(target=self.http.serve_forever, name="rest", daemon=True)
        self._thread.start()
        if self.grpc:
            self.grpc.start()
        log.info("Serving %s from %s: REST %s, gRPC port %s, versions %s", self.store.model_name,
                 self.store.base_path, self.rest_url, self.grpc_port, [s.version for s in self.store.status()])
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self.grpc:
            self.grpc.stop(grace=2).wait()
        self.store.stop()
