"""Pictures moved in the plane: rotated about their centre, scaled, shifted, in one bilinear resampling.

Training's augmentation, the deskewing layer, the export's test-time augmentation and the robustness
checks all move pictures, and all do it here, so a rotation of +6 degrees is the same in each.
"""

import math
from typing import List

import tensorflow as tf

from models import features


def resample(images: tf.Tensor, affine: List[tf.Tensor]) -> tf.Tensor:
    """Each picture resampled through its own affine map: `affine` is (a0, a1, a2, b0, b1, b2), one value
    per picture each, and output pixel (x, y) samples the input at (a0 x + a1 y + a2, b0 x + b1 y + b2),
    bilinearly, with black outside the picture."""
    zeros = tf.zeros_like(affine[0])
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack([*affine, zeros, zeros], axis=1),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(moved, images.shape)  # The op's own shape is unknown: layers after it need it.


def moved(
    images: tf.Tensor,
    angle: tf.Tensor,
    zoom_x: tf.Tensor,
    zoom_y: tf.Tensor,
    shift_x: tf.Tensor,
    shift_y: tf.Tensor,
) -> tf.Tensor:
    """[n, 28, 28, 1] float pictures, each rotated by its `angle` (radians) and scaled by its zooms about
    the centre, then shifted by its (`shift_x`, `shift_y`) pixels: one value per picture each."""
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Maps each output pixel to the input pixel it samples: rotate and scale about the centre, shift.
    a0, a1 = cos / zoom_x, -sin / zoom_y
    b0, b1 = sin / zoom_x, cos / zoom_y
    centre = (features.IMAGE_SIZE - 1.0) / 2.0
    a2 = centre - a0 * centre - a1 * centre - shift_x
    b2 = centre - b0 * centre - b1 * centre - shift_y
    return resample(images, [a0, a1, a2, b0, b1, b2])


def rotated(images: tf.Tensor, degrees: float) -> tf.Tensor:
    """[n, 28, 28, 1] float pictures, all rotated by the same `degrees` about their centre."""
    ones = tf.ones(tf.shape(images)[:1])
    zeros = tf.zeros_like(ones)
    return moved(images, ones * math.radians(degrees), ones, ones, zeros, zeros)
