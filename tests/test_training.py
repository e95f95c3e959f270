"""The Trainer's `run_fn` (`models.training`): the learning-rate schedules and callbacks, the progress
bar, warm start, the ensemble's members and the training strategies."""

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
import tf_keras as keras

from models import features, network, training
from models.config import DIGIT_AUGMENTATION, NO_AUGMENTATION, Member, TrainerConfig
from tests import support


def test_cosine_schedule_warms_up_then_falls_to_nothing():
    config = TrainerConfig(epochs=5, learning_rate=1e-3, schedule="cosine", warmup_epochs=1)
    rate = training.learning_rate(config, steps_per_epoch=100)
    at = [float(rate(step)) for step in (0, 50, 100, 300, 500)]
    assert at[0] == pytest.approx(1e-4) and at[1] == pytest.approx(5.5e-4) and at[2] == pytest.approx(1e-3)
    assert at[3] == pytest.approx(5e-4) and at[4] == pytest.approx(0.0, abs=1e-9)
    net = network.build_model(rate)
    assert training.current_learning_rate(net.optimizer) == pytest.approx(1e-4)
    # The schedule owns the rate and runs to its end: no plateau callback to fight it, no early stopping;
    # `plateau` keeps both.
    kinds = {type(c).__name__ for c in training.callbacks(config, "/tmp/unused")}
    assert not {"ReduceLROnPlateau", "EarlyStopping"} & kinds and "ModelCheckpoint" in kinds
    plateau = dataclasses.replace(config, schedule="plateau")
    assert training.learning_rate(plateau, 100) == 1e-3
    assert {"ReduceLROnPlateau", "EarlyStopping"} <= {
        type(c).__name__ for c in training.callbacks(plateau, "/tmp/unused")
    }
    with pytest.raises(ValueError, match="Unknown learning-rate schedule 'step'"):
        TrainerConfig(epochs=1, schedule="step")


@pytest.mark.component  # Trains a small model for a few epochs.
def test_a_cosine_schedule_keeps_and_checkpoints_its_last_epoch(tmp_path):
    """Validation on labels that disagree with training makes `eval` accuracy rise and fall at random;
    every epoch runs, and the weights kept, in the model and in the checkpoint, are the last epoch's."""
    config = TrainerConfig(epochs=4, batch_size=16, schedule="cosine", precision="float32")
    net = network.build_model(training.learning_rate(config, steps_per_epoch=4))
    x = np.random.RandomState(0).rand(64, 28, 28, 1).astype("float32")
    shuffled = np.random.RandomState(1).permutation(64) % 10
    last: list = []

    class LastEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last[:] = [np.array(w) for w in self.model.get_weights()]

    history = net.fit(
        x,
        np.arange(64) % 10,
        batch_size=16,
        epochs=config.epochs,
        validation_data=(x, shuffled),
        callbacks=[*training.callbacks(config, str(tmp_path)), LastEpoch()],
        verbose=0,
    )
    assert len(history.history["val_accuracy"]) == config.epochs
    exported = network.trained_model(str(tmp_path))
    for kept in (net.get_weights(), exported.get_weights()):
        assert all(np.array_equal(k, w) for k, w in zip(kept, last))


class _Terminal(io.StringIO):
    def __init__(self, interactive: bool):
        super().__init__()
        self.interactive = interactive

    def isatty(self) -> bool:
        return self.interactive


@pytest.mark.component  # Trains a small model for an epoch.
@pytest.mark.parametrize("interactive,steps_known", [(True, True), (True, False), (False, True)])
def test_training_progress_is_a_live_bar_only_on_a_terminal(interactive, steps_known):
    """Steps, images per second, time left once an epoch's length is known (from `fit`, or after the
    first epoch), and the loss; one line per epoch (through the log) either way."""
    stream = _Terminal(interactive)
    net = network.build_model(1e-3)
    x, y = np.zeros((96, 28, 28, 1), np.float32), np.arange(96) % 10
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    if not steps_known:
        data = data.filter(lambda *_: True)  # Of unknown length, as TFXIO's datasets are.
    progress = training.EpochLog(epochs=2, batch_size=8, stream=stream)
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

    fresh = network.build_model(1e-3)
    assert training.warm_start(fresh, str(tmp_path)) is False  # Nothing served there: from scratch.
    assert training.warm_start(fresh, None) is False
    assert not weights_served(fresh)
    assert training.warm_start(fresh, served_model) is True
    assert weights_served(fresh)


@pytest.mark.e2e
def test_an_ensemble_exports_the_average_of_its_cnns(smoke_run, served_model, tmp_path, caplog):
    """Two CNNs from two seeds and settings, trained by TFX's Trainer executor on the smoke run's data:
    the export has a single CNN's signatures and answers with the mean of the members' probabilities."""
    from pipeline import mnist
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
    runs = [training.member_dir(str(tmp_path / "model_run"), index) for index in range(2)]
    assert all(os.path.exists(os.path.join(run, training.METRICS_CSV)) for run in runs)
    rebuilt = [network.trained_model(run) for run in runs]  # As each member's own settings say.
    assert [any(isinstance(layer, network.Deskew) for layer in net.layers) for net in rebuilt] == [False, True]
    members = [net(images, training=False).numpy() for net in rebuilt]
    assert not np.allclose(members[0], members[1], atol=1e-3)  # Two seeds, two different CNNs.
    served = export.signatures[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels)})
    np.testing.assert_allclose(served[features.PROBABILITIES_OUTPUT].numpy(), np.mean(members, axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="not one CNN"):  # Its weights cannot warm-start a single CNN.
        training.warm_start(network.build_model(1e-3), str(tmp_path / "model" / "Format-Serving"))


def test_unknown_strategy():
    with pytest.raises(ValueError, match="Unknown training strategy 'tpu'"):
        training.strategy_for("tpu")


MIRRORED_SCRIPT = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from models import network, training
strategy = training.strategy_for("mirrored")
with strategy.scope():
    net = network.build_model(1e-3)
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
