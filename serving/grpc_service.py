"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) over a ModelStore.

Stock clients built on `tensorflow-serving-api` work unchanged against it.
"""

from concurrent import futures
from typing import Optional, Tuple

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from serving import predict
from serving.model_store import ModelStore, NotFoundError
from serving.rest import signature_def_map

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _version_and_label(spec) -> Tuple[Optional[int], Optional[str]]:
    if spec.HasField("version"):
        return spec.version.value, None
    return None, spec.version_label or None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, store: ModelStore):
        self.store = store

    def _check_name(self, spec, context) -> None:
        if spec.name != self.store.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:  # noqa: N802
        try:
            self._check_name(request.model_spec, context)
            model = self.store.get(*_version_and_label(request.model_spec))
            signature_name = request.model_spec.signature_name or None
            specs = predict.input_specs(model, signature_name)
            if set(request.inputs) != set(specs):
                raise predict.BadRequestError(f"inputs must be exactly {sorted(specs)}, got {sorted(request.inputs)}")
            tensors = {
                name: predict.to_tensor(name, tf.make_ndarray(proto), specs[name]) for name, proto in request.inputs.items()
            }
            outputs = predict.run(model, signature_name, tensors)
        except NotFoundError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except predict.BadRequestError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.store.model_name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature_name or ""
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be exactly ['signature_def']")
        try:
            self._check_name(request.model_spec, context)
            model, signatures = signature_def_map(self.store, *_version_and_label(request.model_spec))
        except NotFoundError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.store.model_name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signatures)
        return response


def make_server(store: ModelStore, host: str, port: int, workers: int = 8) -> Tuple[grpc.Server, int]:
    """Returns the (not yet started) server and the port it bound, which may be chosen by the OS (0)."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(store), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound
