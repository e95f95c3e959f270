"""TF Serving's gRPC services over the protocol-neutral data plane: PredictionService (Predict,
Classify, Regress, MultiInference, GetModelMetadata) and ModelService (GetModelStatus, HandleReloadConfigRequest).

Stock clients built on `tensorflow-serving-api` work unchanged against it, TFX's InfraValidator client
(which waits on GetModelStatus) included. Errors carry the gRPC code of their `serving.errors` class.
"""

import concurrent.futures
import functools
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import grpc
import tensorflow as tf
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

from serving import inputs
from serving.config import ServerOptions, models_from_proto
from serving.dataplane import DataPlane, ModelRef, classification_result
from serving.errors import Internal, InvalidArgument, ServingError, Unimplemented
from serving.metrics import Metrics
from serving.servable import DEFAULT_SIGNATURE, Servable, serialized_examples

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest gRPC message either way (as the REST body limit)."""

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


def make_server(dataplane: DataPlane, metrics: Metrics, options: ServerOptions) -> Tuple[grpc.Server, int]:
    """The (not yet started) server and the port it bound (0 asks the OS for a free one)."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
        options=channel_arguments(options),
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(dataplane, metrics, options), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(dataplane, metrics, options), server)
    bound = server.add_insecure_port(f"{options.host}:{options.port or 0}")
    if options.grpc_socket_path:
        server.add_insecure_port(f"unix:{options.grpc_socket_path}")
    return server, bound


def channel_arguments(options: ServerOptions) -> List[Tuple[str, Any]]:
    """The gRPC server's arguments: message sizes for a full batch of images, then those of
    `--grpc_channel_arguments`, which replace any of the same name."""
    given = dict(options.grpc_channel_arguments)
    defaults = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return [(name, value) for name, value in defaults if name not in given] + list(given.items())
