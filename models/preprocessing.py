"""The Transform graph: the one definition of how raw pixels become model input.

It is embedded in the exported model, so serving clients send raw 0-255 pixels and can never
disagree with training about scaling or layout.
"""

from typing import Dict

import tensorflow as tf

from models import features


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Pixels -> float32 28x28x1 in [0, 1]; label -> int64 scalar per example."""
    pixels = tf.cast(inputs[features.IMAGE_KEY], tf.float32) / float(features.MAX_PIXEL)
    outputs = {
        features.transformed_name(features.IMAGE_KEY): tf.reshape(
            pixels, [-1, features.IMAGE_SIZE, features.IMAGE_SIZE, 1]
        )
    }
    if features.LABEL_KEY in inputs:
        outputs[features.transformed_name(features.LABEL_KEY)] = tf.reshape(inputs[features.LABEL_KEY], [-1])
    return outputs


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """One encoded picture (PNG, JPEG, GIF or BMP; any size; grey or colour) -> 28x28 pixels 0-255.

    Light backgrounds (judged on the border) are inverted to MNIST's white digit on black. Used both
    when ingesting PNG folders and inside the served model, so a picture sent to TF Serving is read
    exactly as the training pictures were.
    """
    image = tf.cast(tf.io.decode_image(image_bytes, channels=1, expand_animations=False), tf.float32)
    border = tf.concat([image[0, :], image[-1, :], image[:, 0], image[:, -1]], axis=0)
    image = tf.cond(tf.reduce_mean(border) > features.MAX_PIXEL / 2, lambda: features.MAX_PIXEL - image, lambda: image)
    size = [features.IMAGE_SIZE, features.IMAGE_SIZE]
    image = tf.image.resize(image, size, method=tf.image.ResizeMethod.AREA, antialias=True)
    return tf.clip_by_value(tf.round(tf.reshape(image, size)), 0.0, float(features.MAX_PIXEL))
