"""TF Serving's gRPC services over the protocol-neutral data plane: PredictionService (Predict,
Classify, Regress, MultiInference, GetModelMetadata) and ModelService (GetModelStatus, HandleReloadConfigRequest),
with gRPC's server reflection always on, its standard health checking service on request and
TensorFlow's profiler service (`serving.profiler`) unless turned off, as TF Serving's server.cc builds them.

Stock clients built on `tensorflow-serving-api` work unchanged against it, TFX's InfraValidator client
(which waits on GetModelStatus) included. Errors carry the gRPC code of their `serving.errors` class.
"""

import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import grpc
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import inputs, profiler
from serving.config import ServerOptions, models_from_proto
from serving.dataplane import DataPlane, ModelRef
from serving.errors import Internal, InvalidArgument, ServingError, Unimplemented
from serving.metrics import Metrics
from serving.servable import DEFAULT_SIGNATURE, Servable, classification_result, serialized_examples

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**31 - 1
"""Largest gRPC message either way: INT32_MAX, as TF Serving's server sets it (gRPC's own default of
4 MB would refuse a large batch). A hostile request is still refused before anything is allocated, by
`ServerOptions.max_batch_per_request`, `max_values_per_request` and the signatures' declared shapes."""

HEALTH_SERVICES = ("", "ModelService", "PredictionService")
"""The names the health checking service answers for: the server as a whole (""), and TF Serving's two
services by the short names its server.cc gives them."""

CLASSIFY_METHOD, REGRESS_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME, tf.saved_model.REGRESS_METHOD_NAME
"""The `method_name`s of MultiInference tasks (TF Serving's signature method names)."""

Response = TypeVar("Response")


def _ref(spec: model_pb2.ModelSpec) -> ModelRef:
    kind = spec.WhichOneof("version_choice")
    return ModelRef(
        spec.name,
        spec.version.value if kind == "version" else None,
        spec.version_label if kind == "version_label" else None,
    )


def _answered_by(spec: model_pb2.ModelSpec, servable: Servable, signature_name: str = "") -> None:
    """A response's model spec: the model, the version that answered, and the signature."""
    spec.name, spec.version.value, spec.signature_name = servable.model_name, servable.version, signature_name


def _regression_result(outputs: Dict[str, Any], result: regression_pb2.RegressionResult) -> None:
    """A regression signature's one output, a value per example, as TF Serving's RegressionResult."""
    for value in next(iter(outputs.values())).reshape(-1):
        result.regressions.add(value=float(value))


def _deadline(context: grpc.ServicerContext) -> Optional[float]:
    remaining = context.time_remaining()
    return None if remaining is None else max(remaining, 0.0)


