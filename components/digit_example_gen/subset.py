"""Small copies of a digit dataset, for quick runs (the `smoke` profile) and tests.

The copy is written once as MNIST IDX files with a SHA256SUMS, and kept while its source is unchanged,
so that repeated quick runs hit TFX's cache instead of re-ingesting.
"""

import gzip
import hashlib
import itertools
import json
import os
import shutil
from typing import Optional

import numpy as np
import tensorflow as tf

from components.digit_example_gen import readers
from components.digit_example_gen.component import detect_input_config
from models import features

_MARKER = "SUBSET.json"
_IDX_PREFIX = {features.TRAIN_SPLIT: "train", features.TEST_SPLIT: "t10k"}


def _source_state(source: str, patterns) -> list:
    paths = sorted(p for pattern in patterns for p in tf.io.gfile.glob(os.path.join(source, pattern)))
    return [(p, tf.io.gfile.stat(p).length, tf.io.gfile.stat(p).mtime_nsec) for p in paths]


def write_subset(source: str, dest: str, train_limit: int, test_limit: Optional[int]) -> str:
    """Writes the first `train_limit` training and `test_limit` test digits of `source` to `dest`."""
    input_config = detect_input_config(source)
    patterns = [s.pattern for s in input_config.splits]
    description = json.dumps(
        {"source": os.path.abspath(source), "state": _source_state(source, patterns),
         "train_limit": train_limit, "test_limit": test_limit}
    )
    marker = os.path.join(dest, _MARKER)
    if os.path.exists(marker) and open(marker).read() == description:
        return dest
    staging = f"{dest}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    sums = []
    for split in input_config.splits:
        limit = train_limit if split.name == features.TRAIN_SPLIT else test_limit
        paths = tf.io.gfile.glob(os.path.join(source, split.pattern))
        digits = itertools.chain.from_iterable(readers.read_shard(s) for s in readers.plan_shards(paths))
        chosen = list(itertools.islice(digits, limit))
        arrays = {
            "images-idx3": np.stack([pixels for _, pixels, _ in chosen]),
            "labels-idx1": np.array([label for _, _, label in chosen], dtype=np.uint8),
        }
        for kind, array in arrays.items():
            name = f"{_IDX_PREFIX[split.name]}-{kind}-ubyte.gz"
            data = gzip.compress(readers.idx_bytes(array), mtime=0)
            with open(os.path.join(staging, name), "wb") as f:
                f.write(data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    with open(os.path.join(staging, readers.CHECKSUMS_FILE), "w") as f:
        f.writelines(sums)
    with open(os.path.join(staging, _MARKER), "w") as f:
        f.write(description)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
    return dest
