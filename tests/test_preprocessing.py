"""preprocessing_fn: the scaling and layout shared by training and serving."""

import numpy as np
import tensorflow as tf

from models import features
from models.preprocessing import preprocessing_fn


def test_scales_pixels_and_reshapes():
    pixels = np.arange(2 * 784).reshape(2, 784) % 256
    out = preprocessing_fn(
        {features.IMAGE_KEY: tf.constant(pixels, tf.int64), features.LABEL_KEY: tf.constant([[3], [9]], tf.int64)}
    )
    image = out[features.transformed_name(features.IMAGE_KEY)].numpy()
    assert image.shape == (2, 28, 28, 1) and image.dtype == np.float32
    np.testing.assert_allclose(image.reshape(2, 784), pixels / 255.0, rtol=1e-6)
    assert image.min() >= 0.0 and image.max() == 1.0
    assert out[features.transformed_name(features.LABEL_KEY)].numpy().tolist() == [3, 9]


def test_serving_inputs_need_no_label():
    out = preprocessing_fn({features.IMAGE_KEY: tf.zeros([1, 784], tf.int64)})
    assert set(out) == {features.transformed_name(features.IMAGE_KEY)}
