"""TensorFlow's profiler service (`tensorflow.ProfilerService`) on the gRPC port, as TF Serving's
server.cc registers it unless `--enable_profiler=false`: TensorBoard's "Capture profile" and
`tf.profiler.experimental.client.trace("grpc://host:port", logdir, ms)` record what this process's
TensorFlow ran for a while, to read in TensorBoard's profile plugin.

The trace goes back in the answer, as the `ProfileToolData` named `xplane.pb`, and TensorFlow's client
writes it under its own logdir (`plugins/profile/<session>/<host>_<port>.xplane.pb`), the file TensorBoard
reads. TF Serving's service writes it on the server's own disk instead, in the folder the request names;
letting a caller choose where the server writes is not offered here, and TensorFlow's client takes
either answer. A capture lasts at most `MAX_DURATION_MS`, one at a time (the profiler holds its events
in memory). `Monitor`, which only TPU hosts answer, is not served.

TensorFlow's Python packages carry no `profiler_service_pb2`, so the messages are built here from
`tsl/profiler/protobuf/profiler_service.proto` (field numbers as there) over TensorFlow's own
`ProfileOptions`.
"""

import glob
import logging
import os
import tempfile
import threading
import time
from typing import Any, Dict

import grpc
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorflow.tsl.profiler.protobuf import profiler_options_pb2, xplane_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = "tensorflow.ProfilerService"
MAX_DURATION_MS = 60_000
"""Longest capture: the profiler keeps every event in memory until the capture ends."""
TRACE_TOOL = "xplane.pb"
"""The tool name under which the trace is answered, as TensorFlow's client asks for it."""

_PROTO = """
name: "tsl/profiler/protobuf/profiler_service.proto"
package: "tensorflow"
dependency: "tsl/profiler/protobuf/profiler_options.proto"
syntax: "proto3"
message_type {
  name: "ToolRequestOptions"
  field { name: "output_formats" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "save_to_repo" number: 3 label: LABEL_OPTIONAL type: TYPE_BOOL }
}
message_type {
  name: "ProfileRequest"
  field { name: "duration_ms" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "max_events" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "tools" number: 3 label: LABEL_REPEATED type: TYPE_STRING }
  field {
    name: "tool_options" number: 8 label: LABEL_REPEATED type: TYPE_MESSAGE
    type_name: ".tensorflow.ProfileRequest.ToolOptionsEntry"
  }
  field { name: "opts" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.ProfileOptions" }
  field { name: "repository_root" number: 5 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "session_id" number: 6 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "host_name" number: 7 label: LABEL_OPTIONAL type: TYPE_STRING }
  nested_type {
    name: "ToolOptionsEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field {
      name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.ToolRequestOptions"
    }
    options { map_entry: true }
  }
}
message_type {
  name: "ProfileToolData"
  field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "data" number: 2 label: LABEL_OPTIONAL type: TYPE_BYTES }
}
message_type {
  name: "ProfileResponse"
  field {
    name: "tool_data" number: 6 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tensorflow.ProfileToolData"
  }
  field { name: "empty_trace" number: 7 label: LABEL_OPTIONAL type: TYPE_BOOL }
  reserved_range { start: 1 end: 6 }
}
message_type {
  name: "TerminateRequest"
  field { name: "session_id" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
}
message_type { name: "TerminateResponse" }
service {
  name: "ProfilerService"
  method { name: "Profile" input_type: ".tensorflow.ProfileRequest" output_type: ".tensorflow.ProfileResponse" }
  method {
    name: "Terminate" input_type: ".tensorflow.TerminateRequest" output_type: ".tensorflow.TerminateResponse"
  }
}
"""


def _messages() -> Dict[str, Any]:
    """The service's message classes by short name, its file added to protobuf's default pool (where
    server reflection finds it) unless something put it there first."""
    pool = descriptor_pool.Default()
    file = text_format.Parse(_PROTO, descriptor_pb2.FileDescriptorProto())
    assert file.dependency == [profiler_options_pb2.DESCRIPTOR.name]
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    names = ("ProfileRequest", "ProfileResponse", "ProfileToolData", "TerminateRequest", "TerminateResponse")
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{n}")) for n in names}


