"""One loaded model version: its signatures, how to call them, and its warmup.

Signatures are called with numpy arrays already checked by `serving.inputs`; what the model itself
refuses (its own value checks, a size it cannot reshape) comes back as INVALID_ARGUMENT with the
model's first line of explanation, as TF Serving reports it.
"""

import dataclasses
import logging
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  TF Text's ops, which TF Serving links in: text models tokenize in their graphs.
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, predict_pb2, prediction_log_pb2

from models.config import exported_class_names
from models.features import CLASSES_OUTPUT, CLASSIFY_INPUT, SCORES_OUTPUT, WARMUP_FILE
from serving import inputs
from serving.errors import InvalidArgument

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
MAX_WARMUP_RECORDS = 1000
"""TF Serving refuses a warmup file with more records."""
DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    method_name: str
    inputs: Dict[str, tf.TensorSpec]
    function: Callable[..., Dict[str, Any]] = dataclasses.field(repr=False)
    """Called with the inputs as tensors; answers tensors (a SavedModel's) or arrays (a TF Lite model's)."""

    def run(self, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Calls the signature; the model's own refusals (value checks, reshapes) are 400s, explained
        by the declared shapes when the inputs do not have them."""
        tensors = {name: tf.constant(array, dtype=self.inputs[name].dtype) for name, array in arrays.items()}
        try:
            outputs = self.function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            mismatch = inputs.shape_mismatch(arrays, self.inputs)
            raise InvalidArgument(mismatch or f"the model rejected the input: {model_message(e)}") from None
        return {name: value if isinstance(value, np.ndarray) else value.numpy() for name, value in outputs.items()}


_GRAPH_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[{{")


def model_message(error: Exception) -> str:
    """The line of a TensorFlow error that says what is wrong, without graph and node noise: the
    model's own check (`assertion failed: [...]`) or the op's complaint."""
    text = getattr(error, "message", str(error)).replace("\\'", "'")
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not line.startswith(_GRAPH_NOISE)]
    text = useful[0] if useful else type(error).__name__
    if text.startswith("assertion failed: [") and text.endswith("]"):
        return text[len("assertion failed: [") : -1]
    return text


def read_signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, SAVED_MODEL_FILE), "rb") as f:
        saved_model.ParseFromString(f.read())
    return {k: v for k, v in saved_model.meta_graphs[0].signature_def.items() if not k.startswith("__")}


@dataclasses.dataclass(frozen=True)
class Servable:
    """A loaded version; `handle` keeps the SavedModel (or TF Lite interpreter) alive while its functions
    may be called."""

    model_name: str
    version: int
    signatures: Dict[str, Signature]
    signature_defs: Dict[str, meta_graph_pb2.SignatureDef]
    class_names: Optional[Tuple[str, ...]] = None
    """The class names the version answers with (its `assets.extra/labels.txt`), if it says."""
    handle: object = dataclasses.field(repr=False, default=None)

    def signature(self, name: Optional[str]) -> Signature:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise InvalidArgument(f'Serving signature name: "{name}" not found in signature def')
        return self.signatures[name]

    def classification_signature(self, name: Optional[str]) -> Signature:
        """TF Serving's rules for Classify: one input `inputs` (serialized tf.Example), outputs
        `classes` and/or `scores`."""
        signature = self.signature(name)
        outputs = set(self.signature_defs[signature.name].outputs)
        if list(signature.inputs) != [CLASSIFY_INPUT]:
            raise InvalidArgument(
                f"No classification inputs found in SignatureDef '{signature.name}' (inputs {sorted(signature.inputs)})"
            )
        if not outputs & {CLASSES_OUTPUT, SCORES_OUTPUT}:
            raise InvalidArgument(
                'Expected classification signature outputs to contain at least one of "classes" '
                f"or \"scores\". Signature '{signature.name}' has {sorted(outputs)}"
            )
        return signature

    def regression_signature(self, name: Optional[str]) -> Signature:
        """TF Serving's rules for Regress: one input `inputs`, one output `outputs`."""
        signature = self.signature(name)
        outputs = list(self.signature_defs[signature.name].outputs)
        if list(signature.inputs) != [CLASSIFY_INPUT] or outputs != ["outputs"]:
            raise InvalidArgument(
                f"No regression inputs found in SignatureDef '{signature.name}': it takes "
                f"{sorted(signature.inputs)} and gives {sorted(outputs)}; this model has no "
                "regression signature"
            )
        return signature


LEGACY_PLACEHOLDER_PRODUCER = 21
"""GraphDefs of producer version 21 or older (TensorFlow 1.0 and before) write a Placeholder of unknown
shape as an empty `shape {}`, which TensorFlow's shape inference reads as unknown at those versions
only (its Placeholder shape function checks `graph_def_version() <= 21`)."""


def legacy_shapes_as_unknown(saved_model: saved_model_pb2.SavedModel) -> bool:
    """Rewrites, in `saved_model`, the empty shapes of legacy Placeholders, and of the signature
    tensors of the same graphs (written empty whatever their shape), as the unknown shape they mean;
    whether there were any Placeholders to rewrite."""
    changed = False
    for meta_graph in saved_model.meta_graphs:
        if meta_graph.graph_def.versions.producer > LEGACY_PLACEHOLDER_PRODUCER:
            continue
        shapes = [node.attr["shape"].shape for node in meta_graph.graph_def.node if node.op == "Placeholder"]
        empty = [shape for shape in shapes if not shape.dim and not shape.unknown_rank]
        if not empty:
            continue
        for signature in meta_graph.signature_def.values():
            for info in (*signature.inputs.values(), *signature.outputs.values()):
                if not info.tensor_shape.dim:
                    empty.append(info.tensor_shape)
        for shape in empty:
            shape.unknown_rank = changed = True
    return changed


def load_saved_model(path: str) -> Any:
    """`tf.saved_model.load`, but for a TensorFlow 1.0 SavedModel whose Placeholders declare no shape
    (TF Serving's own test models, which TF Serving loads): TensorFlow 2's loader of TF1 SavedModels
    (`load_v1_in_v2`, through `WrappedFunction.prune`) copies each signature's ops into a graph of the
    current GraphDef version, where such a Placeholder, and a signature tensor written without a
    shape, is a scalar, so an op wanting a vector of serialized tf.Examples fails to build ("Shape
    must be rank 1 but is rank 0"). Such a SavedModel is loaded from a temporary folder holding a
    corrected saved_model.pb and links to everything else; variables are restored and assets read
    while loading, so the folder goes once loaded. Any other SavedModel is loaded as it is."""
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, SAVED_MODEL_FILE), "rb") as f:
        saved_model.ParseFromString(f.read())
    if "://" in path or not legacy_shapes_as_unknown(saved_model):
        return tf.saved_model.load(path)
    with tempfile.TemporaryDirectory(prefix="legacy-saved-model-") as corrected:
        for name in os.listdir(path):
            if name != SAVED_MODEL_FILE:
                os.symlink(os.path.join(os.path.abspath(path), name), os.path.join(corrected, name))
        with open(os.path.join(corrected, SAVED_MODEL_FILE), "wb") as f:
            f.write(saved_model.SerializeToString())
        return tf.saved_model.load(corrected)


