"""The CNN, the batch augmentation and the training strategies."""

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import config as model_config
from models import features, model
from models.config import (
    DIGIT_AUGMENTATION,
    NO_AUGMENTATION,
    NOTEBOOK_AUGMENTATION,
    Augmentation,
    Member,
    TrainerConfig,
)
from pipeline import configs
from tests import support


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


def test_autograph_leaves_tf_keras_as_written_and_converts_our_code():
    from tensorflow.python.autograph.impl import conversion

    from models import tracing

    conv = next(layer for layer in model.build_model(1e-3, "mixed_bfloat16").layers if "Conv2D" in type(layer).__name__)
    assert type(conv).__module__.startswith(tracing.TF_KERAS + ".")
    assert conversion.is_allowlisted(type(conv).call)
    assert not conversion.is_allowlisted(model.augment)
    tracing.skip_autograph_in_tf_keras()  # a second call adds no second rule
    rules = [rule for rule in tracing.autograph_config.CONVERSION_RULES if rule.matches(tracing.TF_KERAS)]
    assert len(rules) == 1


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
    out = model.augment(images, NOTEBOOK_AUGMENTATION).numpy()
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
    out = model.augment(_digit_batch(256), NOTEBOOK_AUGMENTATION).numpy()[..., 0]
    cols = np.arange(28)
    centre_x = (out.sum(axis=1) * cols).sum(axis=1) / out.sum(axis=(1, 2))
    base = 13.5
    assert np.abs(centre_x - base).max() < 0.1 * 28 + 1.5
    assert np.abs(centre_x - base).max() > 1.0  # and they do shift.


def test_noise_has_a_random_strength_per_picture_and_stays_in_range():
    tf.random.set_seed(3)
    still = dataclasses.replace(NO_AUGMENTATION, noise=DIGIT_AUGMENTATION.noise)
    images = np.full((512, 28, 28, 1), 0.5, np.float32)
    out = model.augment(tf.constant(images), still).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    sigmas = (out - images).reshape(len(out), -1).std(axis=1) * 255
    # Each picture its own sigma, spread evenly between 0 and the setting (30 grey levels).
    assert sigmas.max() == pytest.approx(DIGIT_AUGMENTATION.noise, abs=2) and sigmas.min() < 2
    assert np.median(sigmas) == pytest.approx(DIGIT_AUGMENTATION.noise / 2, abs=3)
    np.testing.assert_array_equal(model.augment(tf.constant(images), NO_AUGMENTATION).numpy(), images)


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
    straight = model.Deskew()(pictures).numpy()
    row, col, slant = ink_moments(straight[:2])
    np.testing.assert_allclose(slant, 0.0, atol=0.02)
    np.testing.assert_allclose(row, 14.0, atol=0.05)
    np.testing.assert_allclose(col, 14.0, atol=0.05)
    np.testing.assert_allclose(straight[:2].sum(axis=(1, 2, 3)), pictures[:2].sum(axis=(1, 2, 3)), rtol=0.02)
    np.testing.assert_allclose(straight[1], pictures[1], atol=1e-5)
    assert straight[2].sum() == 0.0


def test_a_deskewing_cnn_puts_deskew_first_in_float32():
    net = model.build_model(1e-3, precision="mixed_bfloat16", deskew=True)
    assert isinstance(net.layers[1], model.Deskew) and net.layers[1].compute_dtype == "float32"
    assert net.count_params() == model.build_model(1e-3).count_params()  # Nothing to learn in it.


def test_cosine_schedule_warms_up_then_falls_to_nothing():
    config = TrainerConfig(epochs=5, learning_rate=1e-3, schedule="cosine", warmup_epochs=1)
    rate = model.learning_rate(config, steps_per_epoch=100)
    at = [float(rate(step)) for step in (0, 50, 100, 300, 500)]
    assert at[0] == pytest.approx(1e-4) and at[1] == pytest.approx(5.5e-4) and at[2] == pytest.approx(1e-3)
    assert at[3] == pytest.approx(5e-4) and at[4] == pytest.approx(0.0, abs=1e-9)
    net = model.build_model(rate)
    assert model.current_learning_rate(net.optimizer) == pytest.approx(1e-4)
    # The schedule owns the rate and runs to its end: no plateau callback to fight it, no early stopping;
    # `plateau` keeps both.
    kinds = {type(c).__name__ for c in model.callbacks(config, "/tmp/unused")}
    assert not {"ReduceLROnPlateau", "EarlyStopping"} & kinds and "ModelCheckpoint" in kinds
    plateau = dataclasses.replace(config, schedule="plateau")
    assert model.learning_rate(plateau, 100) == 1e-3
    assert {"ReduceLROnPlateau", "EarlyStopping"} <= {type(c).__name__ for c in model.callbacks(plateau, "/tmp/unused")}
    with pytest.raises(ValueError, match="Unknown learning-rate schedule 'step'"):
        TrainerConfig(epochs=1, schedule="step")


