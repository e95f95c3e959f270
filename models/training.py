"""The Trainer's `run_fn`: the learning-rate schedule, the distribution strategy and this worker's place
among the workers, the callbacks (progress, logs, the checkpoint that gets exported), warm start, and
the ensemble's members trained one after the other."""

import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, TextIO

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx

from models.config import PLATEAU, TrainerConfig, resolve_precision
from models.export import PixelDomain, export_model
from models.inputs import make_dataset
from models.network import EXPORTED_WEIGHTS, MEMBER_CONFIG, LearningRate, build_model, ensemble_model

METRICS_CSV = "metrics.csv"


def learning_rate(config: TrainerConfig, steps_per_epoch: int) -> LearningRate:
    """The optimizer's learning rate: a number that `plateau`'s callback lowers, or `cosine`'s schedule
    per step (linear warmup from a tenth of the peak, then a half cosine down to zero at the end)."""
    if config.schedule == PLATEAU:
        return config.learning_rate
    warmup = round(config.warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10,
        decay_steps=max(config.epochs * steps_per_epoch - warmup, 1),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate the optimizer applies now, whether it is a number or a schedule."""
    rate = optimizer.learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    return float(keras.backend.get_value(rate))


def strategy_for(name: str) -> tf.distribute.Strategy:
    """`mirrored` replicates over every GPU, or over every logical CPU device when there is none."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown training strategy {name!r}: expected default, mirrored or multi_worker_mirrored")


class EpochLog(keras.callbacks.Callback):
    """One readable progress line per epoch, through absl logging like the rest of the pipeline; on an
    interactive terminal also a live bar during each epoch: steps, images per second, time left (from
    the second epoch on, once an epoch's length is known) and the running loss."""

    REFRESH_SECONDS = 0.5

    def __init__(self, epochs: int, batch_size: int, stream: Optional[TextIO] = None):
        super().__init__()
        self._epochs = epochs
        self._batch_size = batch_size
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty()
        self._epoch = self._step = 0
        self._steps: Optional[int] = None
        """Steps per epoch: from `fit` when it knows them, else once an epoch has ended."""
        self._started = self._shown = 0.0

    def on_train_begin(self, logs: Optional[Dict[str, float]] = None) -> None:
        self._steps = self.params.get("steps")

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        self._epoch, self._step = epoch, 0
        self._started = self._shown = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, float]] = None) -> None:
        self._step = batch + 1
        now = time.monotonic()
        if self._live and now - self._shown >= self.REFRESH_SECONDS:
            self._shown = now
            self._stream.write("\r\033[K" + self.bar(self._step, now - self._started, (logs or {}).get("loss")))
            self._stream.flush()

    def bar(self, step: int, seconds: float, loss: Optional[float]) -> str:
        """`Epoch 3/10 [#####---------------] 108/430 steps, 1,234 images/s, 33 s left, loss 0.1234`."""
        rate = step * self._batch_size / max(seconds, 1e-9)
        if self._steps:
            filled = round(20 * min(step / self._steps, 1.0))
            left = max(self._steps - step, 0) * seconds / max(step, 1)
            bar = "#" * filled + "-" * (20 - filled)
            where = f"[{bar}] {step}/{self._steps} steps, {rate:,.0f} images/s, {left:.0f} s left"
        else:
            where = f"{step} steps, {rate:,.0f} images/s"
        return f"Epoch {self._epoch + 1}/{self._epochs} {where}" + ("" if loss is None else f", loss {loss:.4f}")

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        if self._live:
            self._stream.write("\r\033[K")  # The bar gives way to the epoch's line.
            self._stream.flush()
        self._steps = self._steps or self._step
        logs = logs or {}
        lr = current_learning_rate(self.model.optimizer)
        logging.info(
            "Epoch %d/%d: loss %.4f accuracy %.4f, val_loss %.4f val_accuracy %.4f, lr %.2g",
            epoch + 1,
            self._epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
            lr,
        )