def _rpc(api: str = "") -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Runs a method with `serving.errors` turned into gRPC statuses (never an exception's text from
    elsewhere), and records Predict/Classify/Regress in the metrics as TF Serving does."""

    def wrap(method: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(method)
        def run(self: "_Servicer", request: Any, context: grpc.ServicerContext) -> Response:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                return method(self, request, context)
            except ServingError as e:
                code = e.code
                context.abort(e.code, e.message[:1024])
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("Internal error in %s", method.__name__)
                context.abort(Internal.code, "Internal error; see the server log")
            finally:
                if api:
                    model_name = request.model_spec.name if request.HasField("model_spec") else ""
                    self.metrics.record(model_name, api, "GRPC", code, time.perf_counter() - started)
            raise AssertionError("unreachable: context.abort raises")

        return run

    return wrap


class _Servicer:
    def __init__(self, dataplane: DataPlane, metrics: Metrics, options: ServerOptions):
        self.dataplane = dataplane
        self.metrics = metrics
        self.options = options


def _spec(request: Any) -> model_pb2.ModelSpec:
    if not request.HasField("model_spec"):
        raise InvalidArgument("Missing ModelSpec")
    return request.model_spec


class PredictionService(_Servicer, prediction_service_pb2_grpc.PredictionServiceServicer):
    @_rpc("Predict")
    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        servable = self.dataplane.servable(_ref(_spec(request)))
        signature = servable.signature(request.model_spec.signature_name)
        inputs.check_names(request.inputs, signature.inputs)
        arrays = {
            name: inputs.from_proto(
                name,
                proto,
                signature.inputs[name],
                self.options.max_batch_per_request,
                self.options.max_values_per_request,
            )
            for name, proto in request.inputs.items()
        }
        outputs = self.dataplane.wait(self.dataplane.predict(servable, signature, arrays), _deadline(context))
        wanted = list(request.output_filter) or list(outputs)
        unknown = [name for name in wanted if name not in outputs]
        if unknown:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {unknown[0]} Outputs expected to be "
                f"in the set {sorted(outputs)}."
            )
        response = predict_pb2.PredictResponse()
        _answered_by(response.model_spec, servable, signature.name)
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response

    @_rpc("Classify")
    def Classify(
        self,
        request: classification_pb2.ClassificationRequest,
        context: grpc.ServicerContext,
    ) -> classification_pb2.ClassificationResponse:
        servable = self.dataplane.servable(_ref(_spec(request)))
        examples = serialized_examples(request.input)
        future = self.dataplane.classify(servable, request.model_spec.signature_name, examples)
        response = classification_pb2.ClassificationResponse(
            result=classification_result(self.dataplane.wait(future, _deadline(context)))
        )
        signature = servable.classification_signature(request.model_spec.signature_name)
        _answered_by(response.model_spec, servable, signature.name)
        return response

    @_rpc("Regress")
    def Regress(
        self,
        request: regression_pb2.RegressionRequest,
        context: grpc.ServicerContext,
    ) -> regression_pb2.RegressionResponse:
        servable = self.dataplane.servable(_ref(_spec(request)))
        examples = serialized_examples(request.input)
        outputs = self.dataplane.wait(
            self.dataplane.regress(servable, request.model_spec.signature_name, examples), _deadline(context)
        )
        response = regression_pb2.RegressionResponse()
        _regression_result(outputs, response.result)
        signature = servable.regression_signature(request.model_spec.signature_name)
        _answered_by(response.model_spec, servable, signature.name)
        return response

    @_rpc()
    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        """Classify and Regress tasks on one input, checked as TF Serving checks them: one model
        (the version the first task names), each signature once, each task's method its signature's."""
        servable = self.dataplane.servable(
            _ref(request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec())
        )
        methods = {CLASSIFY_METHOD: self.dataplane.classify, REGRESS_METHOD: self.dataplane.regress}
        names: List[str] = []
        for task in request.tasks:
            if not task.model_spec.name:
                raise InvalidArgument("Found ModelSpec with an empty model name.")
            if task.model_spec.name != request.tasks[0].model_spec.name:
                raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if name in names:
                raise InvalidArgument(f"Duplicate evaluation of signature: {name}")
            names.append(name)
            if name not in servable.signatures:
                raise InvalidArgument(f"Requested signature not found in model graph: {name}")
            if task.method_name not in methods:
                raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")
            # The signature's own checks (its inputs and outputs suit the method), before any runs.
            if task.method_name == CLASSIFY_METHOD:
                servable.classification_signature(name)
            else:
                servable.regression_signature(name)
        examples = serialized_examples(request.input) if request.tasks else []
        futures = [methods[task.method_name](servable, name, examples) for task, name in zip(request.tasks, names)]
        response = inference_pb2.MultiInferenceResponse()
        for task, name, future in zip(request.tasks, names, futures):
            outputs = self.dataplane.wait(future, _deadline(context))
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                result.classification_result.CopyFrom(classification_result(outputs))
            else:
                _regression_result(outputs, result.regression_result)
            _answered_by(result.model_spec, servable, name)
        return response

    @_rpc()
    def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        _spec(request)
        if not request.metadata_field:
            raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported")
        return self.dataplane.model_metadata(_ref(request.model_spec))


class ModelService(_Servicer, model_service_pb2_grpc.ModelServiceServicer):
    @_rpc()
    def GetModelStatus(
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.ServicerContext,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = _spec(request)
        return self.dataplane.model_status(spec.name, spec.version.value if spec.HasField("version") else None)

    @_rpc()
    def HandleReloadConfigRequest(
        self,
        request: model_management_pb2.ReloadConfigRequest,
        context: grpc.ServicerContext,
    ) -> model_management_pb2.ReloadConfigResponse:
        self.dataplane.core.reload_config(models_from_proto(request.config, "ReloadConfigRequest"))
        return model_management_pb2.ReloadConfigResponse()


_SERVICES: Dict[str, Dict[str, Tuple[Any, Any]]] = {
    "PredictionService": {
        "Classify": (classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
        "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
        "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
        "MultiInference": (inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
        "GetModelMetadata": (
            get_model_metadata_pb2.GetModelMetadataRequest,
            get_model_metadata_pb2.GetModelMetadataResponse,
        ),
    },
    "ModelService": {
        "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest, get_model_status_pb2.GetModelStatusResponse),
        "HandleReloadConfigRequest": (
            model_management_pb2.ReloadConfigRequest,
            model_management_pb2.ReloadConfigResponse,
        ),
    },
}
"""TF Serving's two services, method by method in their order in their .proto files, with their
request and response messages."""

_SERVICE_FILES = {"PredictionService": "prediction_service.proto", "ModelService": "model_service.proto"}


def _describe_services() -> List[str]:
    """The full names of TF Serving's services, with their files added to protobuf's default descriptor
    pool if they are not there, so that server reflection can describe them: `tensorflow-serving-api`'s
    prediction_service_pb2 and model_service_pb2 predate the protobuf runtime installed and fail to
    import (its `_grpc` modules, which the server uses, import only the messages)."""
    pool = descriptor_pool.Default()
    names = []
    for service, methods in _SERVICES.items():
        file = descriptor_pb2.FileDescriptorProto(
            name=f"tensorflow_serving/apis/{_SERVICE_FILES[service]}", package="tensorflow.serving", syntax="proto3"
        )
        names.append(f"{file.package}.{service}")
        try:
            pool.FindFileByName(file.name)
            continue
        except KeyError:
            pass
        file.options.cc_enable_arenas = True
        messages = [message for pair in methods.values() for message in pair]
        file.dependency.extend(sorted({message.DESCRIPTOR.file.name for message in messages}))
        described = file.service.add(name=service)
        for method, (request, response) in methods.items():
            described.method.add(
                name=method,
                input_type=f".{request.DESCRIPTOR.full_name}",
                output_type=f".{response.DESCRIPTOR.full_name}",
            )
        pool.Add(file)
    return names


class GrpcServer:
    """The gRPC server, the port it bound, and its health checking service (None unless
    `--enable_grpc_healthcheck_service`)."""

    def __init__(self, server: grpc.Server, port: int, health_servicer: Optional[health.HealthServicer]):
        self.server, self.port, self.health = server, port, health_servicer

    def start(self) -> None:
        """Listens, then reports SERVING (TF Serving's models are loaded before its listeners open)."""
        self.server.start()
        if self.health is not None:
            for name in HEALTH_SERVICES:
                self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: Optional[float]) -> threading.Event:
        """Reports NOT_SERVING for every name (for good: nothing sets it back), then stops taking calls
        and lets those in flight finish within `grace` seconds; the event is set once stopped."""
        if self.health is not None:
            self.health.enter_graceful_shutdown()
        return self.server.stop(grace)


