"""DigitExampleGen: a FileBasedExampleGen for MNIST-style digit datasets in IDX, CSV or PNG form.

Being a FileBasedExampleGen, it gets TFX's input fingerprinting (a changed file reruns ingestion, an
unchanged one is cached), spans and versions, and Beam for scale.
"""

import csv
import os
from typing import Dict, Optional

import tensorflow as tf
from google.protobuf import any_pb2, struct_pb2
from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import component_spec, standard_artifacts, standard_component_specs

from components.digit_example_gen import executor
from components.digit_example_gen.readers import DigitDataError
from models import features

IDX_TRAIN = "train-*-idx?-ubyte*"
IDX_TEST = "t10k-*-idx?-ubyte*"
CSV_TRAIN = "train.csv"
CSV_TEST = "test.csv"
PNG_TRAIN = "train/*/*.png"
PNG_TEST = "test/*/*.png"
PNG_FLAT = "*/*.png"


def _matches(input_base: str, pattern: str) -> bool:
    return bool(tf.io.gfile.glob(os.path.join(input_base, pattern)))


def _labelled_csv(path: str) -> bool:
    """Kaggle's own test.csv has no label column and so cannot be a test split."""
    with tf.io.gfile.GFile(path, "r") as f:
        header = next(csv.reader(f), [])
    return header[:1] == [features.LABEL_KEY]


def split_patterns(train: str, test: Optional[str] = None, unlabeled: Optional[str] = None) -> example_gen_pb2.Input:
    """Input config: where the training files are, the official test files if any, and digits to
    score without labels (Kaggle's test.csv) if any."""
    splits = [example_gen_pb2.Input.Split(name=features.TRAIN_SPLIT, pattern=train)]
    if test:
        splits.append(example_gen_pb2.Input.Split(name=features.TEST_SPLIT, pattern=test))
    if unlabeled:
        splits.append(example_gen_pb2.Input.Split(name=features.UNLABELED_SPLIT, pattern=unlabeled))
    return example_gen_pb2.Input(splits=splits)


def has_unlabeled(input_config: example_gen_pb2.Input) -> bool:
    return any(s.name == features.UNLABELED_SPLIT for s in input_config.splits)


def detect_input_config(input_base: str) -> example_gen_pb2.Input:
    """Finds the training files (and official test files, if any) under `input_base`.

    Layouts, tried in order: MNIST IDX files (`train-*` and `t10k-*`, gzipped or not); Kaggle CSV
    (`train.csv`, and `test.csv`: the test split if it has labels, else the unlabeled digits to score
    into a submission); PNG folders (`train/<digit>/*.png` and `test/<digit>/*.png`, or just
    `<digit>/*.png`).
    """
    layouts = [
        (IDX_TRAIN, IDX_TEST),
        (CSV_TRAIN, CSV_TEST),
        (PNG_TRAIN, PNG_TEST),
        (PNG_FLAT, None),
    ]
    for train, test in layouts:
        if not _matches(input_base, train):
            continue
        if test and _matches(input_base, test):
            if test != CSV_TEST or _labelled_csv(os.path.join(input_base, test)):
                return split_patterns(train, test)
            return split_patterns(train, unlabeled=test)
        return split_patterns(train)
    raise DigitDataError(
        input_base,
        "no digit data found: expected MNIST IDX files (train-images-idx3-ubyte[.gz] ...), "
        "a Kaggle train.csv, or PNG files in one folder per digit",
    )


def partition_config(
    input_config: example_gen_pb2.Input, eval_buckets: int, test_buckets: int, total_buckets: int
) -> example_gen_pb2.Output:
    """How the training files are split: eval always, test too when there are no test files."""
    has_test = any(s.name == features.TEST_SPLIT for s in input_config.splits)
    parts = [(features.EVAL_SPLIT, eval_buckets)] + ([] if has_test else [(features.TEST_SPLIT, test_buckets)])
    train_buckets = total_buckets - sum(b for _, b in parts)
    if train_buckets <= 0:
        raise ValueError(f"eval/test hash buckets {parts} leave nothing of {total_buckets} to train on")
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                for name, buckets in [(features.TRAIN_SPLIT, train_buckets)] + parts
            ]
        )
    )


def limits_config(record_limits: Dict[str, int]) -> Optional[example_gen_pb2.CustomConfig]:
    """`{"train": 2400, "test": 600}` -> ExampleGen's custom config (a Struct): read only the first N
    records of those input splits, for quick runs on any orchestrator."""
    if not record_limits:
        return None
    packed = any_pb2.Any()
    packed.Pack(struct_pb2.Struct(fields={k: struct_pb2.Value(number_value=v) for k, v in record_limits.items()}))
    return example_gen_pb2.CustomConfig(custom_config=packed)


class DigitExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's parameters, and the feedback root and window: parameters of their own, so
    that every orchestrator hands them to the executor by name, as it does `input_base`."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.FEEDBACK_BASE_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        executor.FEEDBACK_WINDOW_KEY: component_spec.ExecutionParameter(type=int, optional=True),
    }


class DigitExampleGen(FileBasedExampleGen):
    """Turns digit images into tf.Examples (`image`: 784 ints 0-255, `label`: int 0-9).

    Splits: `train` and `eval` are hash-partitioned from the training files; `test` is the official test
    files, or another hash partition of the training files when the dataset has none. `record_limits`
    reads only the first N records of an input split (`train`, `test`). With `feedback_base`, the
    pictures of its newest `feedback_window` sealed spans (`models.feedback`) are training files too.
    """

    SPEC_CLASS = DigitExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        input_base: str,
        eval_buckets: int = 1,
        test_buckets: int = 1,
        total_buckets: int = 12,
        input_config: Optional[example_gen_pb2.Input] = None,
        record_limits: Optional[Dict[str, int]] = None,
        feedback_base: Optional[str] = None,
        feedback_window: Optional[int] = None,
    ):
        if feedback_base and (feedback_window is None or feedback_window < 0):
            raise ValueError(f"feedback_window {feedback_window}: how many sealed spans of {feedback_base} to read")
        input_config = input_config or detect_input_config(input_base)
        spec = DigitExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=partition_config(input_config, eval_buckets, test_buckets, total_buckets),
            custom_config=limits_config(record_limits or {}),
            range_config=None,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            feedback_base=feedback_base or None,
            feedback_window=feedback_window if feedback_base else None,
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        # FileBasedExampleGen.__init__ builds TFX's own spec class and nothing else: this spec replaces it.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
