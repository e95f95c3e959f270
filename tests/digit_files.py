"""Writers of small digit datasets in every input format, for tests to build good and bad files."""

import csv
import glob
import gzip
import os
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from components.digit_example_gen.readers import idx_bytes
from models import features
from pipeline import configs


def random_digits(count: int, seed: int = 0):
    """`count` random 28x28 uint8 images and labels cycling through 0-9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 10
    return images, labels


def write(path: str, data: bytes, gz: bool = False) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return path


def write_idx(folder: str, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True):
    """Writes `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]`."""
    ext = ".gz" if gz else ""
    return (
        write(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), idx_bytes(images), gz),
        write(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), idx_bytes(labels), gz),
    )


def write_csv(path: str, images: np.ndarray, labels: Sequence[int]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label"] + [f"pixel{i}" for i in range(784)])
        for image, label in zip(images, labels):
            out.writerow([int(label)] + image.reshape(-1).tolist())
    return path


def write_pngs(folder: str, images: np.ndarray, labels: Sequence[int]) -> list:
    paths = []
    for i, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(folder, str(int(label)), f"{i:05d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def png_bytes(pixels: np.ndarray) -> bytes:
    """A 28x28 uint8-range array as PNG file bytes."""
    return tf.io.encode_png(tf.constant(np.asarray(pixels).astype(np.uint8)[..., None])).numpy()


def pipeline_test_digits(output_root: str, count: int) -> Tuple[List[bytes], np.ndarray, np.ndarray]:
    """The first `count` test-split examples a pipeline run ingested: serialized, pixels (n, 28, 28), labels."""
    pattern = os.path.join(configs.pipeline_root(output_root), "DigitExampleGen", "examples", "*", "Split-test", "*.gz")
    records = [r.numpy() for r in tf.data.TFRecordDataset(glob.glob(pattern), compression_type="GZIP").take(count)]
    examples = [tf.train.Example.FromString(r) for r in records]
    pixels = np.array([e.features.feature[features.IMAGE_KEY].int64_list.value for e in examples], np.float32)
    labels = np.array([e.features.feature[features.LABEL_KEY].int64_list.value[0] for e in examples])
    return records, pixels.reshape(-1, features.IMAGE_SIZE, features.IMAGE_SIZE), labels
