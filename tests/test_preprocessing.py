"""preprocessing_fn (scaling and layout shared by training and serving) and the picture framing shared
by PNG ingestion and the picture signature: MNIST's own normalisation, on synthetic pictures."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw

from models import features
from models.preprocessing import CENTRE, DIGIT_BOX, decode_image, preprocessing_fn
from pipeline import mnist


def test_scales_pixels_and_reshapes():
    pixels = np.arange(2 * 784).reshape(2, 784) % 256
    out = preprocessing_fn(
        {features.IMAGE_KEY: tf.constant(pixels, tf.int64), features.LABEL_KEY: tf.constant([[3], [9]], tf.int64)}
    )
    image = out[features.transformed_name(features.IMAGE_KEY)].numpy()
    assert image.shape == (2, 28, 28, 1) and image.dtype == np.float32
    np.testing.assert_allclose(image.reshape(2, 784), pixels / 255.0, rtol=1e-6)
    assert image.min() >= 0.0 and image.max() == 1.0
    assert out[features.transformed_name(features.LABEL_KEY)].numpy().tolist() == [3, 9]


def test_serving_inputs_need_no_label():
    out = preprocessing_fn({features.IMAGE_KEY: tf.zeros([1, 784], tf.int64)})
    assert set(out) == {features.transformed_name(features.IMAGE_KEY)}


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _seven(size=(280, 280), box=(70, 60, 210, 230), width=22, ink=255, paper=0) -> np.ndarray:
    """A "7" drawn as on the drawing page: a bar, then a stroke down to the left, inside `box`."""
    picture = Image.new("L", size, paper)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(picture).line(
        [(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=ink, width=width, joint="curve"
    )
    return np.array(picture)


def _seven_at(size, left: int, top: int, scale: float) -> np.ndarray:
    """The full-size "7" scaled by `scale` (strokes too) with its box's top-left corner at (left, top)."""
    box = (left, top, left + round(140 * scale), top + round(170 * scale))
    return _seven(size=size, box=box, width=max(1, round(22 * scale)))


def _framed(picture: np.ndarray):
    pixels, found = decode_image(tf.constant(_png(picture)))
    return pixels.numpy(), bool(found)


def _ink_box(pixels: np.ndarray):
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _centre_of_mass(pixels: np.ndarray):
    rows, cols = np.mgrid[0:28, 0:28]
    return (pixels * rows).sum() / pixels.sum(), (pixels * cols).sum() / pixels.sum()


def test_mnist_digits_come_back_almost_unchanged():
    digits, _ = mnist.load(mnist.TEST, 50)
    differences = [np.abs(_framed(d)[0] - d).mean() for d in digits]
    assert np.mean(differences) < 0.5 and max(differences) < 5, differences


@pytest.mark.parametrize(
    "name, picture",
    [
        ("full size, centred", _seven()),
        ("half size, top left", _seven(box=(10, 10, 80, 95), width=11)),
        ("quarter size, bottom right", _seven(box=(220, 225, 255, 268), width=6)),
        ("thin strokes", _seven(width=3)),
        ("thick strokes", _seven(width=40)),
        ("non-square picture", _seven(size=(600, 200), box=(400, 20, 500, 180), width=14)),
        ("dark ink on light paper", _seven(ink=20, paper=235)),
        ("faint pencil on grey", _seven(ink=150, paper=110)),
    ],
)
def test_any_picture_of_a_digit_is_framed_as_mnist_frames_its_digits(name, picture):
    framed, found = _framed(picture)
    assert found, name
    height, width = _ink_box(framed > 0.1 * 255)
    assert max(height, width) in (DIGIT_BOX - 1, DIGIT_BOX, DIGIT_BOX + 1), (name, height, width)
    row, col = _centre_of_mass(framed)
    assert abs(row - CENTRE) < 0.6 and abs(col - CENTRE) < 0.6, (name, row, col)
    assert framed.max() >= 200, name  # Full-strength ink, however faint the pencil was.


@pytest.mark.parametrize(
    "size, left, top, scale",
    [
        ((280, 280), 10, 10, 0.5),
        ((280, 280), 220, 225, 0.25),
        ((600, 200), 400, 20, 0.9),
        ((1000, 1000), 50, 500, 2.5),
    ],
)
def test_the_same_digit_at_any_size_and_place_frames_alike(size, left, top, scale):
    reference, _ = _framed(_seven())
    framed, _ = _framed(_seven_at(size, left, top, scale))
    assert np.corrcoef(framed.ravel(), reference.ravel())[0, 1] > 0.9


def test_specks_of_dust_do_not_stretch_the_box():
    clean = _seven(size=(400, 400), box=(120, 110, 280, 300))
    dusty = clean.copy()
    for row, col in ((5, 5), (390, 10), (8, 385), (395, 395), (200, 392)):
        dusty[row : row + 3, col : col + 3] = 255
    np.testing.assert_allclose(_framed(dusty)[0], _framed(clean)[0], atol=30)
    assert np.abs(_framed(dusty)[0] - _framed(clean)[0]).mean() < 1.0


@pytest.mark.parametrize("paper", [0, 255, 128])
def test_a_blank_canvas_has_no_digit(paper):
    framed, found = _framed(np.full((280, 280), paper, np.uint8))
    assert not found and framed.max() == 0


def test_noise_without_a_digit_is_no_digit():
    rng = np.random.default_rng(0)
    framed, found = _framed(rng.integers(0, 20, size=(100, 100)))
    assert not found and framed.max() == 0
