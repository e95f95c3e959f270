"""The Trainer's input pipeline (`models.inputs`): the batch augmentation and the tf.data batches."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models import inputs
from models.config import DIGIT_AUGMENTATION, NO_AUGMENTATION, NOTEBOOK_AUGMENTATION, Augmentation


def _digit_batch(n: int = 64) -> tf.Tensor:
    images = np.zeros((n, 28, 28, 1), np.float32)
    images[:, 9:19, 11:17, 0] = 1.0
    return tf.constant(images)


def test_augment_moves_pixels_but_keeps_the_digit():
    tf.random.set_seed(1)
    images = _digit_batch()
    out = inputs.augment(images, NOTEBOOK_AUGMENTATION).numpy()
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
    out = inputs.augment(_digit_batch(256), NOTEBOOK_AUGMENTATION).numpy()[..., 0]
    cols = np.arange(28)
    centre_x = (out.sum(axis=1) * cols).sum(axis=1) / out.sum(axis=(1, 2))
    base = 13.5
    assert np.abs(centre_x - base).max() < 0.1 * 28 + 1.5
    assert np.abs(centre_x - base).max() > 1.0  # and they do shift.


def test_noise_has_a_random_strength_per_picture_and_stays_in_range():
    tf.random.set_seed(3)
    still = dataclasses.replace(NO_AUGMENTATION, noise=DIGIT_AUGMENTATION.noise)
    images = np.full((512, 28, 28, 1), 0.5, np.float32)
    out = inputs.augment(tf.constant(images), still).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    sigmas = (out - images).reshape(len(out), -1).std(axis=1) * 255
    # Each picture its own sigma, spread evenly between 0 and the setting (30 grey levels).
    assert sigmas.max() == pytest.approx(DIGIT_AUGMENTATION.noise, abs=2) and sigmas.min() < 2
    assert np.median(sigmas) == pytest.approx(DIGIT_AUGMENTATION.noise / 2, abs=3)
    np.testing.assert_array_equal(inputs.augment(tf.constant(images), NO_AUGMENTATION).numpy(), images)


@pytest.mark.parametrize("flip", [False, True])
def test_mirroring_is_a_setting_for_clothes_never_digits(flip):
    tf.random.set_seed(3)
    images = np.zeros((400, 28, 28, 1), np.float32)
    images[:, 6:22, 3:9, 0] = 1.0  # A bar well left of the middle.
    out = inputs.augment(tf.constant(images), Augmentation(flip=flip)).numpy()[..., 0]
    centre_x = (out.sum(axis=1) * np.arange(28)).sum(axis=1) / out.sum(axis=(1, 2))
    mirrored = (centre_x > 13.5).mean()
    assert (0.35 < mirrored < 0.65) if flip else mirrored == 0.0, mirrored


@pytest.mark.parametrize("training", [True, False])
def test_input_batches_are_not_autotuned(training):
    """tf.data's autotuning thread sleeps up to a minute at a time and an iterator's end waits for it:
    the Trainer sat idle that long at the end of `fit`."""
    x, y = np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 10
    data = inputs.batches(tf.data.Dataset.from_tensor_slices((x, y)), 8, training)
    assert data.options().autotune.enabled is False
    assert [len(labels) for _, labels in data] == [8, 8, 4]
