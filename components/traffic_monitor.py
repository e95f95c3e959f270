"""TrafficMonitor: `digits monitor`'s look at served traffic, as a pipeline component.

A run given the served model's request logs (`--request-logs PREFIX`) compares the newest window of
logged requests with this run's training digits, read by the served version, and with the window before,
as `monitoring.monitor.watch` does. Its outputs are TFX's own artifacts: `ExampleStatistics` with a split
`traffic` (the window) and a split `training`, and `ExampleAnomalies` for the split `traffic` (TFDV's
anomalies of the traffic schema's comparators). TFX's visualisations and the Kubeflow UI show them
beside the data's. The component informs and never stops the run. Training again is for the monitor, or
for a schedule, to decide. It reads logs outside its inputs, so every runner runs it every time.
"""

import os

from absl import logging
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, Examples, ExampleStatistics, Model
from tfx.utils import io_utils, path_utils

from components.anomaly_gate import STATISTICS_FILE
from components.baseline import has_model
from components.examples import first_digits, split_files
from models import features
from monitoring import drift, monitor
from monitoring.config import TRAFFIC_SCHEMA_PATH, MonitorSettings

TRAFFIC_SPLIT = "traffic"
TRAINING_SPLIT = "training"
RETRAIN = "traffic_retrain"
"""Custom property of the anomalies: 1 when the monitor would say to train again."""
MOVED = "traffic_features_moved"
"""Custom property of the anomalies: the features over a threshold, comma-separated."""


@component
def TrafficMonitor(
    examples: InputArtifact[Examples],
    baseline: InputArtifact[Model],
    request_log_prefix: Parameter[str],
    statistics: OutputArtifact[ExampleStatistics],
    anomalies: OutputArtifact[ExampleAnomalies],
    window: Parameter[int] = MonitorSettings.window,
    min_requests: Parameter[int] = MonitorSettings.min_requests,
) -> None:
    """Served traffic (the logs at `request_log_prefix`) against the training digits of `examples`."""
    settings = MonitorSettings(window=window, min_requests=min_requests)
    statistics.split_names = artifact_utils.encode_split_names([TRAFFIC_SPLIT, TRAINING_SPLIT])
    anomalies.split_names = artifact_utils.encode_split_names([TRAFFIC_SPLIT])
    served = monitor.read_windows(request_log_prefix, settings)
    if not has_model(baseline) or not len(served):
        logging.info(
            "TrafficMonitor: no served model or no logged requests at %s: nothing to compare", request_log_prefix
        )
        anomalies.set_int_custom_property(RETRAIN, 0)
        return
    digits = first_digits(split_files(examples.uri, features.TRAIN_SPLIT), settings.training_sample)
    reference = monitor.reference_features(digits.pixels, path_utils.serving_model_path(baseline.uri))
    look = monitor.watch(served, reference, drift.read_schema(TRAFFIC_SCHEMA_PATH), settings)
    for split, stats in ((TRAFFIC_SPLIT, look.window_statistics), (TRAINING_SPLIT, look.training_statistics)):
        if stats is not None:
            io_utils.write_bytes_file(
                os.path.join(statistics.uri, f"Split-{split}", STATISTICS_FILE), stats.SerializeToString()
            )
    if look.comparison is not None:
        io_utils.write_bytes_file(
            os.path.join(anomalies.uri, f"Split-{TRAFFIC_SPLIT}", DEFAULT_FILE_NAME),
            look.comparison.anomalies.SerializeToString(),
        )
    anomalies.set_int_custom_property(RETRAIN, int(look.retrain))
    anomalies.set_string_custom_property(MOVED, ",".join(look.comparison.drifted if look.comparison else []))
    logging.info("TrafficMonitor: %d requests judged; %s", len(look.window), "; ".join(look.reasons) or "nothing moved")
