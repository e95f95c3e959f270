"""The Transform graph, and how a picture becomes an MNIST digit: the one definition of each.

Both are embedded in the exported model, so serving clients send raw 0-255 pixels or any picture and
can never disagree with training about scaling, layout or framing.
"""

from typing import Dict, Tuple

import tensorflow as tf

from models import features

DIGIT_BOX = 20
"""MNIST's digits fill a 20x20 box (longer side 20 px, aspect ratio kept) inside the 28x28 frame."""
CENTRE = 14.0
"""Where MNIST puts a digit's centre of mass (row and column, 0-based): 14.0 on average over its training
digits (measured: 13.99 and 14.00)."""
INK = 0.1
"""A pixel is ink when it reaches this share of the picture's brightest ink (after the background is
taken away); fainter ones are paper, shadow or noise."""
SPECK = 0.05
"""Ink separated from the rest by blank rows (or columns) and holding less than this share of the ink
is a speck of dust, not part of the digit: it does not stretch the bounding box."""
MIN_INK = 32.0
"""A picture whose brightest ink (0-255, above the background) is fainter than this has no digit."""


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Pixels -> float32 28x28x1 in [0, 1]; label -> int64 scalar per example."""
    pixels = tf.cast(inputs[features.IMAGE_KEY], tf.float32) / float(features.MAX_PIXEL)
    outputs = {
        features.transformed_name(features.IMAGE_KEY): tf.reshape(
            pixels, [-1, features.IMAGE_SIZE, features.IMAGE_SIZE, 1]
        )
    }
    if features.LABEL_KEY in inputs:
        outputs[features.transformed_name(features.LABEL_KEY)] = tf.reshape(inputs[features.LABEL_KEY], [-1])
    return outputs


def _ink_span(profile: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """[first, last] index of the ink in a row (or column) profile, leaving out runs of ink that blank
    lines separate from the rest and that hold less than SPECK of it."""
    inked = profile > 0
    starts = tf.logical_and(inked, tf.logical_not(tf.concat([[False], inked[:-1]], axis=0)))
    run = tf.cumsum(tf.cast(starts, tf.int32)) * tf.cast(inked, tf.int32)  # 0 on blank lines
    run_mass = tf.math.unsorted_segment_sum(profile, run, tf.size(profile) + 1)
    kept_runs = tf.logical_and(run_mass >= SPECK * tf.reduce_sum(profile), tf.range(tf.size(profile) + 1) > 0)
    kept = tf.gather(kept_runs, run)
    kept = tf.cond(tf.reduce_any(kept), lambda: kept, lambda: inked)  # All specks: keep them all.
    first = tf.argmax(tf.cast(kept, tf.int32), output_type=tf.int32)
    last = tf.size(profile) - 1 - tf.argmax(tf.cast(tf.reverse(kept, [0]), tf.int32), output_type=tf.int32)
    return first, last


def normalize_digit(image: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """A picture [h, w, 1] of one digit, bright ink on dark (0-255) -> (28x28 pixels framed as MNIST
    frames its digits, whether ink was found).

    As MNIST was made: the background is taken away and the ink stretched to full brightness; the ink's
    bounding box (without stray specks of dust) is cut out and scaled so that its longer side is 20 px,
    keeping its aspect ratio, with anti-aliasing; the result is placed in the 28x28 frame with its
    centre of mass at (14, 14). Without ink (a blank canvas, a photo of an empty page) the frame is
    black and the flag False, so that callers can say "no digit" instead of guessing one.
    """
    image = tf.squeeze(tf.cast(image, tf.float32), axis=-1)
    border = tf.concat([image[0, :], image[-1, :], image[:, 0], image[:, -1]], axis=0)
    ink = tf.nn.relu(image - tf.reduce_mean(border))
    brightest = tf.reduce_max(ink)
    found = brightest >= MIN_INK
    ink = ink * (float(features.MAX_PIXEL) / tf.maximum(brightest, 1.0))
    strokes = tf.where(ink >= INK * features.MAX_PIXEL, ink, 0.0)
    top, bottom = _ink_span(tf.reduce_sum(strokes, axis=1))
    left, right = _ink_span(tf.reduce_sum(strokes, axis=0))
    box = ink[top : bottom + 1, left : right + 1]
    height, width = tf.cast(bottom - top + 1, tf.float32), tf.cast(right - left + 1, tf.float32)
    scale = DIGIT_BOX / tf.maximum(height, width)
    size = tf.maximum(tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32), 1)
    digit = tf.cond(  # Shrinking averages the pixels each one covers; enlarging interpolates.
        scale <= 1.0,
        lambda: tf.image.resize(box[..., None], size, method=tf.image.ResizeMethod.AREA, antialias=True),
        lambda: tf.image.resize(box[..., None], size, method=tf.image.ResizeMethod.BILINEAR),
    )[..., 0]
    frame = features.IMAGE_SIZE
    # Into a 3x frame, centre of mass at its centre, then the middle 28x28 cut out: no wrap-around.
    rows, cols = tf.meshgrid(tf.range(size[0], dtype=tf.float32), tf.range(size[1], dtype=tf.float32), indexing="ij")
    mass = tf.maximum(tf.reduce_sum(digit), 1e-6)
    centre_row, centre_col = tf.reduce_sum(digit * rows) / mass, tf.reduce_sum(digit * cols) / mass
    top_left = tf.cast(tf.round(tf.stack([frame + CENTRE - centre_row, frame + CENTRE - centre_col])), tf.int32)
    top_left = tf.clip_by_value(top_left, 0, 3 * frame - size)
    padded = tf.pad(
        digit, [[top_left[0], 3 * frame - size[0] - top_left[0]], [top_left[1], 3 * frame - size[1] - top_left[1]]]
    )
    framed = padded[frame : 2 * frame, frame : 2 * frame]
    # Strokes thinner than a pixel once shrunk come out faint: stretched back to full strength.
    framed = framed * (float(features.MAX_PIXEL) / tf.maximum(tf.reduce_max(framed), 1.0))
    framed = tf.where(found, framed, tf.zeros_like(framed))
    pixels = tf.clip_by_value(tf.round(tf.reshape(framed, [frame, frame])), 0.0, float(features.MAX_PIXEL))
    return pixels, found


def decode_image(image_bytes: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """One encoded picture (PNG, JPEG, GIF or BMP; any size; grey or colour) -> (28x28 pixels 0-255
    framed as MNIST's digits, whether a digit was found).

    Light backgrounds (judged on the border) are inverted to MNIST's white digit on black. Used both
    when ingesting PNG folders and inside the served model, so a picture sent to TF Serving is read
    exactly as the training pictures were.
    """
    image = tf.cast(tf.io.decode_image(image_bytes, channels=1, expand_animations=False), tf.float32)
    border = tf.concat([image[0, :], image[-1, :], image[:, 0], image[:, -1]], axis=0)
    image = tf.cond(tf.reduce_mean(border) > features.MAX_PIXEL / 2, lambda: features.MAX_PIXEL - image, lambda: image)
    return normalize_digit(image)
