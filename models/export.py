"""The exported SavedModel: a signature for each way clients send digits, each checking its inputs
against the curated schema's domain, and warmup requests in TF Serving's format.

The checks are in the graph, so the real TF Serving refuses a pixel of 300 exactly as this project's
server does (400, naming the input and the first bad value), and no client gets a confident digit for
garbage. Every signature runs the Transform graph, so clients send raw 0-255 pixels or pictures.
"""

import dataclasses
import os
from typing import Callable, Dict, List, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from models import features, geometry, preprocessing
from models.tracing import skip_autograph_in_tf_keras

# Here, as in `models.network`, so that the export's signatures trace tf_keras as written.
skip_autograph_in_tf_keras()


@dataclasses.dataclass(frozen=True)
class PixelDomain:
    """The values a pixel may take: the `image` feature's int_domain in the curated schema."""

    min: int = 0
    max: int = features.MAX_PIXEL

    @classmethod
    def from_schema(cls, schema_path: str) -> "PixelDomain":
        schema = schema_pb2.Schema()
        with tf.io.gfile.GFile(schema_path) as f:
            text_format.Parse(f.read(), schema)
        for feature in schema.feature:
            if feature.name == features.IMAGE_KEY and feature.HasField("int_domain"):
                return cls(int(feature.int_domain.min), int(feature.int_domain.max))
        raise ValueError(f"{schema_path}: feature '{features.IMAGE_KEY}' has no int_domain")

    def check(self, pixels: tf.Tensor, what: str) -> tf.Tensor:
        """`pixels` unchanged, or an InvalidArgument error naming `what`, the first bad value and where
        it is ([example, pixel]). NaN fails both comparisons, so it is refused too."""
        bad = tf.logical_not(tf.logical_and(pixels >= self.min, pixels <= self.max))
        flat = tf.reshape(bad, [tf.shape(pixels)[0], -1])
        where = tf.reshape(tf.where(flat)[:1], [-1])  # [example, pixel] of the first bad value, or []
        value = tf.reduce_sum(tf.boolean_mask(tf.reshape(pixels, tf.shape(flat)), flat)[:1])
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [
                tf.strings.format(
                    f"{what}: pixel values must be numbers in {self.min}-{self.max} (the curated schema's domain); "
                    "got {} at [example, pixel] {}",
                    (value, where),
                    summarize=4,
                )
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(pixels)


def tta_readings(images: tf.Tensor, degrees: float) -> tf.Tensor:
    """The [3n, 28, 28, 1] pictures test-time augmentation reads for [n, 28, 28, 1] `images`: as they
    are, then all rotated by + and - `degrees`, in one batch."""
    return tf.concat([images, geometry.rotated(images, degrees), geometry.rotated(images, -degrees)], axis=0)


def predict_with_tta(model: keras.Model, images: tf.Tensor, degrees: float) -> tf.Tensor:
    """The model's probabilities for [n, 28, 28, 1] `images` with test-time augmentation (TTA): each
    picture predicted three times (as it is, and rotated by + and - `degrees`) and the answers averaged,
    which corrected a tenth of a CNN's mistakes on `eval` for three times the inference. 0 degrees:
    predicted once."""
    if not degrees:
        return model(images, training=False)
    answers = model(tta_readings(images, degrees), training=False)
    return tf.reduce_mean(tf.reshape(answers, [3, tf.shape(images)[0], features.NUM_CLASSES]), axis=0)


def serving_signatures(
    model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    domain: PixelDomain,
    class_names: Sequence[str] = tuple(features.CLASS_LABELS),
    test_time_rotation: float = 0.0,
) -> Dict[str, Callable]:
    """`serving_default` and `classification` take tf.Examples (as ExampleGen writes them),
    `predict_images` raw pixels, `predict_image_bytes` encoded pictures. Classes are answered by name
    (`class_names`, in label order: the digits, or a dataset's own names). Every signature predicts with
    `predict_with_tta`."""
    names = tf.constant(list(class_names))
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec.pop(features.LABEL_KEY)
    image_xf = features.transformed_name(features.IMAGE_KEY)

    def predict(pixels: tf.Tensor) -> tf.Tensor:
        return predict_with_tta(model, model.tft_layer({features.IMAGE_KEY: pixels})[image_xf], test_time_rotation)

    def parse_examples(examples: tf.Tensor, what: str) -> tf.Tensor:
        return domain.check(tf.io.parse_example(examples, raw_spec)[features.IMAGE_KEY], what)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)])
    def serve_examples(examples):
        pixels = parse_examples(examples, f"input '{features.EXAMPLES_INPUT}', feature '{features.IMAGE_KEY}'")
        return {features.PROBABILITIES_OUTPUT: predict(pixels)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.CLASSIFY_INPUT)])
    def classify_examples(inputs):
        pixels = parse_examples(inputs, f"input '{features.CLASSIFY_INPUT}', feature '{features.IMAGE_KEY}'")
        scores = predict(pixels)
        classes = tf.tile(names[None], [tf.shape(scores)[0], 1])
        return {features.CLASSES_OUTPUT: classes, features.SCORES_OUTPUT: scores}

    def predict_pixels(pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
        pixels = tf.reshape(pixels, [-1, features.NUM_PIXELS])
        probabilities = predict(tf.cast(tf.round(pixels), tf.int64))
        return {
            features.PROBABILITIES_OUTPUT: probabilities,
            features.DIGIT_OUTPUT: tf.argmax(probabilities, axis=1),
            features.CLASS_NAME_OUTPUT: tf.gather(names, tf.argmax(probabilities, axis=1)),
        }

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name=features.IMAGES_INPUT)])
    def serve_images(images):
        count = tf.shape(images)[0]
        whole = tf.debugging.Assert(
            tf.equal(tf.size(images), count * features.NUM_PIXELS),
            [
                tf.strings.format(
                    f"input '{features.IMAGES_INPUT}': each image must be {features.IMAGE_SIZE}x{features.IMAGE_SIZE} "
                    f"or {features.NUM_PIXELS} pixels; got {{}} values for {{}} images",
                    (tf.size(images), count),
                )
            ],
        )
        with tf.control_dependencies([whole]):
            return predict_pixels(domain.check(images, f"input '{features.IMAGES_INPUT}'"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)])
    def serve_image_bytes(image_bytes):
        pixels, found = tf.map_fn(
            preprocessing.decode_image,
            image_bytes,
            fn_output_signature=(
                tf.TensorSpec([features.IMAGE_SIZE, features.IMAGE_SIZE], tf.float32),
                tf.TensorSpec([], tf.bool),
            ),
        )
        outputs = predict_pixels(pixels)
        # No digit in a picture: no guess either (digit NO_DIGIT, every probability 0).
        return {
            features.PROBABILITIES_OUTPUT: tf.where(found[:, None], outputs[features.PROBABILITIES_OUTPUT], 0.0),
            features.DIGIT_OUTPUT: tf.where(found, outputs[features.DIGIT_OUTPUT], features.NO_DIGIT),
            features.CLASS_NAME_OUTPUT: tf.where(found, outputs[features.CLASS_NAME_OUTPUT], ""),
            features.FRAMED_OUTPUT: tf.cast(pixels, tf.uint8),
        }

    return {
        features.EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
        features.CLASSIFY_SIGNATURE: classify_examples.get_concrete_function(),
        features.IMAGES_SIGNATURE: serve_images.get_concrete_function(),
        features.IMAGE_BYTES_SIGNATURE: serve_image_bytes.get_concrete_function(),
    }


