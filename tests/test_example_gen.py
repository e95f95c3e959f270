"""DigitExampleGen under TFX (LocalDagRunner) on small data: splits, labels, record limits,
determinism, bad input, feedback spans."""

import collections
import glob
import itertools
import json
import os
import re
import shutil
from typing import Dict, List, Optional

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.compiler import compiler

from components.digit_example_gen import DigitExampleGen, component, executor, readers
from components.digit_example_gen.readers import DigitDataError
from models import features, feedback
from pipeline import configs, kubeflow_runner, local_runner, summary
from pipeline.pipeline import always_run
from tests import support

LIMITS = {features.TRAIN_SPLIT: 1200, features.TEST_SPLIT: 300}


def run_example_gen(
    data_root: str,
    root: str,
    record_limits: Optional[Dict[str, int]] = None,
    feedback_base: Optional[str] = None,
    feedback_window: Optional[int] = None,
) -> Dict[str, List[bytes]]:
    """Runs a one-component pipeline; returns the serialized examples of each split."""
    example_gen = DigitExampleGen(
        input_base=data_root,
        record_limits=record_limits,
        feedback_base=feedback_base,
        feedback_window=feedback_window,
    )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="examplegen-test",
        pipeline_root=os.path.join(root, "pipeline"),
        components=[example_gen],
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


def examples_artifact(root: str) -> metadata_store_pb2.Artifact:
    """The Examples a one-component run of `run_example_gen` recorded in its ML Metadata store."""
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(os.path.join(root, "metadata.db"))
    (examples,) = mlmd.MetadataStore(config).get_artifacts_by_type("Examples")
    return examples


def small_idx(folder: str) -> str:
    """48 training and 12 test digits, random, as MNIST IDX files."""
    images, labels = support.random_digits(60)
    support.write_idx(folder, "train", images[:48], labels[:48])
    support.write_idx(folder, "t10k", images[48:], labels[48:])
    return folder


def fill_spans(root: str, sealed: int, open_pictures: int = 0) -> Dict[int, List[bytes]]:
    """Spans 1..`sealed`, sealed, span k holding k + 1 random pictures of the digit k (then an open span
    of `open_pictures` of the digit 9); each span's Examples, as DigitExampleGen would write them."""
    written: Dict[int, List[bytes]] = collections.defaultdict(list)
    counts = [(span, span % 10, span + 1) for span in range(1, sealed + 1)] + [(sealed + 1, 9, open_pictures)]
    for span, label, count in counts:
        images, _ = support.random_digits(count, seed=span)
        images[:, [0, -1], :] = 0  # Dark border: MNIST polarity, kept as it is.
        images[:, :, [0, -1]] = 0
        for image in images:
            picture = support.png_bytes(image)
            path = feedback.add(root, picture, label)
            written[span].append(executor.to_example((path, readers.decode_image(picture, path), label)))
        if span <= sealed:
            assert feedback.seal(root) == span
    return written


def split_of(record: bytes) -> str:
    """The split DigitExampleGen's default hash partition (11 of 12 buckets to train, 1 to eval) puts a
    training record of a dataset with test files in."""
    return [features.TRAIN_SPLIT, features.EVAL_SPLIT][executor.hash_partition(record, 2, [11, 12])]


@pytest.mark.component
def test_feedback_window_joins_the_training_files_before_the_partition(tmp_path):
    """Sealed spans 1-4 and an open span 5, window 2: the base digits and exactly spans 3-4's pictures,
    each in the split the hash partition gives it, and the Examples say which spans."""
    root = str(tmp_path / "feedback")
    written = fill_spans(root, sealed=4, open_pictures=6)
    splits = run_example_gen(small_idx(str(tmp_path / "data")), str(tmp_path / "run"), None, root, 2)
    assert sorted(splits) == sorted(features.SPLITS) and len(splits[features.TEST_SPLIT]) == 12
    training = splits[features.TRAIN_SPLIT] + splits[features.EVAL_SPLIT]
    corrections = written[3] + written[4]
    assert len(training) == 48 + len(corrections) == 48 + 9
    assert collections.Counter(training) & collections.Counter(corrections) == collections.Counter(corrections)
    unread = set(itertools.chain(written[1], written[2], written[5]))
    assert len(unread) == 2 + 3 + 6 and not unread & set(training)
    base_labels = collections.Counter(support.random_digits(48)[1].tolist())
    assert labels_of(training) == base_labels + collections.Counter({3: 4, 4: 5})
    for record in corrections:
        assert record in splits[split_of(record)]
    examples = examples_artifact(str(tmp_path / "run"))
    assert examples.custom_properties[executor.FEEDBACK_SPANS].string_value == "3,4"
    assert examples.custom_properties[executor.FEEDBACK_DIGITS].int_value == 9
    assert summary.describe_feedback(examples) == "spans 3-4 (9 digits)"