def load(model_name: str, version: int, path: str) -> Servable:
    """Loads one version; raises if the SavedModel is unreadable or has no signatures."""
    loaded = load_saved_model(path)
    signature_defs = read_signature_defs(path)
    signatures = {
        name: Signature(
            name=name,
            method_name=signature_defs[name].method_name,
            inputs=dict(function.structured_input_signature[1]),
            function=function,
        )
        for name, function in loaded.signatures.items()
        if name in signature_defs
    }
    if not signatures:
        raise ValueError(f"{path} has no serving signatures")
    return Servable(model_name, version, signatures, signature_defs, exported_class_names(path), loaded)


def serialized_examples(request_input: input_pb2.Input) -> List[bytes]:
    """Classify/Regress input -> serialized tf.Examples; a context is merged into each example (its
    features first, the example's own win), as TF Serving does by prepending its bytes."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        return [context + e.SerializeToString() for e in with_context.examples]
    raise InvalidArgument("Input is empty.")


def replay_warmup(servable: Servable, path: str, max_batch: int, max_values: int) -> Tuple[int, float]:
    """Runs every request of the version's warmup file (TF Serving's format and limit) so that the
    first real request finds the functions traced; returns (records, seconds). A bad record fails the
    load, as in TF Serving."""
    warmup_path = os.path.join(path, WARMUP_FILE)
    if not tf.io.gfile.exists(warmup_path):
        return 0, 0.0
    started, count = time.perf_counter(), 0
    try:
        records = list(tf.data.TFRecordDataset(warmup_path).take(MAX_WARMUP_RECORDS + 1).as_numpy_iterator())
    except tf.errors.DataLossError as e:
        raise ValueError(f"{warmup_path}: {e.message}. Please verify your warmup data is in TFRecord format.") from None
    if len(records) > MAX_WARMUP_RECORDS:
        raise ValueError(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {warmup_path}")
    for record in records:
        entry = prediction_log_pb2.PredictionLog.FromString(record)
        kind = entry.WhichOneof("log_type")
        if kind == "predict_log":
            _warm_predict(servable, entry.predict_log.request, max_batch, max_values)
        elif kind == "classify_log":
            _warm_classify(servable, entry.classify_log.request)
        elif kind is not None:
            raise ValueError(f"{warmup_path}: Unsupported log_type for warmup: {kind}")
        count += 1
    return count, time.perf_counter() - started


def _warm_predict(servable: Servable, request: predict_pb2.PredictRequest, max_batch: int, max_values: int) -> None:
    signature = servable.signature(request.model_spec.signature_name)
    inputs.check_names(request.inputs, signature.inputs)
    signature.run(
        {
            name: inputs.from_proto(name, proto, signature.inputs[name], max_batch, max_values)
            for name, proto in request.inputs.items()
        }
    )


def _warm_classify(servable: Servable, request: classification_pb2.ClassificationRequest) -> None:
    signature = servable.classification_signature(request.model_spec.signature_name)
    signature.run({CLASSIFY_INPUT: np.array(serialized_examples(request.input), dtype=object)})


def classification_result(outputs: Dict[str, np.ndarray]) -> classification_pb2.ClassificationResult:
    """`classes` and `scores` -> TF Serving's ClassificationResult: per example, one class per label
    (label "" without `classes`, score 0 without `scores`)."""
    classes = outputs.get(CLASSES_OUTPUT)
    scores = outputs.get(SCORES_OUTPUT)
    count, width = next(o for o in (classes, scores) if o is not None).shape[:2]
    result = classification_pb2.ClassificationResult()
    for i in range(count):
        classifications = result.classifications.add()
        for j in range(width):
            label = classes[i, j].decode() if classes is not None else ""
            score = float(scores[i, j]) if scores is not None else 0.0
            classifications.classes.add(label=label, score=score)
    return result
