"""Bad data never reaches training: each fault stops the run, with the file and record or the anomaly
named, nothing is trained or pushed, and the served version stays.

Runs on the shared smoke output (a blessed, pushed model already there), with datasets built from the
smoke subset's own digits and one fault each.
"""

import dataclasses
import glob
import os

import numpy as np
import pytest

from components.anomaly_gate import DataAnomaliesError
from components.digit_example_gen import readers
from pipeline import configs, local_runner
from tests import support

pytestmark = pytest.mark.e2e
SMOKE = configs.PROFILES["smoke"]
# The smoke profile's training settings on a dataset used as given (no limits: the files are small).
FAULTS = dataclasses.replace(SMOKE, name="faults", train_limit=None, test_limit=None)


@pytest.fixture(scope="module")
def smoke_digits():
    """The smoke run's digits: (train images, train labels, test images, test labels)."""
    return (*support.mnist_digits("train", SMOKE.train_limit), *support.mnist_digits("t10k", SMOKE.test_limit))


def _served_and_trained(output_root):
    return (
        sorted(os.listdir(configs.serving_model_dir(output_root))),
        sorted(glob.glob(os.path.join(configs.pipeline_root(output_root), "Trainer", "model", "*"))),
    )


INGESTION = (readers.DigitDataError, RuntimeError)
"""Beam's DirectRunner re-raises the reader's DigitDataError as a RuntimeError with its message."""


def _assert_stops(output_root, data_root, error, match):
    before = _served_and_trained(output_root)
    assert before[0], "the smoke run should have pushed a model"
    with pytest.raises(error, match=match):
        settings = dataclasses.replace(configs.settings("smoke", data_root=str(data_root)), profile=FAULTS)
        local_runner.run(settings, output_root=output_root)
    assert _served_and_trained(output_root) == before


def test_pixels_outside_0_255(smoke_output, smoke_digits, tmp_path):
    train_x, train_y, _, _ = smoke_digits
    path = support.write_csv(str(tmp_path / "train.csv"), train_x[:50].astype(np.int64), train_y[:50])
    with open(path) as f:
        lines = f.read().splitlines()
    cells = lines[7].split(",")
    cells[300] = "300"
    lines[7] = ",".join(cells)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    _assert_stops(smoke_output, tmp_path, INGESTION, r"train.csv.*line 8.*column pixel299: pixel 300 outside 0-255")


def test_label_outside_0_9(smoke_output, smoke_digits, tmp_path):
    train_x, train_y, test_x, test_y = smoke_digits
    bad_labels = train_y.copy()
    bad_labels[41] = 12
    support.write_idx(str(tmp_path), "train", train_x, bad_labels)
    support.write_idx(str(tmp_path), "t10k", test_x, test_y)
    _assert_stops(smoke_output, tmp_path, INGESTION, r"train-labels-idx1-ubyte.gz.*record 41.*label 12 outside 0-9")


def test_missing_label(smoke_output, smoke_digits, tmp_path):
    train_x, train_y, _, _ = smoke_digits
    path = support.write_csv(str(tmp_path / "train.csv"), train_x[:20], train_y[:20])
    with open(path) as f:
        lines = f.read().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    _assert_stops(smoke_output, tmp_path, INGESTION, r"train.csv.*line 4.*column label: '' is not an integer")


def test_images_of_the_wrong_size(smoke_output, tmp_path):
    images = np.zeros((30, 32, 32), np.uint8)
    support.write_idx(str(tmp_path), "train", images, np.arange(30, dtype=np.uint8) % 10)
    _assert_stops(smoke_output, tmp_path, INGESTION, r"images are 32x32")


def test_empty_test_split(smoke_output, smoke_digits, tmp_path):
    train_x, train_y, _, _ = smoke_digits
    support.write_idx(str(tmp_path), "train", train_x, train_y)
    support.write_idx(str(tmp_path), "t10k", np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8))
    _assert_stops(smoke_output, tmp_path, DataAnomaliesError, r"split 'test', dataset: no examples")


def test_a_vanished_class_is_drift(smoke_output, smoke_digits, tmp_path):
    """Digit 7 missing from the training files: valid against the schema, but the label distribution
    moved away from the last validated data's (the smoke run's)."""
    train_x, train_y, test_x, test_y = smoke_digits
    keep = train_y != 7
    support.write_idx(str(tmp_path), "train", train_x[keep], train_y[keep])
    support.write_idx(str(tmp_path), "t10k", test_x, test_y)
    _assert_stops(
        smoke_output,
        tmp_path,
        DataAnomaliesError,
        r"split 'train', feature 'label': against the last validated data: distribution drift.*"
        r"maximum difference is: 7",
    )
