"""What a person can read off a digit picture, as numbers to watch for drift: how much ink, how large and
where the digit is, how thick its strokes, how bright its ink; and what the model answered.

Each is a column of `picture_features`, computed with numpy on the 28x28 picture the model was given
(0-255, white digit on black). A shift in how people draw or how pictures are captured moves one of
these before the accuracy that nobody measures on served traffic.
"""

from typing import Dict, Optional

import numpy as np

from models import features

INK = 64.0
"""A pixel brighter than this (a quarter of full white) is ink, for the box, the strokes and the ink's
brightness; the ink mass and the centre of mass weigh every pixel by its value."""

INK_MASS = "ink_mass"
BOX_HEIGHT = "box_height"
BOX_WIDTH = "box_width"
CENTRE_ROW = "centre_row"
CENTRE_COLUMN = "centre_column"
STROKE_THICKNESS = "stroke_thickness"
INK_INTENSITY = "ink_intensity"
PREDICTED_CLASS = "predicted_class"
CONFIDENCE = "confidence"

DESCRIPTIONS: Dict[str, str] = {
    INK_MASS: "ink in the picture, in fully white pixels (sum of values / 255)",
    BOX_HEIGHT: "rows between the first and last row with ink",
    BOX_WIDTH: "columns between the first and last column with ink",
    CENTRE_ROW: "row of the centre of mass (0 top, 27 bottom)",
    CENTRE_COLUMN: "column of the centre of mass (0 left, 27 right)",
    STROKE_THICKNESS: "ink pixels per half boundary pixel: the stroke width, in pixels, for strokes 2 or more wide",
    INK_INTENSITY: "mean value of the ink pixels / 255",
    PREDICTED_CLASS: "the class the model answered",
    CONFIDENCE: "the model's probability for the class it answered",
}
"""Every feature, as the report and the metrics describe it."""
CATEGORIES = (BOX_HEIGHT, BOX_WIDTH, PREDICTED_CLASS)
"""Features with few integer values, compared by each value's share rather than as numbers."""
PICTURE_FEATURES = (INK_MASS, BOX_HEIGHT, BOX_WIDTH, CENTRE_ROW, CENTRE_COLUMN, STROKE_THICKNESS, INK_INTENSITY)


def _extent(has_ink: np.ndarray) -> np.ndarray:
    """Per picture, the number of positions from the first to the last True (0 without any)."""
    count = has_ink.shape[1]
    first = np.argmax(has_ink, axis=1)
    last = count - 1 - np.argmax(has_ink[:, ::-1], axis=1)
    return np.where(has_ink.any(axis=1), last - first + 1, 0)


def picture_features(pixels: np.ndarray, probabilities: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """float32 [n, 28, 28] pictures (0-255), and the model's [n, classes] probabilities if known ->
    one array of n values per feature."""
    pixels = np.asarray(pixels, np.float32).reshape(-1, features.IMAGE_SIZE, features.IMAGE_SIZE)
    ink = pixels > INK
    mass = pixels.sum(axis=(1, 2))
    rows = np.arange(features.IMAGE_SIZE, dtype=np.float32)
    safe_mass = np.maximum(mass, 1e-6)
    interior = np.zeros_like(ink)
    interior[:, 1:-1, 1:-1] = (
        ink[:, 1:-1, 1:-1] & ink[:, :-2, 1:-1] & ink[:, 2:, 1:-1] & ink[:, 1:-1, :-2] & ink[:, 1:-1, 2:]
    )
    area = ink.sum(axis=(1, 2)).astype(np.float32)
    boundary = area - interior.sum(axis=(1, 2))
    values = {
        INK_MASS: mass / features.MAX_PIXEL,
        BOX_HEIGHT: _extent(ink.any(axis=2)).astype(np.float32),
        BOX_WIDTH: _extent(ink.any(axis=1)).astype(np.float32),
        CENTRE_ROW: (pixels.sum(axis=2) @ rows) / safe_mass,
        CENTRE_COLUMN: (pixels.sum(axis=1) @ rows) / safe_mass,
        STROKE_THICKNESS: 2 * area / np.maximum(boundary, 1),
        INK_INTENSITY: np.where(area > 0, (pixels * ink).sum(axis=(1, 2)) / np.maximum(area, 1), 0)
        / features.MAX_PIXEL,
    }
    if probabilities is not None:
        probabilities = np.asarray(probabilities, np.float32).reshape(len(pixels), -1)
        values[PREDICTED_CLASS] = probabilities.argmax(axis=1).astype(np.int64)
        values[CONFIDENCE] = probabilities.max(axis=1)
    return {name: np.asarray(value, np.int64 if name in CATEGORIES else np.float32) for name, value in values.items()}
