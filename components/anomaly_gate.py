"""AnomalyGate: stops the pipeline when ExampleValidator found anomalies.

ExampleValidator only records anomalies; TFX would go on to train on the bad data. This component fails
with a readable list instead, and Transform runs after it, so no model is trained or pushed on bad data.
"""

import os
from typing import List

from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies


class DataAnomaliesError(RuntimeError):
    """The data does not match the curated schema; the message lists every anomaly found."""


def describe_anomalies(anomalies: ExampleAnomalies) -> List[str]:
    """One line per anomaly: split, feature, and TFDV's description of what is wrong."""
    lines = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), DEFAULT_FILE_NAME)
        found = load_anomalies_binary(path)
        for feature, info in sorted(found.anomaly_info.items()):
            reasons = "; ".join(r.description or r.short_description for r in info.reason)
            lines.append(f"split '{split}', feature '{feature}': {info.short_description}: {reasons}")
        if found.HasField("dataset_anomaly_info"):
            info = found.dataset_anomaly_info
            lines.append(f"split '{split}', dataset: {info.short_description}: {info.description}")
    return lines


@component
def AnomalyGate(anomalies: InputArtifact[ExampleAnomalies]) -> None:  # pylint: disable=invalid-name
    """Raises DataAnomaliesError listing every anomaly, if there is any."""
    problems = describe_anomalies(anomalies)
    if problems:
        raise DataAnomaliesError(
            f"{len(problems)} data anomal{'y' if len(problems) == 1 else 'ies'} against the curated "
            "schema; nothing is trained or pushed:\n  " + "\n  ".join(problems)
        )
