"""The finished run a benchmark reads: the newest evaluated run under a pipeline output folder, and its
`eval` split (where settings are chosen) and `test` split (what is reported) as ExampleGen wrote them;
or the newest pushed model."""

import argparse
import dataclasses
from typing import Dict, Optional

import numpy as np

from benchmarks import mnist
from models import features
from models.batches import in_batches
from pipeline import configs, summary
from reports.run_report import Digits, read_split, serving_model


@dataclasses.dataclass(frozen=True)
class EvaluatedRun:
    """What a benchmark needs of a run that reached the Evaluator: every path is known."""

    run_id: str
    accuracy: Optional[float]
    """The export's test accuracy (TFMA)."""
    examples_uri: str
    model_uri: str
    trainer_logs: str


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=configs.OUTPUT_ROOT, help="the pipeline output folder of the run")


def pushed_model(output: str) -> str:
    """The newest pushed model under `output`; none ends the command, naming the folder."""
    pushed_to = summary.latest_run(configs.metadata_path(output), pushed=True).pushed_to
    if not pushed_to:
        raise SystemExit(f"no pushed model in {output}: run the pipeline first (make run)")
    return pushed_to


def evaluated_run(output: str) -> EvaluatedRun:
    """The newest run under `output` that reached the Evaluator; none ends the command, naming the folder."""
    run = summary.latest_run(configs.metadata_path(output), evaluated=True)
    if not run.run_id or not run.trainer_logs or not run.model_uri or not run.examples_uri:
        raise SystemExit(f"no evaluated run under {output}")
    return EvaluatedRun(run.run_id, run.accuracy, run.examples_uri, run.model_uri, run.trainer_logs)


def eval_and_test(run: EvaluatedRun) -> Dict[str, Digits]:
    return {split: read_split(run.examples_uri, split) for split in (features.EVAL_SPLIT, features.TEST_SPLIT)}


def exported_cnn_accuracy(run: EvaluatedRun, digits: Digits) -> float:
    """The exported CNN's own accuracy on `digits`, each read once as the saved Keras model computes it
    (bfloat16 where it trained so): what a rebuild of the CNN or a conversion of it should match, where
    the signatures may read each digit turned (`test_time_rotation`)."""
    import tensorflow as tf

    cnn = tf.saved_model.load(serving_model(run.model_uri))
    images = mnist.scaled(digits.pixels.astype(np.float32))
    probabilities = in_batches(lambda chunk: cnn(chunk, training=False), images)
    return round(float((probabilities.argmax(axis=1) == digits.labels).mean()), 4)