@pytest.mark.component
def test_feedback_without_a_sealed_span_changes_nothing(tmp_path):
    data = small_idx(str(tmp_path / "data"))
    root = str(tmp_path / "feedback")
    fill_spans(root, sealed=0, open_pictures=5)
    plain = run_example_gen(data, str(tmp_path / "plain"))
    with_feedback = run_example_gen(data, str(tmp_path / "run"), None, root, configs.FEEDBACK_WINDOW)
    assert sorted(with_feedback) == sorted(plain) == sorted(features.SPLITS)
    for split in features.SPLITS:
        assert sorted(with_feedback[split]) == sorted(plain[split]), split
    examples = examples_artifact(str(tmp_path / "run"))
    assert examples.custom_properties[executor.FEEDBACK_SPANS].string_value == ""
    assert summary.describe_feedback(examples) == "no sealed span"
    assert summary.describe_feedback(examples_artifact(str(tmp_path / "plain"))) is None


@pytest.mark.component
def test_an_unreadable_feedback_picture_fails_by_name(tmp_path):
    root = str(tmp_path / "feedback")
    fill_spans(root, sealed=1)
    broken = feedback.add(root, b"not a picture", 7)
    feedback.seal(root)
    # Beam re-raises what a worker raised as a RuntimeError that names it.
    with pytest.raises(Exception, match=rf"DigitDataError: {re.escape(broken)}: unreadable image"):
        run_example_gen(small_idx(str(tmp_path / "data")), str(tmp_path / "run"), None, root, 2)


def test_the_feedback_window_is_the_newest_sealed_spans_read_when_ingestion_starts(tmp_path):
    root = str(tmp_path / "feedback")
    assert executor.feedback_window({}) is None
    empty = executor.feedback_window({executor.FEEDBACK_BASE_KEY: root, executor.FEEDBACK_WINDOW_KEY: 3})
    assert empty == executor.FeedbackWindow(root, (), ())
    fill_spans(root, sealed=3, open_pictures=2)
    window = executor.feedback_window({executor.FEEDBACK_BASE_KEY: root, executor.FEEDBACK_WINDOW_KEY: 2})
    assert window is not None and window.spans == (2, 3)
    assert window.pictures == tuple(feedback.pictures(root, 2) + feedback.pictures(root, 3))
    assert len(window.pictures) == 3 + 4
    assert all(feedback.span_folder(root, 4) not in p for p in window.pictures)
    none = executor.feedback_window({executor.FEEDBACK_BASE_KEY: root, executor.FEEDBACK_WINDOW_KEY: 0})
    assert none == executor.FeedbackWindow(root, (), ())
    feedback.seal(root)  # Sealed after that run started: the next run's.
    assert executor.feedback_window({executor.FEEDBACK_BASE_KEY: root, executor.FEEDBACK_WINDOW_KEY: 2}).spans == (3, 4)
    assert [executor.span_ranges(s) for s in ([3, 4, 5], [1, 3, 4], [7], [])] == ["3-5", "1, 3-4", "7", ""]


@pytest.mark.component
def test_a_feedback_root_makes_ingestion_run_every_time(tmp_path):
    """TFX fingerprints only the base data's files: with a feedback root, DigitExampleGen is never taken
    from a cache, locally or on Vertex AI; without one, it is cached as before."""
    data = small_idx(str(tmp_path / "data"))

    def uncached(feedback_root: Optional[str]) -> set:
        settings = configs.settings("smoke", data_root=data, feedback_root=feedback_root)
        ir = compiler.Compiler().compile(local_runner.build(settings, str(tmp_path / "out")))
        nodes = [node.pipeline_node for node in ir.nodes]
        return {node.node_info.id for node in nodes if always_run(node.node_info.id, node.parameters.parameters)}

    assert uncached(None) == {"ServedBaseline", "AnomalyGate"}
    assert uncached(str(tmp_path / "feedback")) == {"ServedBaseline", "AnomalyGate", "DigitExampleGen"}
    # Vertex AI caches ingestion on its driver's fingerprint of the base data: not with a feedback root.
    settings = configs.settings("smoke", feedback_root="gs://bucket/feedback", feedback_window=2)
    path = kubeflow_runner.compile_pipeline(
        settings, str(tmp_path / "job.json"), "vertex", "gs://bucket/tfx", "registry.example/digits:1"
    )
    with open(path) as f:
        tasks = json.load(f)["pipelineSpec"]["root"]["dag"]["tasks"]
    assert {name for name, task in tasks.items() if "cachingOptions" not in task} == {
        "ServedBaseline",
        "AnomalyGate",
        "DigitExampleGen",
    }
    parameters = tasks["DigitExampleGen"]["inputs"]["parameters"]
    assert parameters["feedback_base"]["runtimeValue"]["constant"] == "gs://bucket/feedback"
    assert parameters["feedback_window"]["runtimeValue"]["constant"] == 2
    with pytest.raises(ValueError, match="feedback window -1"):
        configs.settings(feedback_root="/f", feedback_window=-1)