def make_server(dataplane: DataPlane, metrics: Metrics, options: ServerOptions) -> GrpcServer:
    """The (not yet started) server, on the port it bound (0 asks the OS for a free one)."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
        options=channel_arguments(options),
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(dataplane, metrics, options), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(dataplane, metrics, options), server)
    services = _describe_services()
    health_servicer = None
    if options.enable_grpc_healthcheck_service:
        health_servicer = health.HealthServicer()
        for name in HEALTH_SERVICES:  # SERVING once the listeners are up (`GrpcServer.start`).
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        services.append(health.SERVICE_NAME)
    if options.enable_profiler:
        profiler.add_to_server(server)
        services.append(profiler.SERVICE_NAME)
    # Server reflection (`grpcurl list`, `grpcurl describe`): TF Serving links gRPC's reflection
    # library into its server, which turns it on for every server, with no flag.
    reflection.enable_server_reflection([*services, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{options.host}:{options.port or 0}")
    if options.grpc_socket_path:
        server.add_insecure_port(f"unix:{options.grpc_socket_path}")
    return GrpcServer(server, bound, health_servicer)


def channel_arguments(options: ServerOptions) -> List[Tuple[str, Any]]:
    """The gRPC server's arguments: TF Serving's message sizes (`MAX_MESSAGE_BYTES`), then those of
    `--grpc_channel_arguments`, which replace any of the same name."""
    given = dict(options.grpc_channel_arguments)
    defaults = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return [(name, value) for name, value in defaults if name not in given] + list(given.items())