def _mark_classification_signature(export_dir: str) -> None:
    """Keras saves every signature with the predict method; TF Serving's Classify API (with its
    method-name check on) and MultiInference want the classify method, so it is set in the saved graph."""
    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    saved_model.meta_graphs[0].signature_def[features.CLASSIFY_SIGNATURE].method_name = features.CLASSIFY_METHOD
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString(deterministic=True))


def _blank_example() -> bytes:
    feature = {features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[0] * features.NUM_PIXELS))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def warmup_requests(model_name: str) -> List[prediction_log_pb2.PredictionLog]:
    """One request per signature, on a blank digit: enough for the first real request of each kind to
    find every function traced and every kernel initialised."""
    blank = tf.zeros([1, features.IMAGE_SIZE, features.IMAGE_SIZE], tf.float32)
    png = tf.io.encode_png(tf.zeros([features.IMAGE_SIZE, features.IMAGE_SIZE, 1], tf.uint8)).numpy()
    inputs = {
        features.EXAMPLES_SIGNATURE: {features.EXAMPLES_INPUT: tf.make_tensor_proto([_blank_example()])},
        features.IMAGES_SIGNATURE: {features.IMAGES_INPUT: tf.make_tensor_proto(blank)},
        features.IMAGE_BYTES_SIGNATURE: {features.IMAGE_BYTES_INPUT: tf.make_tensor_proto([png])},
    }
    logs = []
    for signature, tensors in inputs.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model_name, signature
        for name, proto in tensors.items():
            request.inputs[name].CopyFrom(proto)
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = model_name, features.CLASSIFY_SIGNATURE
    classify.input.example_list.examples.add().ParseFromString(_blank_example())
    logs.append(prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=classify)))
    return logs


def write_warmup_requests(export_dir: str, model_name: str) -> str:
    path = os.path.join(export_dir, features.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for entry in warmup_requests(model_name):
            writer.write(entry.SerializeToString())
    return path


def export_model(
    model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    export_dir: str,
    domain: PixelDomain,
    model_name: str = features.MODEL_NAME,
    class_names: Sequence[str] = tuple(features.CLASS_LABELS),
    test_time_rotation: float = 0.0,
) -> None:
    """Saves the serving model (without the optimizer's state: a third of the size, same answers),
    with its warmup requests and its class names (`assets.extra/labels.txt`, for clients and reports).
    The saved Keras model is the model itself, whatever its signatures do with it: its variables are the
    CNN's, so a later run can start from them (`models.training.warm_start`)."""
    model.save(
        export_dir,
        save_format="tf",
        include_optimizer=False,
        signatures=serving_signatures(model, tf_transform_output, domain, class_names, test_time_rotation),
    )
    _mark_classification_signature(export_dir)
    write_warmup_requests(export_dir, model_name)
    with tf.io.gfile.GFile(os.path.join(export_dir, features.CLASS_NAMES_FILE), "w") as f:
        f.write("".join(f"{name}\n" for name in class_names))
