"""Names and shapes shared by ingestion, schema, preprocessing, training and serving.

Every other module takes these names from here, so a feature or split is named in one place.
"""

import os

IMAGE_KEY = "image"
"""Raw pixels: 784 int64 values in 0..255, row-major 28x28."""

LABEL_KEY = "label"
"""True digit: one int64 in 0..9."""

IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
NUM_CLASSES = 10
MAX_PIXEL = 255

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
TEST_SPLIT = "test"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT)
UNLABELED_SPLIT = "unlabeled"
"""Digits to read but not to learn or evaluate on (Kaggle's test.csv): scored by BulkInferrer."""
IMAGE_ID_KEY = "image_id"
"""An unlabeled digit's number in its file, from 1 (Kaggle's ImageId)."""


def transformed_name(key: str) -> str:
    """Name of a feature after Transform, so raw and transformed never collide."""
    return f"{key}_xf"


# The serving contract: model name, signature names, their inputs and outputs (used by the Trainer's
# export, the Evaluator, the model server and its clients). Where TF Serving fixes a name (the default
# signature, Classify's inputs and outputs, the warmup file), it is TensorFlow's own constant, spelled
# out so that clients need not import TensorFlow (a unit test holds them equal).
MODEL_NAME = "digits"
"""The default TF Serving model name: served as `/v1/models/digits`, pushed to `<base>/digits/<version>/`;
also the default pipeline name (a model and the pipeline that makes it share one name)."""
EXAMPLES_SIGNATURE = "serving_default"
"""Serialized tf.Example in (the TFX convention; TFMA evaluates through it)."""
EXAMPLES_INPUT = "examples"
IMAGES_SIGNATURE = "predict_images"
"""Raw pixels in: a batch of 28x28 or 784 values in 0..255 (ints or floats)."""
IMAGES_INPUT = "images"
IMAGE_BYTES_SIGNATURE = "predict_image_bytes"
"""Encoded pictures in (PNG, JPEG, ...; in TF Serving's JSON as {"b64": ...}), decoded in the graph."""
IMAGE_BYTES_INPUT = "image_bytes"
PROBABILITIES_OUTPUT = "probabilities"
DIGIT_OUTPUT = "digit"
NO_DIGIT = -1
"""`digit` of a picture in which no digit was found (a blank canvas); its probabilities are all 0."""
CLASS_NAME_OUTPUT = "class_name"
"""The name of the class read ("7", or a dataset's own name such as "Sneaker"; "" for no digit)."""
FRAMED_OUTPUT = "framed"
"""The 28x28 picture the model saw (0-255), as the picture signature framed it: what the drawing page
shows beside its answer."""
CLASSIFY_SIGNATURE = "classification"
"""Serialized tf.Example in, TF Serving's classification outputs out: what `:classify` and gRPC
Classify call (with `"signature_name": "classification"`)."""
CLASSIFY_INPUT = "inputs"
CLASSES_OUTPUT = "classes"
SCORES_OUTPUT = "scores"
CLASS_LABELS = [str(digit) for digit in range(NUM_CLASSES)]
"""The `classes` a classification answers with, in score order."""
CLASSIFY_METHOD = "tensorflow/serving/classify"
ANSWER_TOLERANCE = 2e-3
"""How far two computations of one model's probabilities for the same picture may differ: the CNN
computes in bfloat16 on CPUs that have it (3 significant digits), and a server batching concurrent
requests computes each picture among others (measured: up to 2e-4 under load). Two different models
differ by far more (0.1 and up)."""
CLASS_NAMES_FILE = os.path.join("assets.extra", "labels.txt")
"""The class names a model answers with, one per line in label order, beside its SavedModel (for the
report, the drawing page and anyone reading a pushed version)."""
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
"""Where TF Serving reads warmup requests in a version folder: a TFRecord of PredictionLog records."""
