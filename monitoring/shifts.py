"""Synthetic shifts of served traffic, the ways pictures from the field differ from MNIST's: digits drawn
small and off-centre, thick strokes, inverted pictures (dark digit on light), and sensor noise. The
monitor's tests and its detection benchmark send them to show what it finds and from how few requests."""

from typing import Callable, Dict

import numpy as np
from scipy import ndimage

from models import features

Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def small_off_centre(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each digit at half size, somewhere in the picture but not at its centre."""
    out = np.zeros_like(pixels, dtype=np.float32)
    half = features.IMAGE_SIZE // 2
    for i, picture in enumerate(pixels):
        small = ndimage.zoom(np.asarray(picture, np.float32), 0.5, order=1)
        top, left = (int(v) for v in rng.choice([0, 1, 2, half - 2, half - 1, half], size=2))
        out[i, top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(out, 0, features.MAX_PIXEL)


def thick(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes two pixels thicker, as a broad pen draws them."""
    return ndimage.grey_dilation(np.asarray(pixels, np.float32), size=(1, 3, 3))


def inverted(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark digit on a light background, as a scan of ink on paper that nobody inverted."""
    return features.MAX_PIXEL - np.asarray(pixels, np.float32)


def noisy(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise (standard deviation 50 of 255) over the whole picture."""
    noise = rng.normal(0.0, 50.0, size=np.shape(pixels))
    return np.clip(np.asarray(pixels, np.float32) + noise, 0, features.MAX_PIXEL).astype(np.float32)


SHIFTS: Dict[str, Shift] = {
    "small and off-centre": small_off_centre,
    "thick strokes": thick,
    "inverted": inverted,
    "noisy": noisy,
}
