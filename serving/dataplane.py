"""What the server does, whatever the protocol: model status, metadata, predict, classify, regress.

The REST and gRPC front ends translate their requests into these calls and the results (or a
`serving.errors` error) back into their formats; nothing here knows about HTTP or gRPC. Results are
TF Serving's own protos where the API has one (status, metadata, classification), and numpy arrays for
predictions (each front end writes them its own way).
"""

import concurrent.futures
import dataclasses
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, status_pb2

from models import features, feedback, preprocessing
from serving import inputs
from serving.batching import BatchScheduler, DirectRunner
from serving.config import ServerOptions
from serving.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable
from serving.model_store import ServerCore
from serving.request_log import CLASSIFY, PREDICT, REGRESS, Entry, RequestLogger
from serving.servable import Servable, Signature

Arrays = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """Which model a request names, and optionally which version or version label."""

    name: str
    version: Optional[int] = None
    label: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Prediction:
    servable: Servable
    signature: Signature
    outputs: Arrays


_ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
"""tensorflow.error.Code, the codes TF Serving reports a version's status with."""


class DataPlane:
    def __init__(self, core: ServerCore, options: ServerOptions, on_log_drop: Callable[[str], None]):
        self.core = core
        self.options = options
        self.runner: Union[BatchScheduler, DirectRunner] = (
            BatchScheduler(options.batching) if options.enable_batching else DirectRunner(options.rest_api_num_threads)
        )
        self.request_log = RequestLogger(options, on_log_drop)

    def servable(self, ref: ModelRef) -> Servable:
        return self.core.store(ref.name).servable(ref.version, ref.label)

    def model_status(self, name: str, version: Optional[int] = None) -> get_model_status_pb2.GetModelStatusResponse:
        """Every version of the model (a label in the request is not looked at, as in TF Serving)."""
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.core.store(name).statuses(version):
            entry = response.model_version_status.add(version=status.version)
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
            entry.status.error_code = _ERROR_CODES.values_by_name[status.error_code].number
            entry.status.error_message = status.error_message
        return response

    def model_metadata(self, ref: ModelRef) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return metadata_response(self.servable(ref))

    def predict(self, servable: Servable, signature: Signature, arrays: Arrays) -> "concurrent.futures.Future[Arrays]":
        """The signature's outputs for checked inputs (`serving.inputs`), batched if batching is on."""
        return self._run(PREDICT, servable, signature, arrays, arrays)

    def _run(
        self, kind: str, servable: Servable, signature: Signature, arrays: Arrays, request: Union[Arrays, List[bytes]]
    ) -> "concurrent.futures.Future[Arrays]":
        """Runs the signature; a request sampled by its model's `logging_config` is logged once answered."""
        inputs.check_names(arrays, signature.inputs)
        future = self.runner.submit(servable, signature, arrays, inputs.batch_size(arrays))
        config = self.core.request_logging(servable.model_name)
        if RequestLogger.sampled(config):
            assert config is not None

            def log(done: "concurrent.futures.Future[Arrays]") -> None:
                if not done.cancelled() and done.exception() is None:
                    self.request_log.add(
                        Entry(
                            kind, servable.model_name, servable.version, signature.name, config, request, done.result()
                        )
                    )

            future.add_done_callback(log)
        return future

    def classify(
        self, servable: Servable, signature_name: Optional[str], examples: List[bytes]
    ) -> "concurrent.futures.Future[Arrays]":
        return self._on_examples(CLASSIFY, servable, servable.classification_signature(signature_name), examples)

    def regress(
        self, servable: Servable, signature_name: Optional[str], examples: List[bytes]
    ) -> "concurrent.futures.Future[Arrays]":
        return self._on_examples(REGRESS, servable, servable.regression_signature(signature_name), examples)

    def _on_examples(
        self, kind: str, servable: Servable, signature: Signature, examples: List[bytes]
    ) -> "concurrent.futures.Future[Arrays]":
        """Classify and Regress: serialized tf.Examples into the signature's one input, `inputs`."""
        spec = signature.inputs[features.CLASSIFY_INPUT]
        array = inputs.from_values(features.CLASSIFY_INPUT, examples, spec, self.options.max_batch_per_request)
        return self._run(kind, servable, signature, {features.CLASSIFY_INPUT: array}, examples)

    def wait(self, future: "concurrent.futures.Future[Arrays]", seconds: Optional[float]) -> Arrays:
        """A blocking caller's wait (gRPC), with the request's deadline."""
        try:
            return future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeadlineExceeded("Deadline Exceeded: the model did not answer in time") from None

    def store_feedback(self, picture: bytes, label: int) -> str:
        """Keeps a picture a person labelled (the digit they meant) in the open span of the feedback
        dataset; where it was stored."""
        if not self.options.feedback_dir:
            raise NotFound("Feedback is off: start the server with --feedback_dir")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < features.NUM_CLASSES:
            raise InvalidArgument(f"label: expected a class 0-{features.NUM_CLASSES - 1}, got {label!r}")
        try:  # Read as ingestion will read it: a picture it would refuse is refused now, not in training.
            _, found = preprocessing.decode_image(tf.constant(picture))
        except (tf.errors.InvalidArgumentError, ValueError):
            raise InvalidArgument("picture: not a PNG, JPEG, GIF or BMP picture") from None
        if not found:
            raise InvalidArgument("picture: no digit found in it (a blank or nearly blank picture)")
        try:
            return feedback.add(self.options.feedback_dir, picture, label)
        except (OSError, tf.errors.OpError) as e:
            why = e.message if isinstance(e, tf.errors.OpError) else e.strerror or str(e)
            raise Unavailable(f"The picture could not be stored ({why}); nothing was kept") from None

    def stop(self) -> None:
        self.runner.stop()
        self.request_log.stop()


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """TF Serving's GetModelMetadata answer: the version's signature defs under `signature_def`."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.model_name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(
        get_model_metadata_pb2.SignatureDefMap(signature_def=servable.signature_defs)
    )
    return response
