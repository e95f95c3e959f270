"""Beam executor of DigitExampleGen: digit files -> tf.Example splits train / eval / test.

TFX's FileBasedExampleGen can either keep the input splits or hash-partition a single input, not both.
Digits need both: the official test files stay the test split untouched, while the training files are
partitioned into train and eval. So `output_config.split_config` here partitions the `train` input
split only, and any other input split is written as it is.

With a feedback root (`models.feedback`), the pictures of its newest sealed spans join the `train`
input split before that partition, and the Examples record which spans they hold.
"""

import bisect
import dataclasses
import hashlib
import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import struct_pb2
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, input_processor, utils, write_split
from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.digit_example_gen import readers
from models import features, feedback


def to_example(digit: readers.Digit) -> bytes:
    """Serialises one digit as the tf.Example every later component reads."""
    _, pixels, label = digit
    feature = {
        features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=pixels.reshape(-1).tolist())),
        features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def to_unlabeled_example(numbered: Tuple[int, np.ndarray]) -> bytes:
    """An unlabeled digit as a tf.Example: its pixels and its number in its file (Kaggle's ImageId)."""
    image_id, pixels = numbered
    feature = {
        features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=pixels.reshape(-1).tolist())),
        features.IMAGE_ID_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[image_id])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def hash_partition(record: bytes, num_partitions: int, cumulative_buckets: List[int]) -> int:
    """Same record, same split, on any machine and in any order (unlike a random split)."""
    del num_partitions  # Implied by cumulative_buckets; Beam passes it anyway.
    bucket = int(hashlib.sha256(record).hexdigest(), 16) % cumulative_buckets[-1]
    return bisect.bisect(cumulative_buckets, bucket)


