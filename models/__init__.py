"""Model code run by the Transform and Trainer components (features, preprocessing, CNN).

TFT's Keras layer and TFMA's model loading are tf_keras (Keras 2); TF 2.16 only maps `tf.keras` to it
when this is set before TensorFlow loads Keras, so it is set here, where every entry point passes.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
