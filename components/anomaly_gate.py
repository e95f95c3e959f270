"""AnomalyGate: stops the pipeline when the data is bad, before anything is trained on it.

ExampleValidator only records anomalies; TFX would go on to train on the bad data. This component fails
with a readable list instead, and Transform runs after it, so no model is trained or pushed on bad data.
It also compares the label distribution of the `train` split with that of the last data that passed
this gate (TFDV's drift comparator, threshold in the curated schema), so a class that vanished or
collapsed stops the run too. Data that passes is recorded as `validated_statistics`: the next run's
reference.

The reference is found through a small file at a known place beside the served models (`reference`),
which names a copy of the last validated statistics kept beside it; the gate reads it before and
rewrites it after a pass. (The copy, not the artifact: on a Kubeflow cluster whose artifacts live on an
object store TensorFlow cannot open, a later pod reads only what the launcher downloads for it, and the
reference is no input.) TFX's examples would resolve the reference from ML Metadata with a Resolver node, which
open-source Kubeflow Pipelines cannot run (and a custom artifact type in a resolver compiles to a query
that matches any artifact); a file reads the same on every orchestrator. The gate reads state outside
its inputs, so every runner runs it every time (never from a cache).
"""

import os
import time
import uuid
from typing import List, Optional

import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics, Schema
from tfx.utils import io_utils

from components.artifacts import ValidatedStatistics
from models import features

STATISTICS_FILE = "FeatureStats.pb"
"""StatisticsGen's file in each `Split-<name>` folder."""
REFERENCE_COPIES = "validated_statistics"
"""Beside the reference file: a folder per passed run, holding its statistics."""
DRIFT_SPLIT = features.TRAIN_SPLIT
"""The split whose label distribution must not drift: the one the model learns from."""


class DataAnomaliesError(RuntimeError):
    """The data does not match the curated schema or drifted; the message lists every anomaly found."""


def _describe(found: anomalies_pb2.Anomalies, split: str, what: str = "") -> List[str]:
    lines = []
    for feature, info in sorted(found.anomaly_info.items()):
        reasons = "; ".join(r.description or r.short_description for r in info.reason)
        lines.append(f"split '{split}', feature '{feature}': {what}{info.short_description}: {reasons}")
    if found.HasField("dataset_anomaly_info"):
        info = found.dataset_anomaly_info
        lines.append(f"split '{split}', dataset: {what}{info.short_description}: {info.description}")
    return lines


def describe_anomalies(anomalies: ExampleAnomalies) -> List[str]:
    """One line per anomaly: split, feature, and TFDV's description of what is wrong."""
    lines = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), DEFAULT_FILE_NAME)
        lines += _describe(load_anomalies_binary(path), split)
    return lines


def _statistics_path(uri: str, split: str) -> str:
    return os.path.join(uri, f"Split-{split}", STATISTICS_FILE)


def _split_statistics(uri: str, split: str):
    return tfdv.load_stats_binary(_statistics_path(uri, split))


def describe_empty_splits(statistics: ExampleStatistics) -> List[str]:
    """TFDV validates an empty dataset without complaint (even with `min_examples_count`), yet an empty
    split would train on nothing or evaluate on nothing."""
    return [
        f"split '{split}', dataset: no examples"
        for split in artifact_utils.decode_split_names(statistics.split_names)
        if not any(d.num_examples for d in _split_statistics(statistics.uri, split).datasets)
    ]


def describe_drift(statistics: ExampleStatistics, reference_uri: str, schema: Schema) -> List[str]:
    """One line per feature whose distribution moved past the schema's drift comparator threshold,
    against the statistics at `reference_uri` (laid out as ExampleStatistics)."""
    schema_proto = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    found = tfdv.validate_statistics(
        _split_statistics(statistics.uri, DRIFT_SPLIT),
        schema_proto,
        previous_statistics=_split_statistics(reference_uri, DRIFT_SPLIT),
    )
    drift = anomalies_pb2.Anomalies()
    for feature, info in found.anomaly_info.items():
        reasons = [r for r in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(r.type).startswith("COMPARATOR_")]
        if reasons:
            drift.anomaly_info[feature].short_description = "distribution drift"
            drift.anomaly_info[feature].reason.extend(reasons)
    return _describe(drift, DRIFT_SPLIT, "against the last validated data: ")


def read_reference(reference: str) -> Optional[str]:
    """The URI of the last validated statistics, as the file `reference` names it (None: no data
    passed the gate yet, or the statistics it names are gone)."""
    if not tf.io.gfile.exists(reference):
        return None
    with tf.io.gfile.GFile(reference) as f:
        uri = f.read().strip()
    if not tf.io.gfile.exists(_statistics_path(uri, DRIFT_SPLIT)):
        logging.warning("%s names %s, which holds no statistics any more: no drift check this time", reference, uri)
        return None
    return uri


def record_validated(statistics: ExampleStatistics, validated: ValidatedStatistics, reference: str) -> str:
    """Copies the statistics into `validated` and into a new folder beside `reference` (where every later
    run can read them, whichever pod or store holds this run's artifacts), then points `reference` at
    that folder, written whole by rename. Returns the folder."""
    kept = os.path.join(
        os.path.dirname(reference), REFERENCE_COPIES, f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    )
    for split in artifact_utils.decode_split_names(statistics.split_names):
        for target in (_statistics_path(validated.uri, split), _statistics_path(kept, split)):
            tf.io.gfile.makedirs(os.path.dirname(target))
            tf.io.gfile.copy(_statistics_path(statistics.uri, split), target, overwrite=True)
    staging = f"{reference}.{uuid.uuid4().hex}.tmp"
    with tf.io.gfile.GFile(staging, "w") as f:
        f.write(kept + "\n")
    tf.io.gfile.rename(staging, reference, overwrite=True)
    return kept


@component
def AnomalyGate(
    anomalies: InputArtifact[ExampleAnomalies],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    validated_statistics: OutputArtifact[ValidatedStatistics],
    reference: Parameter[str],
) -> None:
    """Raises DataAnomaliesError listing every anomaly and drift, if there is any; else records the
    statistics as the next run's reference."""
    problems = describe_anomalies(anomalies) + describe_empty_splits(statistics)
    reference_uri = read_reference(reference)
    if reference_uri is None:
        logging.info("No drift check: no data passed this gate before (no %s)", reference)
    else:
        logging.info("Drift check against the last validated statistics, %s", reference_uri)
        problems += describe_drift(statistics, reference_uri, schema)
    if problems:
        raise DataAnomaliesError(
            f"{len(problems)} data anomal{'y' if len(problems) == 1 else 'ies'}; nothing is trained or "
            "pushed:\n  " + "\n  ".join(problems)
        )
    record_validated(statistics, validated_statistics, reference)