def callbacks(config: TrainerConfig, run_dir: str) -> List[keras.callbacks.Callback]:
    """Progress, logs, and the checkpoint of the weights that get exported.

    `plateau` (the notebook's way) lowers the rate and stops when `eval` accuracy stalls, and exports its
    best epoch on `eval`. `cosine` runs every epoch and exports the last, where its rate ends at zero:
    on `eval`'s 5,000 digits the late epochs are within noise of each other (one digit is 0.02 points),
    so a best-on-`eval` pick among them is mostly noise, and it tends to land on epochs from the middle of
    the schedule, still at a high rate (where early stopping would also end the run). Every worker keeps
    the same weights, when there are several."""
    logs = [
        keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"),
        keras.callbacks.CSVLogger(os.path.join(run_dir, METRICS_CSV)),
        EpochLog(config.epochs, config.batch_size),
    ]
    checkpoint = os.path.join(run_dir, EXPORTED_WEIGHTS)
    if config.schedule != PLATEAU:  # Saved after every epoch: the last one's stay.
        return [keras.callbacks.ModelCheckpoint(checkpoint, save_weights_only=True), *logs]
    monitor = "val_accuracy"
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode="max",
            patience=config.reduce_lr_patience,
            factor=config.reduce_lr_factor,
            min_lr=config.min_learning_rate,
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=config.early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(
            checkpoint, monitor=monitor, mode="max", save_best_only=True, save_weights_only=True
        ),
        *logs,
    ]


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place among the workers TF_CONFIG names (one, when it names none)."""

    index: int
    count: int
    chief: bool
    """The one worker that writes the model and the logs: `chief`, else worker 0."""

    @classmethod
    def of(cls, strategy: tf.distribute.Strategy) -> "Worker":
        resolver = getattr(strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type:
            return cls(0, 1, True)
        cluster = resolver.cluster_spec().as_dict()
        count = sum(len(tasks) for kind, tasks in cluster.items() if kind in ("chief", "worker"))
        has_chief = "chief" in cluster
        index = resolver.task_id + (1 if has_chief and resolver.task_type == "worker" else 0)
        return cls(index, count, resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0))


def warm_start(model: keras.Model, base_model: Optional[str]) -> bool:
    """Starts `model` from a served model's weights (its SavedModel's variables), if there is one:
    the exported model is the CNN itself, so its variables load back into a fresh CNN."""
    variables = os.path.join(base_model, "variables", "variables") if base_model else ""
    if not variables or not tf.io.gfile.exists(variables + ".index"):
        return False
    model.load_weights(variables).expect_partial()
    # Keras loads what matches and says nothing of the rest: every weight must now be a served one.
    saved = tf.train.load_checkpoint(variables)
    values = [np.asarray(saved.get_tensor(name)) for name in saved.get_variable_to_shape_map()]
    if not all(any(v.shape == w.shape and np.array_equal(v, w) for v in values) for w in model.get_weights()):
        raise ValueError(
            f"{base_model}: the served model is not one CNN of this shape (an ensemble?), so its weights "
            "cannot start this one; train from scratch (without --warm-start)"
        )
    return True


def member_dir(run_dir: str, index: int) -> str:
    """Where ensemble member `index` (from 0) keeps its logs and exported weights: the first where a single
    CNN keeps them (so the report's curves and feature maps are its), the others in folders below."""
    return run_dir if index == 0 else os.path.join(run_dir, f"member-{index + 1}")


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: train on `train`, select on `eval`, export the serving model.

    An ensemble's members train one after the other, each from its own seed; the export averages them.
    With several workers (multi_worker_mirrored), every worker runs this: they train one model
    together, and only the chief writes where the pipeline reads (the others keep their checkpoints,
    which every worker must write, in a scratch folder they remove)."""
    config = TrainerConfig.from_custom_config(fn_args.custom_config)
    strategy = strategy_for(config.strategy)  # First: collective ops must be set up before other ops.
    worker = Worker.of(strategy)
    scratch = None if worker.chief else tempfile.mkdtemp(prefix=f"worker-{worker.index}-")
    run_dir = fn_args.model_run_dir if scratch is None else os.path.join(scratch, "run")
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    steps = config.steps_per_epoch or epoch_steps(fn_args, tf_transform_output, config.batch_size)
    logging.info("Epochs of %d steps (learning rate: %s)", steps, config.schedule)
    if config.ensemble > 1:
        logging.info("Ensemble: %d CNNs, seeds %d-%d", config.ensemble, config.seed, config.seed + config.ensemble - 1)
    members = [
        train_member(
            config.member(index),
            fn_args,
            tf_transform_output,
            strategy,
            worker,
            member_dir(run_dir, index),
            steps,
            f"digits_cnn_{index + 1}" if config.ensemble > 1 else "digits_cnn",
        )
        for index in range(config.ensemble)
    ]
    if scratch is not None:
        tf.io.gfile.rmtree(scratch)
        # TFX's Trainer executor requires the model folder on every worker; on a cluster all workers
        # share it, and the chief fills it.
        tf.io.gfile.makedirs(fn_args.serving_model_dir)
        return
    export_model(
        members[0] if len(members) == 1 else ensemble_model(members),
        tf_transform_output,
        fn_args.serving_model_dir,
        PixelDomain.from_schema(fn_args.schema_path),
        class_names=config.class_names,
        test_time_rotation=config.test_time_rotation,
    )
    tta = f", with test-time augmentation (each picture also rotated by +-{config.test_time_rotation:g} degrees)"
    logging.info("Model exported to %s%s", fn_args.serving_model_dir, tta if config.test_time_rotation else "")


def epoch_steps(fn_args: tfx.components.FnArgs, tf_transform_output: tft.TFTransformOutput, batch_size: int) -> int:
    """Batches in one pass over `train`: the same on every worker (each reads all of it here, and in
    training every worker gets its share of each batch), so that they take their steps together."""
    plain = make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, batch_size, training=False)
    return int(plain.reduce(0, lambda count, _: count + 1))


def train_member(
    config: TrainerConfig,
    fn_args: tfx.components.FnArgs,
    tf_transform_output: tft.TFTransformOutput,
    strategy: tf.distribute.Strategy,
    worker: Worker,
    run_dir: str,
    steps: int,
    name: str,
) -> keras.Model:
    """One CNN trained from `config.seed` (warm-started when the Trainer got a base model and trains a
    single CNN), with the weights to export (see `callbacks`), as a plain model that can be exported."""
    precision = resolve_precision(config.precision)
    tf.random.set_seed(config.seed)
    train = make_dataset(
        fn_args.train_files,
        fn_args.data_accessor,
        tf_transform_output,
        config.batch_size,
        training=True,
        augmentation=config.augmentation,
        seed=config.seed,
    )
    evaluation = make_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, config.batch_size, training=False
    )
    with strategy.scope():
        model = build_model(learning_rate(config, steps), precision, name=name, deskew=config.deskew)
        if fn_args.base_model is not None:  # Warm start asked for (the Trainer got a base model).
            if config.ensemble > 1:
                logging.info("Warm start: not for an ensemble's members, training %s from scratch", name)
            elif warm_start(model, fn_args.base_model):
                logging.info("Warm start: from the weights of the served model %s", fn_args.base_model)
            else:
                logging.info("Warm start: no model served yet, training from scratch")
    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, MEMBER_CONFIG), "w") as f:
        json.dump(config.as_custom_config(), f, indent=2)
    logging.info(
        "Training %s (seed %d, rate %g, %s%s) for up to %d epochs on %d replica(s) (worker %d of %d%s), "
        "layers in %s (precision %s); logs in %s",
        name,
        config.seed,
        config.learning_rate,
        config.augmentation,
        ", deskewed" if config.deskew else "",
        config.epochs,
        strategy.num_replicas_in_sync,
        worker.index,
        worker.count,
        ", the chief" if worker.chief and worker.count > 1 else "",
        precision,
        config.precision,
        run_dir,
    )
    # One input iterator for the whole training, not one per epoch (Keras' way when it does not know
    # the epoch's length): whatever an iterator costs to make and to end is paid once. Ending one
    # waits on tf.data's autotuning, which cost ~20 s at the start of about half the epochs (see
    # `models.inputs.batches`, which turns autotuning off).
    model.fit(
        train.repeat(),
        validation_data=evaluation,
        epochs=config.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks(config, run_dir),
        verbose=0,
    )
    if strategy is not tf.distribute.get_strategy():
        # Distributed variables cannot be saved in serving signatures: the weights (read by every worker
        # together, as batch norm's statistics are reduced across replicas) go into a plain copy.
        weights = model.get_weights()
        # For serving only: the rate is not used.
        model = build_model(config.learning_rate, precision, name=name, deskew=config.deskew)
        model.set_weights(weights)
    return model
