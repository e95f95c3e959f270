"""The CNN, the batch augmentation and the training strategies."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import config as model_config
from models import features, model
from models.config import TrainerConfig


def test_cnn_architecture():
    net = model.build_model(1e-3)
    assert net.input_shape == (None, 28, 28, 1) and net.output_shape == (None, features.NUM_CLASSES)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("BatchNormalization") == 5
    assert kinds.count("MaxPooling2D") == 2 and kinds.count("Dropout") == 3
    convs = [layer for layer in net.layers if type(layer).__name__ == "Conv2D"]
    assert [(c.filters, c.kernel_size) for c in convs] == [(32, (5, 5))] * 2 + [(64, (3, 3))] * 2
    probabilities = net(np.random.rand(3, 28, 28, 1).astype("float32"), training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_bfloat16_model_keeps_float32_weights_and_probabilities():
    net = model.build_model(1e-3, "mixed_bfloat16")
    convs = [layer for layer in net.layers if type(layer).__name__ == "Conv2D"]
    assert {c.compute_dtype for c in convs} == {"bfloat16"} and {c.variable_dtype for c in convs} == {"float32"}
    x = np.random.rand(32, 28, 28, 1).astype("float32")
    history = net.fit(x, np.arange(32) % 10, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    probabilities = net(x, training=False)
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)
    # The same weights load into a float32 model (the report's feature maps build one).
    twin = model.build_model(1e-3)
    twin.set_weights(net.get_weights())
    np.testing.assert_allclose(twin(x, training=False).numpy(), probabilities.numpy(), atol=0.05)


def test_unknown_precision():
    with pytest.raises(ValueError, match="Unknown precision 'float16'"):
        model.build_model(1e-3, "float16")


def _digit_batch(n: int = 64) -> tf.Tensor:
    images = np.zeros((n, 28, 28, 1), np.float32)
    images[:, 9:19, 11:17, 0] = 1.0
    return tf.constant(images)


def test_augment_moves_pixels_but_keeps_the_digit():
    tf.random.set_seed(1)
    images = _digit_batch()
    out = model.augment(images).numpy()
    assert out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    changed = np.abs(out - images.numpy()).reshape(len(out), -1).max(axis=1)
    assert (changed > 0.1).mean() > 0.9  # Nearly every image is transformed...
    mass = out.reshape(len(out), -1).sum(axis=1) / images.numpy()[0].sum()
    # ...but zoom within 0.9-1.1 per axis and shifts of 10% keep the digit inside the frame.
    assert mass.min() > 0.75 and mass.max() < 1.3


def test_augment_bounds():
    """Shifts stay within 10% of the width: the centre of mass moves at most ~2.8 px + rotation/zoom."""
    tf.random.set_seed(2)
    out = model.augment(_digit_batch(256)).numpy()[..., 0]
    cols = np.arange(28)
    centre_x = (out.sum(axis=1) * cols).sum(axis=1) / out.sum(axis=(1, 2))
    base = 13.5
    assert np.abs(centre_x - base).max() < 0.1 * 28 + 1.5
    assert np.abs(centre_x - base).max() > 1.0  # and they do shift.


def test_unknown_strategy():
    with pytest.raises(ValueError, match="Unknown training strategy 'tpu'"):
        model.strategy_for("tpu")


def test_trainer_config_checks_its_choices_and_crosses_as_json():
    config = TrainerConfig(epochs=3, precision="float32", strategy="mirrored", seed=7)
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(config.as_custom_config()))) == config
    with pytest.raises(ValueError, match="Unknown precision 'float16'"):
        TrainerConfig(epochs=1, precision="float16")
    with pytest.raises(ValueError, match="Unknown training strategy 'tpu'"):
        TrainerConfig(epochs=1, strategy="tpu")


@pytest.mark.parametrize(
    "flags, native",
    [
        ("fpu vme avx2 fma avx512f avx512_bf16 amx_tile", True),
        ("fpu vme avx2 fma amx_bf16 amx_tile", True),
        ("fpu vme avx2 fma avx512f avx512bw", False),
    ],
)
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(tmp_path, monkeypatch, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert model_config.cpu_has_bfloat16(str(cpuinfo)) is native
    monkeypatch.setattr(model_config, "cpu_has_bfloat16", lambda: native)
    assert model_config.resolve_precision("auto") == ("mixed_bfloat16" if native else "float32")
    assert model_config.resolve_precision("float32") == "float32"
    assert model_config.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_no_cpuinfo_means_float32(tmp_path):
    assert model_config.cpu_has_bfloat16(str(tmp_path / "missing")) is False


MIRRORED_SCRIPT = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from models import model
strategy = model.strategy_for("mirrored")
with strategy.scope():
    net = model.build_model(1e-3)
x = np.random.rand(64, 28, 28, 1).astype("float32")
y = np.arange(64) % 10
history = net.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"][0],
                  "devices": list(strategy.extended.worker_devices)}))
"""


@pytest.mark.component
def test_mirrored_strategy_on_two_logical_cpus():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and len(result["devices"]) == 2
    assert np.isfinite(result["loss"])