def test_a_cosine_schedule_keeps_and_checkpoints_its_last_epoch(tmp_path):
    """Validation on labels that disagree with training makes `eval` accuracy rise and fall at random;
    every epoch runs, and the weights kept, in the model and in the checkpoint, are the last epoch's."""
    config = TrainerConfig(epochs=4, batch_size=16, schedule="cosine", precision="float32")
    net = model.build_model(model.learning_rate(config, steps_per_epoch=4))
    x = np.random.RandomState(0).rand(64, 28, 28, 1).astype("float32")
    shuffled = np.random.RandomState(1).permutation(64) % 10
    last: list = []

    class LastEpoch(model.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last[:] = [np.array(w) for w in self.model.get_weights()]

    history = net.fit(
        x,
        np.arange(64) % 10,
        batch_size=16,
        epochs=config.epochs,
        validation_data=(x, shuffled),
        callbacks=[*model.callbacks(config, str(tmp_path)), LastEpoch()],
        verbose=0,
    )
    assert len(history.history["val_accuracy"]) == config.epochs
    exported = model.trained_model(str(tmp_path))
    for kept in (net.get_weights(), exported.get_weights()):
        assert all(np.array_equal(k, w) for k, w in zip(kept, last))


@pytest.mark.parametrize("flip", [False, True])
def test_mirroring_is_a_setting_for_clothes_never_digits(flip):
    tf.random.set_seed(3)
    images = np.zeros((400, 28, 28, 1), np.float32)
    images[:, 6:22, 3:9, 0] = 1.0  # A bar well left of the middle.
    out = model.augment(tf.constant(images), Augmentation(flip=flip)).numpy()[..., 0]
    centre_x = (out.sum(axis=1) * np.arange(28)).sum(axis=1) / out.sum(axis=(1, 2))
    mirrored = (centre_x > 13.5).mean()
    assert (0.35 < mirrored < 0.65) if flip else mirrored == 0.0, mirrored


class _Terminal(io.StringIO):
    def __init__(self, interactive: bool):
        super().__init__()
        self.interactive = interactive

    def isatty(self) -> bool:
        return self.interactive


@pytest.mark.parametrize("training", [True, False])
def test_input_batches_are_not_autotuned(training):
    """tf.data's autotuning thread sleeps up to a minute at a time and an iterator's end waits for it:
    the Trainer sat idle that long at the end of `fit` (BENCHMARKS.md, session 20)."""
    x, y = np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 10
    data = model.batches(tf.data.Dataset.from_tensor_slices((x, y)), 8, training)
    assert data.options().autotune.enabled is False
    assert [len(labels) for _, labels in data] == [8, 8, 4]


@pytest.mark.parametrize("interactive,steps_known", [(True, True), (True, False), (False, True)])
def test_training_progress_is_a_live_bar_only_on_a_terminal(interactive, steps_known):
    """Steps, images per second, time left once an epoch's length is known (from `fit`, or after the
    first epoch), and the loss; one line per epoch (through the log) either way."""
    stream = _Terminal(interactive)
    net = model.build_model(1e-3)
    x, y = np.zeros((96, 28, 28, 1), np.float32), np.arange(96) % 10
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    if not steps_known:
        data = data.filter(lambda *_: True)  # Of unknown length, as TFXIO's datasets are.
    progress = model.EpochLog(epochs=2, batch_size=8, stream=stream)
    progress.REFRESH_SECONDS = 0.0
    net.fit(data, epochs=2, verbose=0, callbacks=[progress])
    written = stream.getvalue()
    if not interactive:
        assert written == ""
        return
    first = "Epoch 1/2 [####################] 12/12 steps, " if steps_known else "Epoch 1/2 12 steps, "
    assert first in written and " images/s, " in written and ", loss " in written
    assert "Epoch 2/2 [####################] 12/12 steps, " in written and " s left, loss " in written
    assert written.endswith("\r\033[K")  # The last bar is cleared for the epoch's line.


@pytest.mark.e2e
def test_warm_start_loads_the_served_models_weights(served_model, tmp_path):
    saved = tf.train.load_checkpoint(os.path.join(served_model, "variables", "variables"))
    saved_values = [np.asarray(saved.get_tensor(name)) for name in saved.get_variable_to_shape_map()]

    def weights_served(net) -> bool:
        """Every weight of the CNN is, value for value, one of the served model's variables."""
        return all(any(v.shape == w.shape and np.array_equal(v, w) for v in saved_values) for w in net.get_weights())

    fresh = model.build_model(1e-3)
    assert model.warm_start(fresh, str(tmp_path)) is False  # Nothing served there: from scratch.
    assert model.warm_start(fresh, None) is False
    assert not weights_served(fresh)
    assert model.warm_start(fresh, served_model) is True
    assert weights_served(fresh)


@pytest.mark.e2e
def test_an_ensemble_exports_the_average_of_its_cnns(smoke_run, served_model, tmp_path, caplog):
    """Two CNNs from two seeds and settings, trained by TFX's Trainer executor on the smoke run's data:
    the export has a single CNN's signatures and answers with the mean of the members' probabilities."""
    from benchmarks import mnist
    from tests import trainer_worker

    config = TrainerConfig(
        epochs=1,
        batch_size=32,
        steps_per_epoch=12,
        precision="float32",
        ensemble=2,
        seed=7,
        members=(Member(), Member(learning_rate=3e-3, augmentation=NO_AUGMENTATION, deskew=True)),
    )
    caplog.set_level(logging.INFO)
    trainer_worker.main(support.trainer_job(smoke_run[1], tmp_path, config))
    trained = [record.getMessage() for record in caplog.records if "Training digits_cnn" in record.getMessage()]
    assert len(trained) == 2
    assert trained[0].startswith(f"Training digits_cnn_1 (seed 7, rate 0.001, {DIGIT_AUGMENTATION}) for")
    assert trained[1].startswith(f"Training digits_cnn_2 (seed 8, rate 0.003, {NO_AUGMENTATION}, deskewed) for")
    export = tf.saved_model.load(str(tmp_path / "model" / "Format-Serving"))
    single = tf.saved_model.load(served_model)
    assert set(export.signatures) == set(single.signatures)

    _, pixels, _ = support.pipeline_test_digits(smoke_run[0], 64)
    images = tf.constant(mnist.scaled(pixels))
    runs = [model.member_dir(str(tmp_path / "model_run"), index) for index in range(2)]
    assert all(os.path.exists(os.path.join(run, model.METRICS_CSV)) for run in runs)
    rebuilt = [model.trained_model(run) for run in runs]  # As each member's own settings say.
    assert [any(isinstance(layer, model.Deskew) for layer in net.layers) for net in rebuilt] == [False, True]
    members = [net(images, training=False).numpy() for net in rebuilt]
    assert not np.allclose(members[0], members[1], atol=1e-3)  # Two seeds, two different CNNs.
    served = export.signatures[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels)})
    np.testing.assert_allclose(served[features.PROBABILITIES_OUTPUT].numpy(), np.mean(members, axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="not one CNN"):  # Its weights cannot warm-start a single CNN.
        model.warm_start(model.build_model(1e-3), str(tmp_path / "model" / "Format-Serving"))


def test_ensemble_members_have_their_own_seed_and_settings():
    wider = Augmentation(rotation_degrees=15.0)
    members = (Member(augmentation=wider), Member(learning_rate=3e-3, deskew=True))
    config = TrainerConfig(epochs=2, learning_rate=1e-3, seed=5, ensemble=3, members=members)
    assert [(m.seed, m.learning_rate, m.augmentation, m.deskew, m.members) for m in map(config.member, range(3))] == [
        (5, 1e-3, wider, False, ()),
        (6, 3e-3, DIGIT_AUGMENTATION, True, ()),
        (7, 1e-3, DIGIT_AUGMENTATION, False, ()),  # Past the members' settings: the ensemble's own.
    ]
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(config.as_custom_config()))) == config
    ensemble = configs.PROFILES["ensemble"].trainer
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(ensemble.as_custom_config()))) == ensemble
    assert len({(m.learning_rate, m.augmentation) for m in map(ensemble.member, range(ensemble.ensemble))}) > 1
    with pytest.raises(ValueError, match="Settings for 2 members of an ensemble of 1 CNNs"):
        TrainerConfig(epochs=1, members=(Member(), Member()))


def test_an_ensemble_is_not_warm_started():
    with pytest.raises(ValueError, match="from scratch"):
        configs.settings("ensemble", warm_start=True)
    with pytest.raises(ValueError, match="at least 1"):
        TrainerConfig(epochs=1, ensemble=0)


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
    named = TrainerConfig(
        epochs=1,
        class_names=tuple("abcdefghij"),
        augmentation=Augmentation(0.0, 0.0, 0.05, True),
        test_time_rotation=6.0,
    )
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(named.as_custom_config()))) == named
    with pytest.raises(ValueError, match="3 class names, the CNN has 10 classes"):
        TrainerConfig(epochs=1, class_names=("a", "b", "c"))
    # The keys of TFX's cloud training extension share the Trainer's custom_config.
    extended = {**config.as_custom_config(), "ai_platform_training_args": {"project": "p"}}
    assert TrainerConfig.from_custom_config(extended) == config


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
