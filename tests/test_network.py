"""The CNN (`models.network`): its layers and precision, the deskewing layer, tf_keras left as written."""

import numpy as np
import pytest
import tensorflow as tf

from models import features, inputs, network


def test_cnn_architecture():
    net = network.build_model(1e-3)
    assert net.input_shape == (None, 28, 28, 1) and net.output_shape == (None, features.NUM_CLASSES)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("BatchNormalization") == 5
    assert kinds.count("MaxPooling2D") == 2 and kinds.count("Dropout") == 3
    convs = [layer for layer in net.layers if type(layer).__name__ == "Conv2D"]
    assert [(c.filters, c.kernel_size) for c in convs] == [(32, (5, 5))] * 2 + [(64, (3, 3))] * 2
    probabilities = net(np.random.rand(3, 28, 28, 1).astype("float32"), training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_bfloat16_model_keeps_float32_weights_and_probabilities():
    net = network.build_model(1e-3, "mixed_bfloat16")
    convs = [layer for layer in net.layers if type(layer).__name__ == "Conv2D"]
    assert {c.compute_dtype for c in convs} == {"bfloat16"} and {c.variable_dtype for c in convs} == {"float32"}
    x = np.random.rand(32, 28, 28, 1).astype("float32")
    history = net.fit(x, np.arange(32) % 10, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    probabilities = net(x, training=False)
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)
    # The same weights load into a float32 model (the report's feature maps build one).
    twin = network.build_model(1e-3)
    twin.set_weights(net.get_weights())
    np.testing.assert_allclose(twin(x, training=False).numpy(), probabilities.numpy(), atol=0.05)


def test_autograph_leaves_tf_keras_as_written_and_converts_our_code():
    from tensorflow.python.autograph.impl import conversion

    from models import tracing

    conv = next(
        layer for layer in network.build_model(1e-3, "mixed_bfloat16").layers if "Conv2D" in type(layer).__name__
    )
    assert type(conv).__module__.startswith(tracing.TF_KERAS + ".")
    assert conversion.is_allowlisted(type(conv).call)
    assert not conversion.is_allowlisted(inputs.augment)
    tracing.skip_autograph_in_tf_keras()  # a second call adds no second rule
    rules = [rule for rule in tracing.autograph_config.CONVERSION_RULES if rule.matches(tracing.TF_KERAS)]
    assert len(rules) == 1


def test_unknown_precision():
    with pytest.raises(ValueError, match="Unknown precision 'float16'"):
        network.build_model(1e-3, "float16")


def ink_moments(images: np.ndarray):
    """Per picture: the row and column of its centre of ink, and its slant (columns' covariance with
    rows over the rows' variance)."""
    ink, coords = images[..., 0], np.arange(28.0)
    mass = ink.sum(axis=(1, 2))
    row = (ink * coords[None, :, None]).sum(axis=(1, 2)) / mass
    col = (ink * coords[None, None, :]).sum(axis=(1, 2)) / mass
    dy, dx = coords[None, :, None] - row[:, None, None], coords[None, None, :] - col[:, None, None]
    return row, col, (ink * dx * dy).sum(axis=(1, 2)) / (ink * dy * dy).sum(axis=(1, 2))


def test_deskew_straightens_a_slanted_stroke_and_centres_it():
    """A stroke leaning right, off centre, as a hurried 1 is: upright and centred after, its ink kept.
    An upright centred bar stays where it is, and a blank picture stays blank."""
    pictures = np.zeros((3, 28, 28, 1), np.float32)
    for row in range(4, 24):
        pictures[0, row, 20 - (row - 4) * 8 // 20 : 22 - (row - 4) * 8 // 20, 0] = 1.0  # Leans by 8 px.
    pictures[1, 4:25, 13:16, 0] = 1.0  # Its centre of ink at (14, 14), MNIST's.
    row, col, slant = ink_moments(pictures[:2])
    assert slant[0] < -0.3 and col[0] > 16  # The test's own stroke leans, right of centre.
    straight = network.Deskew()(pictures).numpy()
    row, col, slant = ink_moments(straight[:2])
    np.testing.assert_allclose(slant, 0.0, atol=0.02)
    np.testing.assert_allclose(row, 14.0, atol=0.05)
    np.testing.assert_allclose(col, 14.0, atol=0.05)
    np.testing.assert_allclose(straight[:2].sum(axis=(1, 2, 3)), pictures[:2].sum(axis=(1, 2, 3)), rtol=0.02)
    np.testing.assert_allclose(straight[1], pictures[1], atol=1e-5)
    assert straight[2].sum() == 0.0


def test_a_deskewing_cnn_puts_deskew_first_in_float32():
    net = network.build_model(1e-3, precision="mixed_bfloat16", deskew=True)
    assert isinstance(net.layers[1], network.Deskew) and net.layers[1].compute_dtype == "float32"
    assert net.count_params() == network.build_model(1e-3).count_params()  # Nothing to learn in it.
