"""The bundled MNIST (`configs.DATA_ROOT`) as NumPy arrays, read with DigitExampleGen's IDX reader: for the
tests and benchmarks that need digits without a pipeline run."""

import gzip
import itertools
import os
from typing import Optional, Tuple

import numpy as np

from components.digit_example_gen import readers
from models import features
from pipeline import configs

TRAIN = "train"
TEST = "t10k"


def load(prefix: str, count: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The first `count` (default all) digits of a file pair: pixels 0-255 [n, 28, 28] float32, labels int64."""
    paths = (os.path.join(configs.DATA_ROOT, f"{prefix}-{kind}-ubyte.gz") for kind in ("images-idx3", "labels-idx1"))
    pairs = [(pixels, label) for _, pixels, label in itertools.islice(readers.read_idx(*paths), count)]
    return np.stack([p for p, _ in pairs]).astype(np.float32), np.array([label for _, label in pairs], np.int64)


def scaled(pixels: np.ndarray) -> np.ndarray:
    """[n, 28, 28] pixels 0-255 -> [n, 28, 28, 1] in [0, 1], as Transform hands them to the model."""
    return (pixels / features.MAX_PIXEL)[..., None].astype(np.float32)


def write_idx(folder: str, prefix: str, images: np.ndarray, labels: np.ndarray) -> Tuple[str, str]:
    """`<prefix>-images-idx3-ubyte.gz` and `<prefix>-labels-idx1-ubyte.gz` of uint8 arrays in `folder`."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        paths.append(os.path.join(folder, f"{prefix}-{kind}-ubyte.gz"))
        with gzip.open(paths[-1], "wb") as f:
            f.write(readers.idx_bytes(np.asarray(array).astype(np.uint8)))
    return paths[0], paths[1]
