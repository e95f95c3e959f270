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
        outputs[features.transformed_name(features.LABEL_KEY)] = tf.reshape(
            inputs[features.LABEL_KEY], [-1]
        )
    return outputs
