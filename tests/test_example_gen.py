"""DigitExampleGen under TFX (LocalDagRunner) on small data: splits, labels, record limits,
determinism, bad input."""

import collections
import glob
import os
import shutil
from typing import Dict, List, Optional

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.digit_example_gen import DigitExampleGen, component
from components.digit_example_gen.readers import DigitDataError
from models import features
from pipeline import configs
from tests import support

LIMITS = {features.TRAIN_SPLIT: 1200, features.TEST_SPLIT: 300}


def run_example_gen(
    data_root: str, root: str, record_limits: Optional[Dict[str, int]] = None
) -> Dict[str, List[bytes]]:
    """Runs a one-component pipeline; returns the serialized examples of each split."""
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="examplegen-test",
        pipeline_root=os.path.join(root, "pipeline"),
        components=[DigitExampleGen(input_base=data_root, record_limits=record_limits)],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")
        ),
        beam_pipeline_args=list(configs.beam_args()),
        enable_cache=False,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    splits = {}
    for split_dir in glob.glob(os.path.join(root, "pipeline", "DigitExampleGen", "examples", "*", "Split-*")):
        files = tf.io.gfile.glob(os.path.join(split_dir, "*.gz"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        splits[os.path.basename(split_dir)[len("Split-") :]] = [r.numpy() for r in records]
    return splits


def labels_of(records: List[bytes]) -> collections.Counter:
    counts = collections.Counter()
    for record in records:
        example = tf.train.Example.FromString(record)
        assert len(example.features.feature[features.IMAGE_KEY].int64_list.value) == features.NUM_PIXELS
        counts[example.features.feature[features.LABEL_KEY].int64_list.value[0]] += 1
    return counts


@pytest.mark.component
def test_first_records_of_the_bundled_mnist_split_labelled_and_deterministic(tmp_path):
    first = run_example_gen(configs.DATA_ROOT, str(tmp_path / "a"), LIMITS)
    assert sorted(first) == sorted(features.SPLITS)
    assert len(first["train"]) + len(first["eval"]) == 1200 and len(first["test"]) == 300
    # About 1 in 12 held out for eval (binomial spread around 100).
    assert 60 <= len(first["eval"]) <= 140
    # Exactly the first 1,200 training records, each in one of train/eval, with its label.
    expected = collections.Counter(support.mnist_digits("train", 1200)[1].tolist())
    assert labels_of(first["train"]) + labels_of(first["eval"]) == expected
    assert labels_of(first["test"]) == collections.Counter(support.mnist_digits("t10k", 300)[1].tolist())
    second = run_example_gen(configs.DATA_ROOT, str(tmp_path / "b"), LIMITS)
    for split in features.SPLITS:
        assert sorted(first[split]) == sorted(second[split]), f"split {split} differs between runs"


@pytest.mark.component
def test_csv_with_labelled_test_file(tmp_path):
    images, labels = support.random_digits(60)
    data = tmp_path / "kaggle"
    support.write_csv(str(data / "train.csv"), images[:48], labels[:48])
    support.write_csv(str(data / "test.csv"), images[48:], labels[48:])
    splits = run_example_gen(str(data), str(tmp_path / "run"))
    assert len(splits["train"]) + len(splits["eval"]) == 48 and len(splits["test"]) == 12


@pytest.mark.component
def test_png_folders_without_test_files_carve_a_test_split(tmp_path):
    images, labels = support.random_digits(120)
    images[:, [0, -1], :] = 0  # Dark border: MNIST polarity, kept as it is.
    images[:, :, [0, -1]] = 0
    support.write_pngs(str(tmp_path / "pngs"), images, labels)
    splits = run_example_gen(str(tmp_path / "pngs"), str(tmp_path / "run"))
    assert sorted(splits) == sorted(features.SPLITS)
    assert sum(len(v) for v in splits.values()) == 120
    assert len(splits["train"]) > len(splits["eval"]) and len(splits["test"]) > 0


def test_layouts_detected(tmp_path):
    images, labels = support.random_digits(3)
    support.write_idx(str(tmp_path / "idx"), "train", images, labels, gz=False)
    support.write_pngs(str(tmp_path / "png" / "train"), images, labels)
    support.write_pngs(str(tmp_path / "png" / "test"), images, labels)
    idx = component.detect_input_config(str(tmp_path / "idx"))
    assert [(s.name, s.pattern) for s in idx.splits] == [("train", component.IDX_TRAIN)]
    png = component.detect_input_config(str(tmp_path / "png"))
    assert [s.pattern for s in png.splits] == [component.PNG_TRAIN, component.PNG_TEST]
    with pytest.raises(DigitDataError, match="no digit data found"):
        component.detect_input_config(str(tmp_path / "empty"))


@pytest.mark.component
def test_bad_record_fails_by_name_and_leaves_no_output(tmp_path):
    images, labels = support.random_digits(30)
    labels = labels.astype(np.int64)
    labels[17] = 12
    data = tmp_path / "bad"
    support.write_csv(str(data / "train.csv"), images, labels)
    with pytest.raises(Exception, match=r"train.csv, line 19: label 12 outside 0-9"):
        run_example_gen(str(data), str(tmp_path / "run"))
    written = glob.glob(str(tmp_path / "run" / "pipeline" / "DigitExampleGen" / "examples" / "*" / "Split-*" / "*"))
    assert written == []


@pytest.mark.component
def test_checksum_mismatch_is_refused(tmp_path):
    """Also with a record limit: the files listed in SHA256SUMS are checked whole before any is read."""
    data = tmp_path / "tampered"
    shutil.copytree(configs.DATA_ROOT, data)
    with open(data / "t10k-labels-idx1-ubyte.gz", "ab") as f:
        f.write(b"\0")
    with pytest.raises(Exception, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 .* does not match SHA256SUMS"):
        run_example_gen(str(data), str(tmp_path / "run"), LIMITS)
