"""The digit CNN, its tf.data input pipeline with augmentation, and the Trainer's `run_fn`."""

import math
import os
from types import ModuleType
from typing import Dict, List, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import features
from models.config import DTYPE_POLICIES, TrainerConfig, resolve_precision
from models.export import PixelDomain, export_model

IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
LABEL_XF = features.transformed_name(features.LABEL_KEY)
BEST_WEIGHTS = "checkpoints/best"
METRICS_CSV = "metrics.csv"

ROTATION_DEGREES = 10.0
ZOOM = 0.1
SHIFT = 0.1


def build_model(learning_rate: float, precision: str = "float32", api: ModuleType = keras) -> keras.Model:
    """Two conv blocks (32x5x5, 64x3x3) with batch norm, then dense 256, softmax over 10 digits.

    `precision` is the layers' dtype policy ("float32" or "mixed_bfloat16": bfloat16 maths, float32
    weights); the softmax stays float32 either way, so probabilities keep full precision. `api` is the
    Keras to build with: tf_keras (what TFT's layer and the export need), or Keras 3 for the training
    benchmark's comparison.
    """
    if precision not in DTYPE_POLICIES:
        raise ValueError(f"Unknown precision {precision!r}: expected one of {', '.join(DTYPE_POLICIES)}")
    layers = api.layers
    inputs = api.Input(shape=(features.IMAGE_SIZE, features.IMAGE_SIZE, 1), name=IMAGE_XF)
    x = inputs
    for filters, kernel in ((32, 5), (64, 3)):
        for _ in range(2):
            x = layers.Conv2D(filters, kernel, padding="same", activation="relu", dtype=precision)(x)
            x = layers.BatchNormalization(dtype=precision)(x)
        x = layers.MaxPooling2D(dtype=precision)(x)
        x = layers.Dropout(0.25, dtype=precision)(x)
    x = layers.Flatten(dtype=precision)(x)
    x = layers.Dense(256, activation="relu", dtype=precision)(x)
    x = layers.BatchNormalization(dtype=precision)(x)
    x = layers.Dropout(0.5, dtype=precision)(x)
    outputs = layers.Dense(
        features.NUM_CLASSES, activation="softmax", name=features.PROBABILITIES_OUTPUT, dtype="float32"
    )(x)
    model = api.Model(inputs, outputs, name="digits_cnn")
    model.compile(
        optimizer=api.optimizers.Adam(learning_rate),
        loss=api.losses.SparseCategoricalCrossentropy(),
        metrics=[api.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def trained_model(run_dir: str) -> keras.Model:
    """The CNN in float32 with a Trainer run's best weights, the ones it exported (for the report's
    feature maps and the TFLite export; the served model is the SavedModel)."""
    model = build_model(learning_rate=1e-3)
    model.load_weights(os.path.join(run_dir, BEST_WEIGHTS)).expect_partial()
    return model


def augment(images: tf.Tensor) -> tf.Tensor:
    """Random rotation (+-10 deg), zoom (0.9-1.1 per axis) and shifts (+-10%) of a batch.

    The three are composed into one affine transform per image and applied in a single resampling
    of the whole batch: one interpolation instead of three, and one op for the batch.
    """
    batch = tf.shape(images)[0]
    size = float(features.IMAGE_SIZE)

    def uniform(bound: float, centre: float = 0.0) -> tf.Tensor:
        return tf.random.uniform([batch], centre - bound, centre + bound)

    angle = uniform(math.radians(ROTATION_DEGREES))
    zoom_x, zoom_y = uniform(ZOOM, 1.0), uniform(ZOOM, 1.0)
    shift_x, shift_y = uniform(SHIFT * size), uniform(SHIFT * size)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Maps each output pixel to the input pixel it samples: rotate and scale about the centre, shift.
    a0, a1 = cos / zoom_x, -sin / zoom_y
    b0, b1 = sin / zoom_x, cos / zoom_y
    centre = (size - 1.0) / 2.0
    a2 = centre - a0 * centre - a1 * centre - shift_x
    b2 = centre - b0 * centre - b1 * centre - shift_y
    zeros = tf.zeros([batch])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def make_dataset(
    file_pattern: List[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    training: bool,
    augment_images: bool = True,
    seed: int = 42,
) -> tf.data.Dataset:
    """Transformed examples -> (images, labels) batches, cached in memory; for training, reshuffled
    every epoch and augmented. One pass per Keras epoch, so no step count needs to be known."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=1024, num_epochs=1, shuffle=False, label_key=LABEL_XF),
        tf_transform_output.transformed_metadata.schema,
    )
    dataset = dataset.map(lambda x, y: (x[IMAGE_XF], y), num_parallel_calls=tf.data.AUTOTUNE)
    return batches(dataset.unbatch(), batch_size, training, augment_images, seed)


def batches(
    examples: tf.data.Dataset, batch_size: int, training: bool, augment_images: bool = True, seed: int = 42
) -> tf.data.Dataset:
    """(image, label) examples -> cached, shuffled (training), batched, augmented (training) batches."""
    dataset = examples.cache()
    if training:
        dataset = dataset.shuffle(60_000, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    if training and augment_images:
        dataset = dataset.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


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
    """One readable progress line per epoch, through absl logging like the rest of the pipeline."""

    def __init__(self, epochs: int):
        super().__init__()
        self._epochs = epochs

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        logs = logs or {}
        lr = float(keras.backend.get_value(self.model.optimizer.learning_rate))
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
    monitor = "val_accuracy"
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode="max",
            patience=config.reduce_lr_patience,
            factor=config.reduce_lr_factor,
            min_lr=config.min_learning_rate,
        ),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.early_stopping_patience),
        keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, BEST_WEIGHTS),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"),
        keras.callbacks.CSVLogger(os.path.join(run_dir, METRICS_CSV)),
        EpochLog(config.epochs),
    ]


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: train on `train`, select on `eval`, export the serving model."""
    config = TrainerConfig.from_custom_config(fn_args.custom_config)
    precision = resolve_precision(config.precision)
    tf.random.set_seed(config.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = make_dataset(
        fn_args.train_files,
        fn_args.data_accessor,
        tf_transform_output,
        config.batch_size,
        training=True,
        augment_images=config.augment,
        seed=config.seed,
    )
    evaluation = make_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, config.batch_size, training=False
    )
    strategy = strategy_for(config.strategy)
    with strategy.scope():
        model = build_model(config.learning_rate, precision)
    run_dir = fn_args.model_run_dir
    logging.info(
        "Training for up to %d epochs on %d replica(s), layers in %s (precision %s); logs in %s",
        config.epochs,
        strategy.num_replicas_in_sync,
        precision,
        config.precision,
        run_dir,
    )
    model.fit(
        train,
        validation_data=evaluation,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=callbacks(config, run_dir),
        verbose=0,
    )
    # The best epoch on `eval`, not the last one, is the model that gets exported.
    model.load_weights(os.path.join(run_dir, BEST_WEIGHTS))
    export_model(model, tf_transform_output, fn_args.serving_model_dir, PixelDomain.from_schema(fn_args.schema_path))
    logging.info("Model exported to %s", fn_args.serving_model_dir)