MESSAGES = _messages()


def has_events(xspace: bytes) -> bool:
    """Whether a serialized XSpace recorded anything (TensorFlow's client reports an empty one as "No
    trace event was collected" and tries again)."""
    space = xplane_pb2.XSpace.FromString(xspace)
    return any(line.events for plane in space.planes for line in plane.lines)


class ProfilerService:
    """`Profile` captures this process's TensorFlow activity for the requested time, or until
    `Terminate` names its session or the caller goes away."""

    def __init__(self) -> None:
        self._busy = threading.Lock()
        self._terminated: Dict[str, threading.Event] = {}

    def profile(self, request: Any, context: grpc.ServicerContext) -> Any:
        duration_ms = request.opts.duration_ms or request.duration_ms
        if not 0 < duration_ms <= MAX_DURATION_MS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"opts.duration_ms is {duration_ms}: a capture lasts from 1 to {MAX_DURATION_MS} ms",
            )
        if not self._busy.acquire(blocking=False):
            context.abort(grpc.StatusCode.UNAVAILABLE, "another profile is being captured; try again after it")
        terminated = self._terminated.setdefault(request.session_id, threading.Event())
        try:
            log.info("Profiling for %d ms (session %r)", duration_ms, request.session_id)
            trace = self._capture(request.opts, duration_ms / 1000, terminated, context)
        finally:
            self._terminated.pop(request.session_id, None)
            self._busy.release()
        return MESSAGES["ProfileResponse"](
            tool_data=[MESSAGES["ProfileToolData"](name=TRACE_TOOL, data=trace)], empty_trace=not has_events(trace)
        )

    def terminate(self, request: Any, context: grpc.ServicerContext) -> Any:
        event = self._terminated.get(request.session_id)
        if event is not None:
            event.set()
        return MESSAGES["TerminateResponse"]()

    @staticmethod
    def _capture(
        opts: profiler_options_pb2.ProfileOptions, seconds: float, stop: threading.Event, context: grpc.ServicerContext
    ) -> bytes:
        """The serialized XSpace of `seconds` of profiling, less if `stop` is set or the caller goes
        away. TensorFlow's defaults apply to a request without options (`opts.version` 0)."""
        options = tf.profiler.experimental.ProfilerOptions()
        if opts.version:
            options = tf.profiler.experimental.ProfilerOptions(
                host_tracer_level=opts.host_tracer_level,
                python_tracer_level=opts.python_tracer_level,
                device_tracer_level=opts.device_tracer_level,
            )
        with tempfile.TemporaryDirectory(prefix="digits-profile-") as logdir:
            try:
                tf.profiler.experimental.start(logdir, options=options)
            except (tf.errors.AlreadyExistsError, tf.errors.UnavailableError) as error:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"the profiler is in use in this process: {error}")
            ends = time.monotonic() + seconds
            try:
                while context.is_active() and not stop.wait(min(0.05, max(0.0, ends - time.monotonic()))):
                    if time.monotonic() >= ends:
                        break
            finally:
                tf.profiler.experimental.stop()
            (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
            with open(path, "rb") as f:
                return f.read()


def add_to_server(server: grpc.Server) -> None:
    service = ProfilerService()
    handlers = {
        "Profile": grpc.unary_unary_rpc_method_handler(
            service.profile,
            request_deserializer=MESSAGES["ProfileRequest"].FromString,
            response_serializer=MESSAGES["ProfileResponse"].SerializeToString,
        ),
        "Terminate": grpc.unary_unary_rpc_method_handler(
            service.terminate,
            request_deserializer=MESSAGES["TerminateRequest"].FromString,
            response_serializer=MESSAGES["TerminateResponse"].SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
