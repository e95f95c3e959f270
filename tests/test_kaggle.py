"""Kaggle's Digit Recognizer end to end: trained from train.csv, the unlabeled test.csv scored by the
blessed model through BulkInferrer into submission.csv (`ImageId,Label`, in order)."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from components.digit_example_gen import component
from components.digit_example_gen.readers import DigitDataError, read_unlabeled_csv
from models import features
from pipeline import configs, local_runner, summary
from tests import support


def _unlabeled_csv(path, images) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([f"pixel{i}" for i in range(features.NUM_PIXELS)])
        out.writerows(image.reshape(-1).tolist() for image in images)


def test_an_unlabeled_test_csv_is_the_digits_to_score(tmp_path):
    images, labels = support.random_digits(4)
    support.write_csv(str(tmp_path / "train.csv"), images, labels)
    _unlabeled_csv(tmp_path / "test.csv", images[:2])
    config = component.detect_input_config(str(tmp_path))
    assert [(s.name, s.pattern) for s in config.splits] == [("train", "train.csv"), ("unlabeled", "test.csv")]
    assert [image_id for image_id, _ in read_unlabeled_csv(str(tmp_path / "test.csv"))] == [1, 2]
    (tmp_path / "bad.csv").write_text(",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join(["0"] * 783) + "\n")
    with pytest.raises(DigitDataError, match=r"bad.csv, line 2: expected 784 columns, found 783"):
        list(read_unlabeled_csv(str(tmp_path / "bad.csv")))


@pytest.mark.component
def test_kaggle_train_csv_to_submission_csv(tmp_path):
    images, labels = support.mnist_digits("train", 240)
    support.write_csv(str(tmp_path / "kaggle" / "train.csv"), images, labels)
    unlabeled = support.mnist_digits("t10k", 12)[0]
    _unlabeled_csv(tmp_path / "kaggle" / "test.csv", unlabeled)
    output = str(tmp_path / "output")
    local_runner.run(configs.settings("smoke", data_root=str(tmp_path / "kaggle"), min_accuracy=0.0), output)
    run = summary.latest_run(configs.metadata_path(output))
    assert run.pushed and run.submission, run
    with open(run.submission) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "Label"] and [int(r[0]) for r in rows[1:]] == list(range(1, 13))
    # The labels are the pushed model's own answers for those digits, in order.
    signature = tf.saved_model.load(run.pushed_to).signatures[features.IMAGES_SIGNATURE]
    expected = signature(**{features.IMAGES_INPUT: tf.constant(unlabeled.astype(np.float32))})[features.DIGIT_OUTPUT]
    assert [int(r[1]) for r in rows[1:]] == expected.numpy().tolist()
