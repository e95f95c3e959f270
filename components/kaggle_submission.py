"""KaggleSubmission: BulkInferrer's predictions on the unlabeled digits (Kaggle's test.csv) written as
the `submission.csv` Kaggle's Digit Recognizer takes: `ImageId,Label`, one row per digit, in order.

BulkInferrer scores only with a blessed model; when the candidate was not blessed it scores nothing,
and this component writes no file (its artifact says so) rather than submit a refused model's answers.
"""

import csv
import os
from typing import List, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import prediction_log_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import InferenceResult

from components.artifacts import Submission
from models import features

SUBMISSION_FILE = "submission.csv"
WRITTEN = "written"
"""Custom property of the Submission artifact: 1 when submission.csv was written."""


def predicted_digits(inference_uri: str) -> List[Tuple[int, int]]:
    """(ImageId, predicted digit) of every PredictionLog BulkInferrer wrote, in ImageId order."""
    files = tf.io.gfile.glob(os.path.join(inference_uri, "*"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record).predict_log
        examples = tf.make_ndarray(log.request.inputs[features.EXAMPLES_INPUT]).reshape(-1)
        probabilities = tf.make_ndarray(log.response.outputs[features.PROBABILITIES_OUTPUT])
        for serialized, scores in zip(examples, probabilities.reshape(len(examples), -1)):
            example = tf.train.Example.FromString(serialized)
            rows.append(
                (int(example.features.feature[features.IMAGE_ID_KEY].int64_list.value[0]), int(np.argmax(scores)))
            )
    return sorted(rows)


def write_submission(rows: List[Tuple[int, int]], path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["ImageId", "Label"])
        out.writerows(rows)


@component
def KaggleSubmission(inference_result: InputArtifact[InferenceResult], submission: OutputArtifact[Submission]) -> None:
    rows = predicted_digits(inference_result.uri)
    if not rows:
        logging.warning("No predictions to submit: the candidate was not blessed, so BulkInferrer scored nothing.")
        submission.set_int_custom_property(WRITTEN, 0)
        return
    ids = [image_id for image_id, _ in rows]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"ImageIds are not 1..{len(ids)}: the unlabeled split lost or repeated digits")
    write_submission(rows, os.path.join(submission.uri, SUBMISSION_FILE))
    submission.set_int_custom_property(WRITTEN, 1)
    logging.info("Kaggle submission of %d digits: %s", len(rows), os.path.join(submission.uri, SUBMISSION_FILE))
