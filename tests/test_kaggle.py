"""Kaggle's Digit Recognizer files: a labelled train.csv beside the unlabeled test.csv is the digits to
train on and the digits to score (the run that scores them into submission.csv is
`tests/test_class_names.py`'s)."""

import pytest

from components.digit_example_gen import component
from components.digit_example_gen.readers import DigitDataError, read_unlabeled_csv
from tests import support


def test_an_unlabeled_test_csv_is_the_digits_to_score(tmp_path):
    images, labels = support.random_digits(4)
    support.write_csv(str(tmp_path / "train.csv"), images, labels)
    support.write_unlabeled_csv(str(tmp_path / "test.csv"), images[:2])
    config = component.detect_input_config(str(tmp_path))
    assert [(s.name, s.pattern) for s in config.splits] == [("train", "train.csv"), ("unlabeled", "test.csv")]
    assert [image_id for image_id, _ in read_unlabeled_csv(str(tmp_path / "test.csv"))] == [1, 2]
    (tmp_path / "bad.csv").write_text(",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join(["0"] * 783) + "\n")
    with pytest.raises(DigitDataError, match=r"bad.csv, line 2: expected 784 columns, found 783"):
        list(read_unlabeled_csv(str(tmp_path / "bad.csv")))
