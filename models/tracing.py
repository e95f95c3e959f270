"""Keep AutoGraph out of tf_keras's own code.

AutoGraph leaves the packages on its do-not-convert list (TensorFlow, `keras`, NumPy, ...) as they are
and rewrites everything else called inside a `tf.function`. Keras 2 moved to the `tf_keras` package,
which TensorFlow 2.16's list does not name, so every first trace of `fit`'s train step, of evaluation
and of the export's signatures rewrote tf_keras's layers and optimizer, and in bfloat16 also failed on
each autocast variable (the "AutoGraph could not transform create_autocast_variable" warnings that
filled every Trainer log). In a new process the CNN's first training step took a median 21.5 s in
bfloat16 and 20.9 s in float32, against 1.8 s and 1.7 s with tf_keras on the list. tf_keras is written
for graph mode, as `keras` was, so nothing it computes changes. `models.network` and `models.export`,
the modules that build and trace tf_keras models, apply it on import.
"""

from tensorflow.python.autograph.core import config as autograph_config

TF_KERAS = "tf_keras"


def skip_autograph_in_tf_keras() -> None:
    """Adds tf_keras to AutoGraph's do-not-convert rules (once; AutoGraph reads them on every call)."""
    rules = autograph_config.CONVERSION_RULES
    if not any(isinstance(rule, autograph_config.DoNotConvert) and rule.matches(TF_KERAS) for rule in rules):
        autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert(TF_KERAS), *rules)
