"""Clients of the TF Serving APIs (this project's server or the real tensorflow_model_server).

A refused REST request raises the `serving.errors` error its HTTP status stands for, with the server's
own message; gRPC calls raise grpc.RpcError with the server's code, as stock clients do."""

import base64
import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from models import features
from serving import errors


@dataclasses.dataclass(frozen=True)
class Prediction:
    digit: int
    """The class read (the digit, for digits), or features.NO_DIGIT where a picture holds none."""
    confidence: float
    probabilities: List[float]
    label: str = ""
    """The class's name as the model gives it ("7", or a dataset's own name such as "Sneaker")."""

    @classmethod
    def from_outputs(
        cls, probabilities: Sequence[float], digit: Optional[int] = None, label: Any = None
    ) -> "Prediction":
        """From a signature's outputs: its `digit` where it has one, else the likeliest class; its
        `class_name` where it has one (models exported before class names answer with the digit)."""
        probabilities = [float(p) for p in probabilities]
        digit = int(np.argmax(probabilities)) if digit is None else int(digit)
        confidence = 0.0 if digit == features.NO_DIGIT else probabilities[digit]
        if isinstance(label, bytes):
            label = label.decode("utf-8")
        name = "" if digit == features.NO_DIGIT else (label or str(digit))
        return cls(digit, confidence, probabilities, name)

    @classmethod
    def from_row(cls, row: Dict[str, Any]) -> "Prediction":
        """From one entry of a REST answer's `predictions`."""
        return cls.from_outputs(
            row[features.PROBABILITIES_OUTPUT], row[features.DIGIT_OUTPUT], row.get(features.CLASS_NAME_OUTPUT)
        )

    @property
    def found(self) -> bool:
        return self.digit != features.NO_DIGIT


class RestClient:
    def __init__(self, url: str, model_name: str = features.MODEL_NAME, timeout: float = 30.0):
        self.base = f"{url.rstrip('/')}/v1/models/{model_name}"
        self.timeout = timeout

    def _call(self, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                message = e.reason
            raise errors.from_http_status(e.code, f"HTTP {e.code}: {message}") from None

    def status(self) -> Dict[str, Any]:
        return self._call("")

    def metadata(self) -> Dict[str, Any]:
        return self._call("/metadata")

    def predict(self, body: Dict[str, Any], version: Optional[int] = None) -> Dict[str, Any]:
        return self._call(("" if version is None else f"/versions/{version}") + ":predict", body)

    def classify(
        self,
        examples: List[Dict[str, Any]],
        signature_name: str = features.CLASSIFY_SIGNATURE,
        version: Optional[int] = None,
    ) -> List[List[List[Any]]]:
        """TF Serving's Classify: tf.Examples as JSON features -> per example, [label, score] per class."""
        body = {"signature_name": signature_name, "examples": examples}
        return self._call(("" if version is None else f"/versions/{version}") + ":classify", body)["results"]

    def classify_pictures(self, pictures: Sequence[bytes], version: Optional[int] = None) -> List[Prediction]:
        """PNG/JPEG files' bytes -> predictions, through the model's in-graph decoder."""
        body = {
            "signature_name": features.IMAGE_BYTES_SIGNATURE,
            "instances": [{"b64": base64.b64encode(p).decode()} for p in pictures],
        }
        return [Prediction.from_row(r) for r in self.predict(body, version)["predictions"]]

    def classify_pixels(self, pixels: np.ndarray, version: Optional[int] = None) -> List[Prediction]:
        """A batch of 28x28 (or 784) pixel arrays, 0-255."""
        body = {"signature_name": features.IMAGES_SIGNATURE, "instances": np.asarray(pixels).tolist()}
        return [Prediction.from_row(r) for r in self.predict(body, version)["predictions"]]


GRPC_MAX_MESSAGE_BYTES = 2**31 - 1
"""The gRPC channel's message size limit either way: INT32_MAX, as TF Serving's server (and this one,
`serving.grpc_service.MAX_MESSAGE_BYTES`) sets it, rather than gRPC's 4 MB, so that a large batch and
its answer pass."""


class GrpcClient:
    def __init__(self, target: str, model_name: str = features.MODEL_NAME, timeout: float = 30.0):
        import grpc  # Only gRPC users pay for these imports.
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.model_name = model_name
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
            ],
        )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(
        self, signature_name: str, inputs: Dict[str, np.ndarray], version: Optional[int] = None
    ) -> Dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self.stub.Predict(request, timeout=self.timeout)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def classify(
        self,
        examples: Sequence[bytes],
        signature_name: str = features.CLASSIFY_SIGNATURE,
        version: Optional[int] = None,
    ) -> List[List[List[Any]]]:
        """TF Serving's Classify: serialized tf.Examples -> per example, [label, score] per class."""
        from tensorflow.core.example import example_pb2
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        request.input.example_list.examples.extend(example_pb2.Example.FromString(e) for e in examples)
        response = self.stub.Classify(request, timeout=self.timeout)
        return [[[c.label, c.score] for c in row.classes] for row in response.result.classifications]

    def classify_pictures(self, pictures: Sequence[bytes], version: Optional[int] = None) -> List[Prediction]:
        outputs = self.predict(
            features.IMAGE_BYTES_SIGNATURE, {features.IMAGE_BYTES_INPUT: np.array(pictures, dtype=object)}, version
        )
        count = len(outputs[features.DIGIT_OUTPUT])
        labels = outputs.get(features.CLASS_NAME_OUTPUT, [None] * count)
        return [
            Prediction.from_outputs(p, d, label)
            for p, d, label in zip(outputs[features.PROBABILITIES_OUTPUT], outputs[features.DIGIT_OUTPUT], labels)
        ]

    def close(self) -> None:
        self.channel.close()
