"""ExampleGen's output read back: the first digits of a split, for the components that send a model
real digits (the serving canary, the model card's robustness figures) and for the tests."""

import dataclasses
import os
from typing import List, Sequence

import numpy as np
import tensorflow as tf

from models import features


@dataclasses.dataclass(frozen=True)
class SplitDigits:
    records: List[bytes]
    """Serialized tf.Examples, as ExampleGen wrote them."""
    pixels: np.ndarray
    """float32 0-255 [n, 28, 28]."""
    labels: np.ndarray
    """int64 [n]."""


def split_files(examples_uri: str, split: str) -> List[str]:
    """The files of one split of an Examples artifact (local or in a bucket), in name order."""
    return sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))


def first_digits(files: Sequence[str], count: int) -> SplitDigits:
    """The first `count` examples of ExampleGen's gzipped TFRecord files (fewer if they hold fewer)."""
    records = [r.numpy() for r in tf.data.TFRecordDataset(list(files), compression_type="GZIP").take(count)]
    examples = [tf.train.Example.FromString(r) for r in records]
    pixels = np.array([e.features.feature[features.IMAGE_KEY].int64_list.value for e in examples], np.float32)
    labels = np.array([e.features.feature[features.LABEL_KEY].int64_list.value[0] for e in examples], np.int64)
    return SplitDigits(records, pixels.reshape(-1, features.IMAGE_SIZE, features.IMAGE_SIZE), labels)
