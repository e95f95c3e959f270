"""Pictures moved in the plane: which way a turn goes, where a shift lands, and that a turn and its
opposite give the picture back."""

import numpy as np
import tensorflow as tf

from models import geometry


def _dot(row: int, col: int, count: int = 2) -> tf.Tensor:
    pixels = np.zeros((count, 28, 28, 1), np.float32)
    pixels[:, row, col] = 1.0
    return tf.constant(pixels)


def _where(images: tf.Tensor) -> list:
    return [tuple(int(i) for i in np.unravel_index(np.argmax(image[..., 0]), (28, 28))) for image in images.numpy()]


def test_a_quarter_turn_moves_a_dot_right_of_the_centre_to_above_it():
    # The centre is (13.5, 13.5): a dot 6.5 px right of it and 3.5 px up ends 6.5 px up and 3.5 px left.
    assert _where(geometry.rotated(_dot(10, 20), 90.0)) == [(7, 10)] * 2
    np.testing.assert_array_equal(geometry.rotated(_dot(10, 20), 0.0).numpy(), _dot(10, 20).numpy())


def test_a_turn_and_its_opposite_give_the_picture_back():
    rows, cols = np.mgrid[0:28, 0:28]
    blob = np.exp(-((rows - 8.0) ** 2 + (cols - 20.0) ** 2) / 18.0).astype(np.float32)[None, ..., None]
    there = geometry.rotated(tf.constant(blob), 6.0)
    back = geometry.rotated(there, -6.0).numpy()
    moved_by = np.abs(there.numpy() - blob).max()  # One turn moves it by more than a pixel...
    assert moved_by > 0.15
    assert np.abs(back - blob).max() < moved_by / 3  # ...and the opposite turn brings it back, a little blurred.


def test_each_picture_gets_its_own_shift_and_zoom():
    ones, zeros = tf.ones([2]), tf.zeros([2])
    shifted = geometry.moved(_dot(10, 20), zeros, ones, ones, tf.constant([2.0, -3.0]), tf.constant([1.0, 0.0]))
    assert _where(shifted) == [(11, 22), (10, 17)]
    zoomed = geometry.moved(_dot(10, 20), zeros, ones * 2.0, ones * 2.0, zeros, zeros)
    assert _where(zoomed)[0] in {(6, 26), (6, 27), (7, 26), (7, 27)}  # 6.5 px right and 3.5 up, doubled.
