"""The Trainer's input pipeline: transformed examples to cached, shuffled, batched pictures, with the
training batches augmented (random rotation, zoom, shift, mirror and noise) in one resampling."""

import math
from typing import List

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import features, geometry
from models.config import DEFAULT_SEED, DIGIT_AUGMENTATION, NO_AUGMENTATION, Augmentation

IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
LABEL_XF = features.transformed_name(features.LABEL_KEY)


def augment(images: tf.Tensor, augmentation: Augmentation = DIGIT_AUGMENTATION) -> tf.Tensor:
    """Random rotation, zoom and shifts of a batch of [0, 1] pictures (by default +-10 deg, 0.9-1.1 per
    axis, +-10%), with `flip` a left-right mirror of half of the images on average, and with `noise`
    Gaussian noise of a random strength per picture.

    The moves are composed into one affine transform per image and applied in a single resampling of
    the whole batch: one interpolation instead of several, and one op for the batch.
    """
    batch = tf.shape(images)[0]
    size = float(features.IMAGE_SIZE)

    def uniform(bound: float, centre: float = 0.0) -> tf.Tensor:
        return tf.random.uniform([batch], centre - bound, centre + bound)

    angle = uniform(math.radians(augmentation.rotation_degrees))
    zoom_x, zoom_y = uniform(augmentation.zoom, 1.0), uniform(augmentation.zoom, 1.0)
    shift_x, shift_y = uniform(augmentation.shift * size), uniform(augmentation.shift * size)
    if augmentation.flip:  # A mirror is a zoom of -1 along x.
        zoom_x = zoom_x * tf.where(tf.random.uniform([batch]) < 0.5, -1.0, 1.0)
    moved = geometry.moved(images, angle, zoom_x, zoom_y, shift_x, shift_y)
    if not augmentation.noise:
        return moved
    sigma = tf.random.uniform([batch, 1, 1, 1], 0.0, augmentation.noise / features.MAX_PIXEL)
    return tf.clip_by_value(moved + sigma * tf.random.normal(tf.shape(moved)), 0.0, 1.0)


def make_dataset(
    file_pattern: List[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    training: bool,
    augmentation: Augmentation = DIGIT_AUGMENTATION,
    seed: int = DEFAULT_SEED,
) -> tf.data.Dataset:
    """Transformed examples -> (images, labels) batches, cached in memory; for training, reshuffled
    every epoch and augmented. One pass over the files."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=1024, num_epochs=1, shuffle=False, label_key=LABEL_XF),
        tf_transform_output.transformed_metadata.schema,
    )
    dataset = dataset.map(lambda x, y: (x[IMAGE_XF], y), num_parallel_calls=tf.data.AUTOTUNE)
    return batches(dataset.unbatch(), batch_size, training, augmentation, seed)


def batches(
    examples: tf.data.Dataset,
    batch_size: int,
    training: bool,
    augmentation: Augmentation = DIGIT_AUGMENTATION,
    seed: int = DEFAULT_SEED,
) -> tf.data.Dataset:
    """(image, label) examples -> cached, shuffled (training), batched, augmented (training) batches."""
    dataset = examples.cache()
    if training:
        dataset = dataset.shuffle(60_000, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    if training and augmentation != NO_AUGMENTATION:
        dataset = dataset.map(lambda x, y: (augment(x, augmentation), y), num_parallel_calls=tf.data.AUTOTUNE)
    # Several workers share each batch (they read the same files, of which there may be fewer than
    # workers); a single worker is unaffected.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # No autotuning: its thread sleeps in periods that double up to 60 s, and an iterator's end waits
    # for it, so the end of each `fit` sat idle for up to a minute. The parallel map and the prefetch
    # keep tf.data's defaults for AUTOTUNE.
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