def record_limits(exec_properties: Dict[str, Any]) -> Dict[str, int]:
    """The `record_limits` DigitExampleGen packed into its custom config (none: read everything)."""
    raw = exec_properties.get(specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return {}
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(raw, config)
    limits = struct_pb2.Struct()
    if not config.custom_config.Unpack(limits):
        raise ValueError(f"DigitExampleGen custom_config is not its record limits: {raw}")
    return {split: int(value) for split, value in limits.items()}


FEEDBACK_BASE_KEY = "feedback_base"
"""Exec property: the feedback root (the layout of `models.feedback`); without it no feedback is read."""
FEEDBACK_WINDOW_KEY = "feedback_window"
"""Exec property: how many of the newest sealed feedback spans a run reads."""
FEEDBACK_SPANS = "feedback_spans"
"""Custom property of the Examples: the feedback spans read, comma-separated ("3,4,5"; "" for none)."""
FEEDBACK_DIGITS = "feedback_digits"
"""Custom property of the Examples: how many feedback digits were read."""


@dataclasses.dataclass(frozen=True)
class FeedbackWindow:
    """The sealed feedback spans one execution reads, and their pictures."""

    root: str
    spans: Tuple[int, ...]
    pictures: Tuple[str, ...]


def feedback_window(exec_properties: Dict[str, Any]) -> Optional[FeedbackWindow]:
    """The newest sealed spans under the feedback root (None without one), resolved when the executor
    starts rather than when the pipeline is compiled, so that a recurring run reads the spans sealed
    since; resolved once, so that a span sealed while it runs is the next run's, whole."""
    root = exec_properties.get(FEEDBACK_BASE_KEY)
    if not root:
        return None
    spans = feedback.window(root, int(exec_properties.get(FEEDBACK_WINDOW_KEY) or 0))
    return FeedbackWindow(root, tuple(spans), tuple(p for span in spans for p in feedback.pictures(root, span)))


def span_ranges(spans: Sequence[int]) -> str:
    """Spans for people, consecutive ones as a range: [3, 4, 5] -> "3-5", [1, 3, 4] -> "1, 3-4"."""
    runs: List[List[int]] = []
    for span in sorted(spans):
        if runs and span == runs[-1][-1] + 1:
            runs[-1].append(span)
        else:
            runs.append([span])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def read_first(shards: List[readers.Shard], limit: int) -> List[readers.Digit]:
    """The first `limit` digits of the shards in order (one work item: a limit is for small runs)."""
    return list(itertools.islice(itertools.chain.from_iterable(readers.read_shard(s) for s in shards), limit))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def DigitsToExample(
    pipeline: beam.Pipeline,
    exec_properties: Dict[str, Any],
    split_pattern: str,
    limit: Optional[int] = None,
    labelled: bool = True,
) -> beam.pvalue.PCollection:
    """Reads every digit file matching `split_pattern` under `input_base` (or only its first `limit`
    digits) into serialized Examples; unlabeled CSV files keep each digit's number instead of a label."""
    pattern = f"{exec_properties[specs.INPUT_BASE_KEY].rstrip('/')}/{split_pattern}"
    paths = tf.io.gfile.glob(pattern)
    if not paths:
        raise readers.DigitDataError(pattern, "no input files match")
    if not labelled:
        return (
            pipeline
            | "PlanFiles" >> beam.Create(sorted(paths), reshuffle=False)
            | "ReadUnlabeled" >> beam.FlatMap(readers.read_unlabeled_csv)
            | "ToUnlabeledExample" >> beam.Map(to_unlabeled_example)
        )
    shards = readers.plan_shards(paths)
    if limit is not None:
        logging.info("Reading the first %d digits of %d files for %s", limit, len(paths), pattern)
        digits = pipeline | "ReadFirst" >> beam.Create([shards], reshuffle=False) | beam.FlatMap(read_first, limit)
    else:
        logging.info("Reading %d files in %d work items for %s", len(paths), len(shards), pattern)
        digits = read_shards(pipeline, shards)
    return digits | "ToExample" >> beam.Map(to_example)


def read_shards(pipeline: beam.Pipeline, shards: List[readers.Shard]) -> beam.pvalue.PCollection:
    """Every digit of the shards, one work item each, spread over the workers."""
    return (
        pipeline
        | "PlanShards" >> beam.Create(shards, reshuffle=False)
        | "SpreadShards" >> beam.Reshuffle()
        | "ReadDigits" >> beam.FlatMap(readers.read_shard)
    )


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def PicturesToExample(pipeline: beam.Pipeline, paths: Sequence[str]) -> beam.pvalue.PCollection:
    """Labelled pictures named one by one (`.../<label>/<name>.png`, a feedback window's) into
    serialized Examples, read and framed as a PNG-folder dataset is."""
    return read_shards(pipeline, readers.plan_shards(paths)) | "ToExample" >> beam.Map(to_example)


def output_split_names(input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output) -> List[str]:
    """Input split names, with `train` replaced by the splits it is partitioned into."""
    names: List[str] = []
    for split in input_config.splits:
        if split.name == features.TRAIN_SPLIT and output_config.split_config.splits:
            names += [s.name for s in output_config.split_config.splits]
        else:
            names.append(split.name)
    if len(set(names)) != len(names):
        raise ValueError(f"Duplicate split names {names} in input_config / output_config")
    return names


def _configs(exec_properties: Dict[str, Any]):
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], input_config)
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(exec_properties[specs.OUTPUT_CONFIG_KEY], output_config)
    return input_config, output_config


