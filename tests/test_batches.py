"""A model over many inputs a batch at a time: every input read once, in order, in bounded batches, as
float32 unless told otherwise; and the robustness figures read through it."""

from typing import List

import numpy as np
import tensorflow as tf

from models import features, robustness
from models.batches import in_batches
from pipeline import mnist


def test_every_value_once_in_order_in_bounded_float32_batches():
    sizes: List[int] = []

    def call(chunk: tf.Tensor) -> tf.Tensor:
        assert chunk.dtype == tf.float32
        sizes.append(int(chunk.shape[0]))
        return chunk * 2

    values = np.arange(1234, dtype=np.float64)
    np.testing.assert_array_equal(in_batches(call, values, batch=500), values * 2)
    assert sizes == [500, 500, 234]


def test_values_kept_as_they_are_without_a_dtype():
    pictures = [b"a", b"bc", b"def"]
    lengths = in_batches(lambda chunk: tf.strings.length(chunk), pictures, batch=2, dtype=None)
    np.testing.assert_array_equal(lengths, [1, 2, 3])


def test_robustness_reads_every_copy_through_float32_batches():
    pixels, labels = mnist.load(mnist.TEST, 40)
    seen: List[tf.DType] = []

    def predict_images(**inputs: tf.Tensor) -> dict:
        images = inputs[features.IMAGES_INPUT]
        seen.append(images.dtype)
        # A "model" that reads a digit right exactly where its picture is unchanged.
        unchanged = tf.reduce_all(tf.equal(images, tf.constant(pixels[: images.shape[0]], tf.float32)), axis=[1, 2])
        return {features.DIGIT_OUTPUT: tf.where(unchanged, tf.constant(labels[: images.shape[0]]), -1)}

    result = robustness.accuracies(predict_images, pixels, labels)
    assert result["clean"] == 1.0
    assert set(result) == {"clean", *robustness.PERTURBATIONS}
    assert all(result[kind] < 1.0 for kind in robustness.PERTURBATIONS)
    assert set(seen) == {tf.float32}
