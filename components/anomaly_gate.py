"""AnomalyGate: stops the pipeline when the data is bad, before anything is trained on it.

ExampleValidator only records anomalies; TFX would go on to train on the bad data. This component fails
with a readable list instead, and Transform runs after it, so no model is trained or pushed on bad data.
It also compares the label distribution of the `train` split with that of the last data that passed
this gate (TFDV's drift comparator, threshold in the curated schema), so a class that vanished or
collapsed stops the run too. Data that passes is recorded as `validated_statistics`: the next run's
reference.
"""

import os
import shutil
from typing import List

import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics, Schema
from tfx.utils import io_utils

from models import features

STATISTICS_FILE = "FeatureStats.pb"
"""StatisticsGen's file in each `Split-<name>` folder."""
DRIFT_SPLIT = features.TRAIN_SPLIT
"""The split whose label distribution must not drift: the one the model learns from."""


class ValidatedStatistics(types.Artifact):
    """Statistics of data that passed the gate; the reference the next run's drift check compares with."""

    # <namespace>.<Name>, and no properties: what Kubeflow V2 accepts of a custom type. The splits are
    # laid out as in ExampleStatistics: `Split-<name>/FeatureStats.pb`.
    TYPE_NAME = "digits.ValidatedStatistics"


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


def _statistics_path(artifact: types.Artifact, split: str) -> str:
    return os.path.join(artifact.uri, f"Split-{split}", STATISTICS_FILE)


def _split_statistics(artifact: types.Artifact, split: str):
    return tfdv.load_stats_binary(_statistics_path(artifact, split))


def describe_empty_splits(statistics: ExampleStatistics) -> List[str]:
    """TFDV validates an empty dataset without complaint (even with `min_examples_count`), yet an empty
    split would train on nothing or evaluate on nothing."""
    return [
        f"split '{split}', dataset: no examples"
        for split in artifact_utils.decode_split_names(statistics.split_names)
        if not any(d.num_examples for d in _split_statistics(statistics, split).datasets)
    ]


def describe_drift(statistics: ExampleStatistics, reference: types.Artifact, schema: Schema) -> List[str]:
    """One line per feature whose distribution moved past the schema's drift comparator threshold."""
    schema_proto = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    found = tfdv.validate_statistics(
        _split_statistics(statistics, DRIFT_SPLIT),
        schema_proto,
        previous_statistics=_split_statistics(reference, DRIFT_SPLIT),
    )
    drift = anomalies_pb2.Anomalies()
    for feature, info in found.anomaly_info.items():
        reasons = [r for r in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(r.type).startswith("COMPARATOR_")]
        if reasons:
            drift.anomaly_info[feature].short_description = "distribution drift"
            drift.anomaly_info[feature].reason.extend(reasons)
    return _describe(drift, DRIFT_SPLIT, "against the last validated data: ")


def _record(statistics: ExampleStatistics, validated: ValidatedStatistics) -> None:
    for split in artifact_utils.decode_split_names(statistics.split_names):
        target = _statistics_path(validated, split)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(_statistics_path(statistics, split), target)


@component
def AnomalyGate(
    anomalies: InputArtifact[ExampleAnomalies],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    validated_statistics: OutputArtifact[ValidatedStatistics],
    reference_statistics: InputArtifact[ValidatedStatistics] = None,
) -> None:
    """Raises DataAnomaliesError listing every anomaly and drift, if there is any."""
    problems = describe_anomalies(anomalies) + describe_empty_splits(statistics)
    if reference_statistics is not None:
        problems += describe_drift(statistics, reference_statistics, schema)
    if problems:
        raise DataAnomaliesError(
            f"{len(problems)} data anomal{'y' if len(problems) == 1 else 'ies'}; nothing is trained or "
            "pushed:\n  " + "\n  ".join(problems)
        )
    _record(statistics, validated_statistics)