def fingerprint_inputs(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """Span, version and fingerprint of the input files, as TFX's FileBasedExampleGen driver works them
    out; for orchestrators that run the executor without that driver (open-source Kubeflow Pipelines),
    so that the Examples artifact records what was read wherever it runs.

    Where the driver ran first, its values are kept, typed as TFX's executor needs them: Vertex AI runs
    TFX's Kubeflow driver (`lifecycle.preCacheCheck`), whose ExecutorOutput carries the span as a JSON
    number (a float) and no version at all for patterns without `{VERSION}`."""
    if exec_properties.get(utils.FINGERPRINT_PROPERTY_NAME):
        version = exec_properties.get(utils.VERSION_PROPERTY_NAME)
        return {
            **exec_properties,
            utils.SPAN_PROPERTY_NAME: int(exec_properties.get(utils.SPAN_PROPERTY_NAME) or 0),
            utils.VERSION_PROPERTY_NAME: None if version is None else int(version),
        }
    input_config, _ = _configs(exec_properties)
    processor = input_processor.FileBasedInputProcessor(exec_properties[specs.INPUT_BASE_KEY], input_config.splits)
    span, version = processor.resolve_span_and_version()
    return {
        **exec_properties,
        utils.SPAN_PROPERTY_NAME: span,
        utils.VERSION_PROPERTY_NAME: version,
        utils.FINGERPRINT_PROPERTY_NAME: processor.get_input_fingerprint(span, version),
    }


def record_feedback(artifact: types.Artifact, window: FeedbackWindow) -> None:
    """Notes on the Examples which feedback spans they hold, for the run's summary and report (TFX's
    own `span` property stays that of the base data)."""
    artifact.set_string_custom_property(FEEDBACK_SPANS, ",".join(str(span) for span in window.spans))
    artifact.set_int_custom_property(FEEDBACK_DIGITS, len(window.pictures))
    if window.spans:
        logging.info(
            "Read %d feedback digits from spans %s of %s", len(window.pictures), span_ranges(window.spans), window.root
        )
    else:
        logging.info("No sealed feedback span in %s: training on the base data only", window.root)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Writes digits as gzipped TFRecords of tf.Example, one folder per split."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return DigitsToExample

    def GenerateExamplesByBeam(
        self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any], feedback_pictures: Sequence[str] = ()
    ) -> Dict[str, beam.pvalue.PCollection]:
        """The splits; `feedback_pictures` join the `train` input split before its hash partition, so
        that corrections land in `eval` as often as any training digit (and the record limits, which
        are for the base data, never cut them)."""
        input_config, output_config = _configs(exec_properties)
        checked = readers.verify_checksums(exec_properties[specs.INPUT_BASE_KEY])
        logging.info("Verified %d checksums in %s", checked, exec_properties[specs.INPUT_BASE_KEY])
        limits = record_limits(exec_properties)
        result = {}
        for split in input_config.splits:
            examples = pipeline | f"InputToRecord[{split.name}]" >> DigitsToExample(
                exec_properties, split.pattern, limits.get(split.name), split.name != features.UNLABELED_SPLIT
            )
            if split.name == features.TRAIN_SPLIT and feedback_pictures:
                corrections = pipeline | "ReadFeedback" >> PicturesToExample(feedback_pictures)
                examples = (examples, corrections) | "WithFeedback" >> beam.Flatten()
            partition = output_config.split_config.splits
            if split.name == features.TRAIN_SPLIT and partition:
                cumulative, total = [], 0
                for part in partition:
                    total += part.hash_buckets
                    cumulative.append(total)
                parts = examples | "SplitTrain" >> beam.Partition(hash_partition, len(cumulative), cumulative)
                result.update({part.name: pcoll for part, pcoll in zip(partition, parts)})
            else:
                result[split.name] = examples
        return result

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        exec_properties = fingerprint_inputs(exec_properties)
        examples = output_dict[specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        example_gen_driver.update_output_artifact(exec_properties, artifact.mlmd_artifact)
        artifact.split_names = artifact_utils.encode_split_names(output_split_names(*_configs(exec_properties)))
        window = feedback_window(exec_properties)
        file_format = exec_properties.get(specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        with self._make_beam_pipeline() as pipeline:
            splits = self.GenerateExamplesByBeam(pipeline, exec_properties, window.pictures if window else ())
            for name, split in splits.items():
                _ = split | f"WriteSplit[{name}]" >> write_split.WriteSplit(
                    artifact_utils.get_split_uri(examples, name), file_format, exec_properties
                )
        if window:
            record_feedback(artifact, window)
        examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))
        logging.info("Examples generated: splits %s", artifact.split_names)
