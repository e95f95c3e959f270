"""Accuracy on perturbed copies of test digits, as scans and photos perturb them: turned by up to 15
degrees, shifted by up to 3 pixels, or with Gaussian noise of sigma 20 grey levels (clipped to 0-255).

The perturbations are seeded, so two models (or two runs) are judged on the same pictures. Used by the
model card of every pushed version and by the run report.
"""

import math
from typing import Callable, Dict

import numpy as np
import tensorflow as tf

from models import features, geometry
from models.batches import in_batches

ROTATION_DEGREES = 15.0
SHIFT_PIXELS = 3
NOISE_SIGMA = 20.0
PERTURBATIONS = ("rotation", "shift", "noise")
DESCRIPTIONS = {
    "rotation": f"turned up to {ROTATION_DEGREES:g} degrees",
    "shift": f"shifted up to {SHIFT_PIXELS} px",
    "noise": f"Gaussian noise sigma {NOISE_SIGMA:g}",
}
SEED = 20261201


def _affine(pixels: np.ndarray, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each 28x28 picture turned by its angle (radians) about the centre and moved by its (dx, dy)."""
    ones = np.ones(len(pixels), np.float32)
    images = tf.constant(pixels[..., None], tf.float32)
    moved = geometry.moved(
        images, *(tf.constant(v, tf.float32) for v in (angles, ones, ones, shifts[:, 0], shifts[:, 1]))
    )
    return moved.numpy()[..., 0]


def perturbed(pixels: np.ndarray, kind: str, seed: int = SEED) -> np.ndarray:
    """A perturbed copy of [n, 28, 28] pixels (0-255)."""
    rng = np.random.default_rng(seed)
    count = len(pixels)
    if kind == "rotation":
        angles = rng.uniform(-1, 1, count) * math.radians(ROTATION_DEGREES)
        return _affine(pixels, angles, np.zeros((count, 2)))
    if kind == "shift":
        return _affine(pixels, np.zeros(count), rng.integers(-SHIFT_PIXELS, SHIFT_PIXELS + 1, (count, 2)).astype(float))
    if kind == "noise":
        return np.clip(pixels + rng.normal(0.0, NOISE_SIGMA, pixels.shape), 0, features.MAX_PIXEL)
    raise ValueError(f"unknown perturbation {kind!r}: expected one of {', '.join(PERTURBATIONS)}")


def accuracies(
    predict_images: Callable[..., Dict[str, tf.Tensor]], pixels: np.ndarray, labels: np.ndarray
) -> Dict[str, float]:
    """Accuracy of a `predict_images` signature on the clean pixels and on each perturbed copy."""

    def accuracy(images: np.ndarray) -> float:
        digits = in_batches(
            lambda chunk: predict_images(**{features.IMAGES_INPUT: chunk})[features.DIGIT_OUTPUT], images
        )
        return float(np.mean(digits == labels))

    return {"clean": accuracy(pixels), **{kind: accuracy(perturbed(pixels, kind)) for kind in PERTURBATIONS}}
