"""A data plane with canned answers, for testing the REST and gRPC front ends without a model.

`StubDataPlane` offers what `serving.rest` and `serving.grpc_service` call on `serving.dataplane.DataPlane`
(servable, model_status, model_metadata, predict, classify, regress, store_feedback, wait,
core.reload_config) and
records each call. Model "digits" has versions 2 (AVAILABLE, the latest) and 1 (AVAILABLE, label
"stable"); anything else is NotFound, as the model store answers. The signatures are real `Signature`
objects (so the front ends check inputs as they do for a model) whose functions are never called:
predictions are computed here with numpy. Set `error` to make the next model call's future fail with
it (a `serving.errors` error, or any other exception for an internal failure), or `hang` to make its
future never finish.
"""

import concurrent.futures
import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving import inputs
from serving.config import ModelConfig
from serving.dataplane import Arrays, DataPlane, ModelRef, metadata_response
from serving.errors import InvalidArgument, NotFound
from serving.servable import Servable, Signature

MODEL = "digits"
VERSIONS = (2, 1)
LABELS = {"stable": 1}
PREDICT_METHOD = "tensorflow/serving/predict"
IMAGES = "images"
"""The default signature's one input: rows of two numbers; it answers `doubled` (x * 2) and `total`."""


def _never_called(**_: Any) -> Dict[str, Any]:
    raise AssertionError("the stub computes answers itself")


def _signature_def(method: str, inputs_: Dict[str, tf.TensorSpec], outputs: Dict[str, tf.DType]):
    definition = meta_graph_pb2.SignatureDef(method_name=method)
    for name, spec in inputs_.items():
        definition.inputs[name].name = f"{name}:0"
        definition.inputs[name].dtype = spec.dtype.as_datatype_enum
    for name, dtype in outputs.items():
        definition.outputs[name].name = f"{name}:0"
        definition.outputs[name].dtype = dtype.as_datatype_enum
    return definition


SIGNATURES: Dict[str, Tuple[str, Dict[str, tf.TensorSpec], Dict[str, tf.DType]]] = {
    "serving_default": (
        PREDICT_METHOD,
        {IMAGES: tf.TensorSpec([None, 2], tf.float32)},
        {"doubled": tf.float32, "total": tf.float32},
    ),
    "classification": (
        "tensorflow/serving/classify",
        {"inputs": tf.TensorSpec([None], tf.string)},
        {"classes": tf.string, "scores": tf.float32},
    ),
    "regression": ("tensorflow/serving/regress", {"inputs": tf.TensorSpec([None], tf.string)}, {"outputs": tf.float32}),
}


def servable(version: int, signatures: Optional[Dict[str, Any]] = None) -> Servable:
    signatures = SIGNATURES if signatures is None else signatures
    return Servable(
        MODEL,
        version,
        {name: Signature(name, method, specs, _never_called) for name, (method, specs, _) in signatures.items()},
        {name: _signature_def(method, specs, outputs) for name, (method, specs, outputs) in signatures.items()},
    )


@dataclasses.dataclass
class _Core:
    reloaded: List[Tuple[ModelConfig, ...]] = dataclasses.field(default_factory=list)

    def reload_config(self, models: Tuple[ModelConfig, ...]) -> None:
        self.reloaded.append(models)


class StubDataPlane:
    def __init__(self, signatures: Optional[Dict[str, Any]] = None) -> None:
        """`signatures` (as `SIGNATURES`, which it replaces) changes what each version declares."""
        self.core = _Core()
        self.calls: List[Tuple[str, Any]] = []
        self.error: Optional[BaseException] = None
        self.hang = False
        self._servables = {version: servable(version, signatures) for version in VERSIONS}

    def servable(self, ref: ModelRef) -> Servable:
        self.calls.append(("servable", ref))
        if ref.name != MODEL:
            raise NotFound(f"Servable not found for request: Latest({ref.name})")
        if ref.label is not None:
            if ref.label not in LABELS:
                raise InvalidArgument(f"Unrecognized servable version label: {ref.label}")
            return self._servables[LABELS[ref.label]]
        version = VERSIONS[0] if ref.version is None else ref.version
        if version not in self._servables:
            raise NotFound(f"Servable not found for request: Specific({ref.name}, {version})")
        return self._servables[version]

    def model_status(self, name: str, version: Optional[int] = None) -> get_model_status_pb2.GetModelStatusResponse:
        self.calls.append(("model_status", (name, version)))
        if name != MODEL:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if version is not None and version not in VERSIONS:
            raise NotFound(f"Could not find version {version} of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for each in VERSIONS:
            if version is None or each == version:
                entry = response.model_version_status.add(version=each)
                entry.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
                entry.status.SetInParent()  # OK, as the real data plane writes it.
        return response

    def model_metadata(self, ref: ModelRef) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return metadata_response(self.servable(ref))

    def _answer(self, outputs: Arrays) -> "concurrent.futures.Future[Arrays]":
        future: concurrent.futures.Future[Arrays] = concurrent.futures.Future()
        if self.hang:
            return future
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(outputs)
        return future

    def predict(self, answering: Servable, signature: Signature, arrays: Arrays) -> "concurrent.futures.Future[Arrays]":
        self.calls.append(("predict", (answering.version, signature.name, arrays)))
        inputs.check_names(arrays, signature.inputs)
        images = arrays[IMAGES]
        return self._answer({"doubled": images * 2, "total": images.sum(axis=1)})

    def classify(
        self, answering: Servable, signature_name: Optional[str], examples: List[bytes]
    ) -> "concurrent.futures.Future[Arrays]":
        signature = answering.classification_signature(signature_name)
        self.calls.append(("classify", (answering.version, signature.name, examples)))
        count = len(examples)
        return self._answer(
            {
                "classes": np.array([[b"0", b"1"]] * count, dtype=object),
                "scores": np.array([[0.25, 0.75]] * count, np.float32),
            }
        )

    def regress(
        self, answering: Servable, signature_name: Optional[str], examples: List[bytes]
    ) -> "concurrent.futures.Future[Arrays]":
        signature = answering.regression_signature(signature_name)
        self.calls.append(("regress", (answering.version, signature.name, examples)))
        return self._answer({"outputs": np.arange(len(examples), dtype=np.float32).reshape(-1, 1) + 0.5})

    def store_feedback(self, picture: bytes, label: int) -> str:
        self.calls.append(("store_feedback", (picture, label)))
        if self.error is not None:
            raise self.error
        return f"/feedback/span-1/{label}/stored.png"

    wait = DataPlane.wait
    """The real data plane's wait: a gRPC request's deadline becomes DeadlineExceeded."""
