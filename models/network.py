"""The digit CNN: its layers (with the optional deskewing layer), the ensemble that averages several,
and the CNN rebuilt from the weights a Trainer run exported."""

import json
import os
from types import ModuleType
from typing import Sequence, Union

import tensorflow as tf
import tf_keras as keras

from models import features, geometry
from models.config import DTYPE_POLICIES, TrainerConfig
from models.tracing import skip_autograph_in_tf_keras

# Here, where the CNN is built in tf_keras, so that its training traces tf_keras as written.
skip_autograph_in_tf_keras()

IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
EXPORTED_WEIGHTS = "checkpoints/exported"
"""The weights the Trainer exported, in its logs folder (see `models.training.callbacks`)."""
MEMBER_CONFIG = "trainer_config.json"
"""The settings a CNN trained with, beside its weights, so that it can be rebuilt to load them."""
LearningRate = Union[float, keras.optimizers.schedules.LearningRateSchedule]
"""A fixed rate, or a schedule per step (`models.training.learning_rate`)."""


class Deskew(keras.layers.Layer):
    """Straightens each picture's slant and moves its centre of ink to the middle, in one affine
    resampling: the classic MNIST deskewing (a shear that makes the ink's rows uncorrelated with its
    columns), as the committees of CNNs that differ in how their input is normalised (Ciresan et al.,
    2012). A blank picture passes unchanged; the shear is capped at 45 degrees."""

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)

    def call(self, images: tf.Tensor) -> tf.Tensor:
        size = features.IMAGE_SIZE
        ink = tf.cast(images, tf.float32)[..., 0]
        coords = tf.range(size, dtype=tf.float32)
        ys, xs = coords[None, :, None], coords[None, None, :]
        mass = tf.reduce_sum(ink, axis=[1, 2])
        has_ink = mass > 1e-6

        def mean(values: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(ink * values, axis=[1, 2]) / tf.where(has_ink, mass, 1.0)

        centre = size / 2.0  # MNIST's own: its digits' centres of ink are at (14, 14), so most barely move.
        row, col = tf.where(has_ink, mean(ys), centre), tf.where(has_ink, mean(xs), centre)
        dy, dx = ys - row[:, None, None], xs - col[:, None, None]
        variance, covariance = mean(dy * dy), mean(dx * dy)
        skew = tf.where(variance > 1e-6, tf.clip_by_value(covariance / tf.maximum(variance, 1e-6), -1.0, 1.0), 0.0)
        # Output pixel (x, y) samples the input at (col + (x - c) + skew (y - c), row + (y - c)).
        ones, zeros = tf.ones_like(skew), tf.zeros_like(skew)
        return geometry.resample(ink[..., None], [ones, skew, col - centre - skew * centre, zeros, ones, row - centre])


def build_model(
    learning_rate: LearningRate,
    precision: str = "float32",
    api: ModuleType = keras,
    name: str = "digits_cnn",
    deskew: bool = False,
) -> keras.Model:
    """Two conv blocks (32x5x5, 64x3x3) with batch norm, then dense 256, softmax over 10 digits.

    `precision` is the layers' dtype policy ("float32" or "mixed_bfloat16": bfloat16 maths, float32
    weights); the softmax stays float32 either way, so probabilities keep full precision. `api` is the
    Keras to build with: tf_keras (what TFT's layer and the export need), or Keras 3 for the training
    benchmark's comparison. `deskew` puts `Deskew` (tf_keras only) before the first convolution.
    """
    if precision not in DTYPE_POLICIES:
        raise ValueError(f"Unknown precision {precision!r}: expected one of {', '.join(DTYPE_POLICIES)}")
    layers = api.layers
    inputs = api.Input(shape=(features.IMAGE_SIZE, features.IMAGE_SIZE, 1), name=IMAGE_XF)
    x = Deskew(name="deskew")(inputs) if deskew else inputs
    for filters, kernel in ((32, 5), (64, 3)):
        for _ in range(2):
            x = layers.Conv2D(filters, kernel, padding="same", activation="relu", dtype=precision)(x)
            x = layers.BatchNormalization(dtype=precision)(x)
        x = layers.MaxPooling2D(dtype=precision)(x)
        x = layers.Dropout(0.25, dtype=precision)(x)
    x = layers.Flatten(dtype=precision)(x)
    x = layers.Dense(256, activation="relu", dtype=precision)(x)
    x = layers.BatchNormalization(dtype=precision)(x)
    x = layers.Dropout(0.5, dtype=precision)(x)
    outputs = layers.Dense(
        features.NUM_CLASSES, activation="softmax", name=features.PROBABILITIES_OUTPUT, dtype="float32"
    )(x)
    model = api.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=api.optimizers.Adam(learning_rate),
        loss=api.losses.SparseCategoricalCrossentropy(),
        metrics=[api.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def trained_model(run_dir: str) -> keras.Model:
    """The CNN in float32 with the weights a Trainer run exported (for the report's feature maps and the
    TFLite export; the served model is the SavedModel), built as its `MEMBER_CONFIG` says."""
    settings = os.path.join(run_dir, MEMBER_CONFIG)
    deskew = False
    if tf.io.gfile.exists(settings):
        with tf.io.gfile.GFile(settings) as f:
            deskew = TrainerConfig.from_custom_config(json.load(f)).deskew
    model = build_model(learning_rate=1e-3, deskew=deskew)
    model.load_weights(os.path.join(run_dir, EXPORTED_WEIGHTS)).expect_partial()
    return model


def ensemble_model(members: Sequence[keras.Model]) -> keras.Model:
    """One model averaging the members' probabilities, with the CNN's input and output: the export, its
    signatures and every client see no difference but the answers."""
    inputs = keras.Input(shape=(features.IMAGE_SIZE, features.IMAGE_SIZE, 1), name=IMAGE_XF)
    average = keras.layers.Average(name=features.PROBABILITIES_OUTPUT, dtype="float32")
    return keras.Model(inputs, average([member(inputs) for member in members]), name="digits_ensemble")
