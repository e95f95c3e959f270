"""Served requests read back from the request logs (`serving.request_log`): the picture each request gave
the model, what it answered, which version answered and when.

The picture is the one the model read: the `images` input as sent, the `framed` output of a picture sent
as encoded bytes (the drawing page's), or the `image` feature of a tf.Example (Classify and the default
signature). A blank canvas (the model's answer `digit` is -1) is counted, not watched.
"""

import calendar
import dataclasses
import os
import re
import time
from typing import Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from models import features
from serving.request_log import closed_files

_STAMP = re.compile(r"-(\d{8}T\d{6})-\d+-\d+\.tfrecord$")


@dataclasses.dataclass(frozen=True)
class Traffic:
    pixels: np.ndarray
    """float32 [n, 28, 28], 0-255."""
    probabilities: np.ndarray
    """float32 [n, classes]."""
    versions: np.ndarray
    """int64 [n]: the model version that answered."""
    times: np.ndarray
    """float64 [n]: when the log file holding the request was begun (seconds since the epoch)."""
    blank: int = 0
    """Requests in which the model found no digit."""

    def __len__(self) -> int:
        return len(self.pixels)

    def last(self, count: int) -> "Traffic":
        return self.slice(max(len(self) - count, 0), len(self))

    def slice(self, start: int, stop: int) -> "Traffic":
        return Traffic(
            self.pixels[start:stop],
            self.probabilities[start:stop],
            self.versions[start:stop],
            self.times[start:stop],
            self.blank,
        )


def file_time(path: str) -> float:
    """A log file's start time, from its name."""
    match = _STAMP.search(os.path.basename(path))
    return float(calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%S"))) if match else 0.0


def _example_pixels(serialized: List[bytes]) -> np.ndarray:
    examples = [tf.train.Example.FromString(s) for s in serialized]
    return np.array([e.features.feature[features.IMAGE_KEY].int64_list.value for e in examples], np.float32)


def _examples_of(record: prediction_log_pb2.PredictionLog) -> List[bytes]:
    request_input = record.classify_log.request.input
    kind = request_input.WhichOneof("kind")
    examples = getattr(request_input, kind).examples if kind else []
    return [e.SerializeToString() for e in examples]


def pictures_of(record: prediction_log_pb2.PredictionLog) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The record's pictures [n, 28, 28] and probabilities [n, classes], blank canvases included (their
    probabilities are all 0); None for a request that holds no picture."""
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        inputs, outputs = record.predict_log.request.inputs, record.predict_log.response.outputs
        if features.IMAGES_INPUT in inputs:
            pixels = tf.make_ndarray(inputs[features.IMAGES_INPUT])
        elif features.FRAMED_OUTPUT in outputs:
            pixels = tf.make_ndarray(outputs[features.FRAMED_OUTPUT])
        elif features.EXAMPLES_INPUT in inputs:
            pixels = _example_pixels(list(tf.make_ndarray(inputs[features.EXAMPLES_INPUT]).reshape(-1)))
        else:
            return None
        if features.PROBABILITIES_OUTPUT not in outputs:
            return None
        probabilities = tf.make_ndarray(outputs[features.PROBABILITIES_OUTPUT])
    elif kind == "classify_log":
        pixels = _example_pixels(_examples_of(record))
        result = record.classify_log.response.result.classifications
        probabilities = np.array([[c.score for c in item.classes] for item in result], np.float32)
    else:
        return None
    count = len(probabilities)
    return np.asarray(pixels, np.float32).reshape(count, features.IMAGE_SIZE, features.IMAGE_SIZE), probabilities


def records(path: str) -> Iterator[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records of one log file, in order."""
    for raw in tf.data.TFRecordDataset(path):
        yield prediction_log_pb2.PredictionLog.FromString(raw.numpy())


def read_traffic(prefix: str, limit: Optional[int] = None) -> Traffic:
    """The newest `limit` pictures (all without a limit) in the complete log files of `prefix`, oldest
    first; files are read newest first and only as far back as the limit needs."""
    chunks: List[Tuple[np.ndarray, np.ndarray, int, float]] = []
    count = blank = 0
    for path in reversed(closed_files(prefix)):
        in_file = []
        for record in records(path):
            found = pictures_of(record)
            if found is None:
                continue
            pixels, probabilities = found
            seen = probabilities.max(axis=1) > 0
            blank += int((~seen).sum())
            in_file.append(
                (pixels[seen], probabilities[seen], record.log_metadata.model_spec.version.value, file_time(path))
            )
            count += int(seen.sum())
        chunks = in_file + chunks
        if limit is not None and count >= limit:
            break
    if not chunks:
        empty = np.zeros((0, features.IMAGE_SIZE, features.IMAGE_SIZE), np.float32)
        return Traffic(
            empty, np.zeros((0, features.NUM_CLASSES), np.float32), np.zeros(0, np.int64), np.zeros(0), blank
        )
    traffic = Traffic(
        np.concatenate([c[0] for c in chunks]),
        np.concatenate([c[1] for c in chunks]).astype(np.float32),
        np.concatenate([np.full(len(c[0]), c[2], np.int64) for c in chunks]),
        np.concatenate([np.full(len(c[0]), c[3], np.float64) for c in chunks]),
        blank,
    )
    return traffic.last(limit) if limit is not None else traffic
